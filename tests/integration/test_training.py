"""WanMaskLossWeights and WanMaskTrainLoRA in a real ComfyUI: masked-loss LoRA training of the tiny
Wan t2v checkpoint on CPU, measured by how the model's x0 prediction changes, cell by cell.

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
import torch
from safetensors.torch import load_file, save_file

from comfyui_wanmasking.masking.geometry import WAN21
from comfyui_wanmasking.masking.training.weights import latent_loss_weights
from comfyui_wanmasking.tests.integration.comfy_server import execution_error
from comfyui_wanmasking.tests.integration.graphs import Graph, tiny_t2v_model, zero_cond

FRAMES, SIZE, T, CELLS = 9, 64, 3, 8          # pixel clip 9x64x64 -> latent [1, 16, 3, 8, 8]
SIGMAS = "0.2,0.5"                            # evaluation noise levels (one batch item each)
SHORT, LONG, LR = 100, 800, 5e-3
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


# Native Train LoRA options that ComfyUI 0.33 added, at native's defaults (a ComfyUI without them
# ignores inputs its node does not declare).
NEWER_NATIVE_OPTIONS = dict(quantized_backward=False, checkpoint_depth=1, offloading=False, bucket_mode=False,
                            bypass_mode=False)


def video_mask():
    """Per-frame loss mask: 0 in frame 0 (latent 0), a 32x32 px square of 1 in frames 1..8 (latents 1, 2)."""
    m = torch.zeros(FRAMES, SIZE, SIZE)
    m[1:, 16:48, 16:48] = 1
    return m


def inside(n=1):
    """Latent cells under the mask, as a bool [n, 16, T, 8, 8]."""
    return (latent_loss_weights(video_mask(), (1, 16, T, CELLS, CELLS), WAN21) > 0.5).expand(n, 16, -1, -1, -1)


def along(delta, direction, region):
    """Mean projection of a change [n,16,T,h,w] onto a channel direction, over a region of cells."""
    unit = direction / direction.norm()
    return (delta * unit).sum(1, keepdim=True).expand_as(delta)[region].mean().item()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    g = torch.Generator().manual_seed(11)
    base = torch.randn(1, 16, T, CELLS, CELLS, generator=g)
    c = torch.randn(1, 16, 1, 1, 1, generator=g).sign() * 1.5
    d = torch.randn(1, 16, 1, 1, 1, generator=g).sign() * 1.5
    a = torch.where(inside(), base + c, base)       # differs from the base only inside the mask
    b = torch.where(inside(), a, a + d)             # same as A inside, different outside
    folder = tmp_path_factory.mktemp("train_data")
    for name, latent in (("A", a), ("B", b)):
        save_file({"samples": latent, "mask": video_mask()}, str(folder / f"{name}.safetensors"))
    return {"dir": folder, "c": c, "d": d}


def trainer(g, model, cond, source, masked, steps=SHORT, **settings):
    values = dict(gamma=1.0, min_weight=0.0, prior_preservation_weight=0.0, prior_mask_threshold=0.0,
                  normalize_per_sample=True, require_mask=masked)
    values.update(settings)
    extra = {"loss_mask": source[1]} if masked else {}
    return g.add("WanMaskTrainLoRA", model=model, latents=source[2], positive=cond, batch_size=1,
                 grad_accumulation_steps=1, steps=steps, learning_rate=LR, rank=8, optimizer="AdamW",
                 loss_function="MSE", seed=0, training_dtype="fp32", lora_dtype="fp32", algorithm="LoRA",
                 gradient_checkpointing=False, existing_lora="[None]", **NEWER_NATIVE_OPTIONS, **values, **extra)


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


# ---- node declarations ---------------------------------------------------------------------------

# The trainer's own input list, the same on every ComfyUI version: 0.33's native Train LoRA inputs in
# its order, then the pack's (saved workflows store widget values by position).
TRAINER_INPUTS = [
    "model", "latents", "positive", "batch_size", "grad_accumulation_steps", "steps", "learning_rate", "rank",
    "optimizer", "loss_function", "seed", "training_dtype", "lora_dtype", "quantized_backward", "algorithm",
    "gradient_checkpointing", "checkpoint_depth", "offloading", "existing_lora", "bucket_mode", "bypass_mode",
    "gamma", "min_weight", "prior_preservation_weight", "prior_mask_threshold", "normalize_per_sample",
    "require_mask"]


def test_nodes_mirror_the_native_trainer(server):
    info = server.get("/object_info")
    ours, native = info["WanMaskTrainLoRA"], info["TrainLoraNode"]
    assert list(ours["input"]["required"]) == TRAINER_INPUTS             # one order on every version
    if "is_input_list" in ours:        # (0.3.64's /object_info does not report it; its executor reads it)
        assert ours["is_input_list"] is True
    mine = list(ours["input"]["required"])
    native_names = [n for n in native["input"]["required"]]
    assert [n for n in mine if n in native_names] == native_names        # native's options, in native's order
    assert list(ours["input"]["optional"]) == ["loss_mask"]
    assert "1 (white, 8-bit 255) = full training weight" in ours["input"]["optional"]["loss_mask"][1]["tooltip"]
    # Our outputs stay the same on every version (0.33's native returns only lora, loss_map, steps);
    # each native output type is among them, so native's save and loss-graph nodes take them.
    assert ours["output"] == ["MODEL", "LORA_MODEL", "LOSS_MAP", "INT"]
    assert ours["output_name"] == ["model_with_lora", "lora", "loss", "steps"]
    assert set(native["output"]) <= set(ours["output"])
    assert ours.get("output_is_list") in (None, [False] * 4)
    assert ours["category"] == native["category"] + "/wan masking"  # beside native Train LoRA
    weights = info["WanMaskLossWeights"]
    assert list(weights["input"]["required"]) == ["mask", "preset", "gamma", "min_weight", "width", "height"]
    assert weights["output"] == ["MASK", "IMAGE"]
    tiers = info["WanMaskLossTiers"]
    assert list(tiers["input"]["optional"]) == ["face", "body", "hair", "subject"]   # subject: new, last
    assert [tiers["input"]["required"][k][1]["default"] for k in tiers["input"]["required"]] == [255, 128, 80, 0]


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


# ---- errors before any training, and the weights node ------------------------------------------------

def _trainer_error(server, g, source, **kw):
    trained = trainer(g, tiny_t2v_model(g), zero_cond(g), source, **kw)
    g.add("WanMaskTestSaveLoss", loss=trained[2], path="/dev/null")
    return execution_error(server.run(g.prompt))


def test_missing_mask_with_require_mask_fails_before_training(server, data):
    g = Graph()
    source = g.add("WanMaskTestLoad", path=str(data["dir"] / "A.safetensors"))
    message = _trainer_error(server, g, source, masked=False, require_mask=True)
    assert "loss_mask: no mask is connected but require_mask is on" in message


def _submit_with(server, data, values: dict) -> tuple[int, dict, str]:
    """Submit a masked training with ``values`` set on the trainer: (HTTP status, body, the trainer's errors)."""
    g = Graph()
    source = g.add("WanMaskTestLoad", path=str(data["dir"] / "A.safetensors"))
    trained = trainer(g, tiny_t2v_model(g), zero_cond(g), source, masked=True)
    g.prompt[trained.id]["inputs"].update(values)
    g.add("WanMaskTestSaveLoss", loss=trained[2], path="/dev/null")
    code, body = server.submit(g.prompt)
    return code, body, json.dumps(body.get("node_errors", {}).get(trained.id, {}))


@pytest.mark.parametrize("bad", [{"optimizer": "Adamax"}, {"rank": 0}, {"gamma": 0.0}])
def test_bad_widget_values_are_refused_before_the_queue(server, data, bad):
    """Every widget of the trainer (V3 COMBOs, which 0.3.64 does not check itself, and bounds) is checked
    against its options and bounds by the node's validate_inputs."""
    code, body, text = _submit_with(server, data, bad)
    name, value = next(iter(bad.items()))
    assert code == 400, body
    assert name in text and str(value) in text, text


@pytest.mark.parametrize("option", [{"offloading": True}, {"checkpoint_depth": 2}, {"bypass_mode": True},
                                    {"quantized_backward": True}])
def test_an_option_this_comfyui_lacks_is_refused_before_the_queue(server, data, option):
    """The trainer declares 0.33's options on every version; where native's trainer here lacks one
    (0.3.64), setting it away from its default is refused at /prompt, naming it and the fix."""
    name, value = next(iter(option.items()))
    native = server.get("/object_info/TrainLoraNode")["TrainLoraNode"]["input"]["required"]
    if name in native:
        pytest.skip(f"this ComfyUI's trainer has {name}")
    code, body, text = _submit_with(server, data, option)
    assert code == 400, body
    assert f"{name}={value!r}" in text and "does not have" in text and "Fix" in text, text


def test_bad_mask_frame_count_fails_before_training(server, io_dir):
    path = io_dir / "bad.safetensors"
    save_file({"samples": torch.zeros(1, 16, T, CELLS, CELLS), "mask": torch.ones(6, SIZE, SIZE)}, str(path))
    g = Graph()
    message = _trainer_error(server, g, g.add("WanMaskTestLoad", path=str(path)), masked=True)
    assert "loss_mask: 6 frames does not fit 1 training item(s) with 3 latent frames" in message


def test_loss_weights_node_outputs_weights_and_tier_preview(server, io_dir):
    tiers = torch.tensor([255.0, 128.0, 80.0, 0.0]).repeat_interleave(4).reshape(1, 1, 16).expand(1, 16, 16)
    path = io_dir / "tiers.safetensors"
    save_file({"mask": tiers.contiguous()}, str(path))
    g = Graph()
    src = g.add("WanMaskTestLoad", path=str(path))
    w = g.add("WanMaskLossWeights", mask=src[1], preset="recommended", gamma=1.0, min_weight=0.0, width=8, height=8)
    g.add("WanMaskTestSave", path=str(io_dir / "w.safetensors"), mask=w[0], image=w[1])
    server.run_ok(g.prompt)
    out = load_file(str(io_dir / "w.safetensors"))
    assert out["mask"].shape == (1, 8, 8) and out["image"].shape == (1, 8, 8, 3)
    row = out["mask"][0, 0, ::2].tolist()  # one cell per tier after the area downscale
    assert [round(v, 3) for v in row] == [1.0, 0.636, 0.472, 0.05]
    face, body, hair = out["image"][0, 0, 0], out["image"][0, 0, 2], out["image"][0, 0, 4]
    assert face.argmax() == 0 and body.argmax() == 1 and hair.argmax() == 2


def test_example_workflow_uses_existing_nodes_and_inputs(server):
    """The training example of this ComfyUI (masked_lora_training.json uses 0.33's SaveLoRA,
    masked_lora_training_comfyui_0_3.json 0.3.64's SaveLoRANode): every node exists here, gets all its
    required inputs and no unknown ones, and links point at existing nodes."""
    from comfyui_wanmasking.tests.integration.examples import API_EXAMPLES, applies
    info = server.get("/object_info")
    mine = [p for p in API_EXAMPLES if p.stem in ("masked_lora_training", "masked_lora_training_comfyui_0_3")
            and applies(p, info)]
    assert len(mine) == 1, mine
    workflow = json.loads(mine[0].read_text())
    save = next(n for n in workflow.values() if n["class_type"] in ("SaveLoRA", "SaveLoRANode"))
    assert "LORA_MODEL" in info[save["class_type"]]["input"]["required"]["lora"][0]
    for nid, node in workflow.items():
        spec = info[node["class_type"]]["input"]
        required, optional = set(spec.get("required", {})), set(spec.get("optional", {}))
        given = set(node["inputs"])
        assert required <= given, (nid, node["class_type"], required - given)
        assert given <= required | optional, (nid, node["class_type"], given - required - optional)
        for value in node["inputs"].values():
            if isinstance(value, list):
                assert value[0] in workflow
    trainer_inputs = workflow["14"]["inputs"]
    assert trainer_inputs["loss_mask"] == ["11", 0] and trainer_inputs["prior_preservation_weight"] > 0


def test_tiers_from_region_masks_feed_the_weights_node(server, io_dir):
    face, body = torch.zeros(1, 16, 16), torch.zeros(1, 16, 16)
    body[:, 4:, 4:12] = 1
    face[:, 4:8, 6:10] = 1
    for name, m in (("face", face), ("body", body)):
        save_file({"mask": m}, str(io_dir / f"{name}.safetensors"))
    g = Graph()
    f, b = (g.add("WanMaskTestLoad", path=str(io_dir / f"{n}.safetensors")) for n in ("face", "body"))
    tiers = g.add("WanMaskLossTiers", face_level=255, body_level=128, hair_level=80, background_level=0,
                  face=f[1], body=b[1])
    w = g.add("WanMaskLossWeights", mask=tiers[0], preset="custom", gamma=1.0, min_weight=0.1, width=0, height=0)
    g.add("WanMaskTestSave", path=str(io_dir / "t.safetensors"), mask=w[0])
    server.run_ok(g.prompt)
    out = load_file(str(io_dir / "t.safetensors"))["mask"]
    assert out[0, 5, 7].item() == pytest.approx(1.0)                     # face
    assert out[0, 12, 5].item() == pytest.approx(128 / 255 * 0.9 + 0.1)  # body
    assert out[0, 0, 0].item() == pytest.approx(0.1)                     # background at the floor


@pytest.mark.parametrize("saved", ["masked_lora_training_dataset", "masked_lora_training_dataset_comfyui_0_3"])
def test_a_trainer_saved_on_one_version_loads_with_the_same_values_on_the_other(server, saved):
    """The UI example saved on 0.33 and its twin saved on 0.3.64 (widget values by position) convert on
    this ComfyUI to the trainer inputs of the API twin, whichever version saved them: WanMaskTrainLoRA's
    input list does not depend on the version. The save node of the other version is left out."""
    from comfyui_wanmasking.tests.integration.examples import EXAMPLES
    from comfyui_wanmasking.wanmask_runner.example_names import ui_example
    from comfyui_wanmasking.wanmask_runner.workflow.convert import ui_to_api
    info = server.get("/object_info")
    ui = json.loads(ui_example(saved).read_text())
    ui["nodes"] = [n for n in ui["nodes"] if n["type"] in info]
    converted = ui_to_api(ui, info)
    api = json.loads((EXAMPLES / "api" / f"{saved}.json").read_text())
    for node_type in ("WanMaskTrainLoRA", "WanMaskTrainingSet"):
        nid = next(k for k, n in api.items() if n["class_type"] == node_type)
        assert converted[nid]["inputs"] == api[nid]["inputs"], node_type


def test_a_trainer_saved_on_0_3_with_the_old_layout_runs_with_its_values(server):
    """A workflow saved on ComfyUI 0.3.64 before the trainer had its own input list (20 widget values in
    0.3.x's order; tests/integration/data/masked_lora_training_saved_on_0_3_64.json, the example as it
    was) converts through the runner to the values it was saved with, the new options at their defaults."""
    from comfyui_wanmasking.tests.integration.examples import REPO
    from comfyui_wanmasking.wanmask_runner.node_replacements import replace_then_convert
    info = server.get("/object_info")
    ui = json.loads((REPO / "tests" / "integration" / "data" / "masked_lora_training_saved_on_0_3_64.json").read_text())
    ui["nodes"] = [n for n in ui["nodes"] if n["type"] in info]
    inputs = replace_then_convert(ui, info)["14"]["inputs"]
    saved = {"batch_size": 1, "grad_accumulation_steps": 1, "steps": 500, "learning_rate": 0.0001, "rank": 16,
             "optimizer": "AdamW", "loss_function": "MSE", "seed": 0, "training_dtype": "bf16", "lora_dtype": "bf16",
             "algorithm": "LoRA", "gradient_checkpointing": True, "existing_lora": "[None]", "gamma": 0.7,
             "min_weight": 0.0, "prior_preservation_weight": 1.0, "prior_mask_threshold": 0.1,
             "normalize_per_sample": True, "require_mask": True, "quantized_backward": False, "checkpoint_depth": 1,
             "offloading": False, "bucket_mode": False, "bypass_mode": False}
    assert {k: inputs[k] for k in saved} == saved
