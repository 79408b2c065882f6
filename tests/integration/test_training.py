"""What WanMaskTrainLoRA learns in a real ComfyUI: masked-loss LoRA training of the tiny Wan t2v
checkpoint on CPU, measured by how the model's x0 prediction changes, cell by cell. (The nodes'
declarations, what they refuse before training and the loss-weights nodes: test_training_nodes.py.)

Data: a random base latent b [1, 16, 3, 8, 8] and a per-frame video mask (9 frames, nothing in frame 0,
a square in frames 1..8). Dataset A's target is b plus a constant offset c inside the mask (it differs
from the base only inside). Dataset B equals A inside the mask and adds another offset d outside it.

What the tests pin down:
* with background weight 0 the outside target has (next to) no influence on the trained model
  (100-step runs);
* the masked region is learned, and the mask changes the result compared with full weight;
* with background weight 0 and nothing else, the model's change outside the mask is as large as inside:
  the 'phantom limb' effect the musubi guide warns about. A LoRA on a random tiny model shares its
  weights (and ComfyUI's trainer its bias diffs) between all cells, so what it learns inside shows up
  outside. We measured this with fourteen training designs (constant and zero-mean targets, object and
  background in separate channel subspaces, a base first fitted to the clip, LoRA on the block
  linears only, low and high noise): outside stayed at 0.6-1.5x inside every time;
* prior preservation is the fix: with it the outside changes far less than the inside, and much less
  than without it (800-step runs);
* one seed gives one LoRA, whatever trained before in the same ComfyUI process.
"""
from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from comfyui_wanmasking.tests.integration.graphs import Graph, tiny_t2v_model, zero_cond
from comfyui_wanmasking.tests.integration.training_data import SHORT, data, inside, trainer  # noqa: F401 (data: a fixture)

SIGMAS = "0.2,0.5"                            # evaluation noise levels (one batch item each)
LONG = 800                                    # steps of a long run
RUNS = {  # tag: (dataset, loss mask connected, extra settings, steps)
    # which target reaches the model: short runs, before what is learned spreads through shared weights
    "A_masked_short": ("A", True, {}, SHORT),
    "B_masked_short": ("B", True, {}, SHORT),
    "A_full_short": ("A", False, {}, SHORT),
    "B_full_short": ("B", False, {}, SHORT),
    # what the model learns and where it shows: long runs
    "A_masked": ("A", True, {}, LONG),
    "A_full": ("A", False, {}, LONG),
    "A_prior": ("A", True, {"prior_preservation_weight": 1.0}, LONG),
}


def along(delta, direction, region):
    """Mean projection of a change [n,16,T,h,w] onto a channel direction, over a region of cells."""
    unit = direction / direction.norm()
    return (delta * unit).sum(1, keepdim=True).expand_as(delta)[region].mean().item()


def predict_x0(g, model, latent_source, cond, path):
    """Save the model's x0 prediction on the source latent (fixed sigmas and noise) to ``path``."""
    x0 = g.add("WanMaskTestPredictX0", model=model, latent=latent_source[2], positive=cond, sigmas=SIGMAS, seed=5)
    g.add("WanMaskTestSave", path=str(path), latent=x0)


@pytest.fixture(scope="module")
def runs(server, data, tmp_path_factory):
    """All trainings in one prompt; returns {tag: x0 change vs the base model}, the loss maps and the log."""
    out = tmp_path_factory.mktemp("train_runs")
    g = Graph()
    model, cond = tiny_t2v_model(g), zero_cond(g)
    sources = {name: g.add("WanMaskTestLoad", path=str(data["dir"] / f"{name}.safetensors")) for name in "AB"}

    predict_x0(g, model, sources["A"], cond, out / "base.safetensors")
    for tag, (name, masked, settings, steps) in RUNS.items():
        trained = trainer(g, model, cond, sources[name], masked, steps, **settings)
        lora = g.add("LoraModelLoader", model=model, lora=trained[1], strength_model=1.0, bypass=False)
        predict_x0(g, lora, sources["A"], cond, out / f"{tag}.safetensors")
        g.add("WanMaskTestSaveLoss", loss=trained[2], path=str(out / f"{tag}_loss.json"))
    server.run_ok(g.prompt, timeout=1500)
    base = load_file(str(out / "base.safetensors"))["samples"]
    change = {tag: load_file(str(out / f"{tag}.safetensors"))["samples"] - base for tag in RUNS}
    losses = {tag: json.loads((out / f"{tag}_loss.json").read_text()) for tag in RUNS}
    return change, losses, server.log_tail(400)


# ---- training ------------------------------------------------------------------------------------

def test_training_runs_the_masked_loss_and_prints_the_banner(runs):
    _, losses, log = runs
    for tag, (*_, steps) in RUNS.items():
        assert len(losses[tag]["loss"]) == steps and len(losses[tag]["target_loss"]) == steps
    assert all(p == 0.0 for p in losses["A_masked"]["prior_loss"])
    assert all(p > 0.0 for p in losses["A_prior"]["prior_loss"][1:])
    assert "WAN MASK-WEIGHTED LOSS TRAINING ENABLED" in log
    assert "WAN MASKED PRIOR PRESERVATION TRAINING ENABLED" in log
    assert "loss weights: [1, 1, 3, 8, 8]" in log
    assert "teacher pass found no LoRA layers" not in log   # the teacher really ran with the LoRA off
    assert "no mask connected; all 1 item(s) train at full weight" in log   # the full-weight runs said so


def test_background_weight_zero_ignores_the_outside_target(runs, data):
    """A and B differ only outside the mask, by the offset d. At full weight the B LoRA learns d outside;
    with weight 0 there the two LoRAs' outside predictions do not differ along d (what differences remain
    come from the outside cells being part of the model's input, not from the loss)."""
    change, _, _ = runs
    out = ~inside(change["A_masked"].shape[0])
    full_learned_d = along(change["B_full_short"] - change["A_full_short"], data["d"], out)
    masked_learned_d = along(change["B_masked_short"] - change["A_masked_short"], data["d"], out)
    print(f"\n[outside target d learned] full weight {full_learned_d:.4f}, background weight 0 {masked_learned_d:.4f}")
    assert full_learned_d > 0.5, f"full-weight training did not learn the outside target ({full_learned_d:.3f})"
    assert abs(masked_learned_d) < 0.1 * full_learned_d, (masked_learned_d, full_learned_d)


def test_the_masked_region_is_learned_and_the_mask_matters(runs, data):
    change, _, _ = runs
    ins = inside(change["A_masked"].shape[0])
    toward_target = along(change["A_masked"], data["c"], ins)
    print(f"\n[offset c] masked: inside {toward_target:.4f}, outside {along(change['A_masked'], data['c'], ~ins):.4f}; "
          f"full weight: inside {along(change['A_full'], data['c'], ins):.4f}, "
          f"outside {along(change['A_full'], data['c'], ~ins):.4f}")
    assert toward_target > 0.5, f"inside moved {toward_target:.3f} toward the target offset"
    # Same data at full weight: the outside target (the base) holds the outside back, so the result differs.
    assert along(change["A_masked"], data["c"], ~ins) > 2 * along(change["A_full"], data["c"], ~ins)


def mean_abs(change, region):
    return change.abs()[region].mean().item()


def test_with_prior_preservation_the_outside_changes_far_less_than_the_inside(runs):
    """The phantom-limb check. Background weight 0 alone leaves the outside free, and the tiny model's
    outside moves as much as its inside; prior preservation holds it to a fraction of the inside change.
    The first assertion makes the second meaningful: the fix is measured against a leak that is there."""
    change, _, _ = runs
    ins = inside(change["A_masked"].shape[0])
    plain_in, plain_out = mean_abs(change["A_masked"], ins), mean_abs(change["A_masked"], ~ins)
    prior_in, prior_out = mean_abs(change["A_prior"], ins), mean_abs(change["A_prior"], ~ins)
    print(f"\n[mean |change| inside / outside] background weight 0: {plain_in:.4f} / {plain_out:.4f}; "
          f"with prior preservation 1.0: {prior_in:.4f} / {prior_out:.4f}")
    assert plain_out > 0.5 * plain_in, "background weight 0 no longer leaks outside on the tiny model: " \
        "the phantom-limb comparison below proves nothing any more"
    assert prior_out < 0.35 * prior_in, (prior_in, prior_out)


def test_prior_preservation_keeps_the_outside_closer_to_the_base(runs, data):
    change, _, _ = runs
    ins = inside(change["A_masked"].shape[0])
    plain, prior = change["A_masked"].abs()[~ins].mean().item(), change["A_prior"].abs()[~ins].mean().item()
    print(f"\n[mean |change| outside] background weight 0: {plain:.4f}, with prior preservation: {prior:.4f}; "
          f"inside: {change['A_masked'].abs()[ins].mean().item():.4f} / {change['A_prior'].abs()[ins].mean().item():.4f}")
    assert prior < 0.7 * plain, (plain, prior)
    assert along(change["A_prior"], data["c"], ins) > 0.25, "prior preservation stopped learning inside the mask"


def test_the_same_seed_gives_the_same_lora_whatever_ran_before(server, runs, data, tmp_path):
    """Native train() draws the LoRA's initial matrices from torch's global generator, which the
    seven trainings of the runs fixture have moved on. WanMaskTrainLoRA seeds it from `seed`, so
    training A_masked_short again in a new prompt gives the same model. The clip is loaded from a
    copy, so ComfyUI cannot serve the node from its cache."""
    change, _, _ = runs
    copy = tmp_path / "A_copy.safetensors"
    copy.write_bytes((data["dir"] / "A.safetensors").read_bytes())
    g = Graph()
    model, cond = tiny_t2v_model(g), zero_cond(g)
    source = g.add("WanMaskTestLoad", path=str(copy))
    trained = trainer(g, model, cond, source, True, SHORT)
    predict_x0(g, model, source, cond, tmp_path / "base.safetensors")
    lora = g.add("LoraModelLoader", model=model, lora=trained[1], strength_model=1.0, bypass=False)
    predict_x0(g, lora, source, cond, tmp_path / "again.safetensors")
    server.run_ok(g.prompt, timeout=600)
    again = load_file(str(tmp_path / "again.safetensors"))["samples"] - load_file(str(tmp_path / "base.safetensors"))["samples"]
    assert float(change["A_masked_short"].abs().max()) > 0.1  # the LoRA did change the model
    assert float((again - change["A_masked_short"]).abs().max()) < 1e-6
