"""WanMaskTrainingSet and WanMaskTrainLoRA on a real dataset, in a real ComfyUI: a generated folder of
8 items (RGB and RGBA images at two aspect ratios, clips of 5 and 9 frames, a per-frame mask video, a
static mask, an item without a mask, an orphan mask, a group photo with a subject mask) paired, encoded,
cached and trained in buckets on the tiny Wan checkpoint.

What the tests pin down:
* the pairing report names every item's mask source and warns about the orphan mask;
* a rerun loads the cache bit-exactly and calls the VAE for nothing (counted by a wrapping VAE);
* each item's weights travel with it (alpha tiers, no-mask = 1, the bystander zeroed by its subject);
* every error (missing mask under require_mask, aspect ratio, mask-video length, unreadable file,
  empty folder) stops the run before any encoding, naming the file and the fix;
* bucketed training draws every item, and an item whose weights are all 0 sends no gradient.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from comfyui_wanmasking.tests.integration.comfy_server import execution_error
from comfyui_wanmasking.tests.integration.graphs import Graph, tiny_t2v_model, tiny_vae
from comfyui_wanmasking.wanmask_runner.fixtures.tiny_dataset import (
    write_bad_aspect_mask, write_image, write_tiny_dataset, write_video,
)

pytestmark = pytest.mark.integration
SET = "wm_set"


@pytest.fixture(scope="module")
def dataset(server):
    return write_tiny_dataset(server.base / "input" / SET)


def training_set(g: Graph, vae, folder: str, *, mask_folder: str = "(none)", count_file: Path | None = None,
                 **overrides):
    if count_file is not None:
        vae = g.add("WanMaskTestCountingVAE", vae=vae, path=str(count_file))
    inputs = dict(folder=folder, mask_folder=mask_folder, alpha_mask=True, require_mask=False, vae=vae,
                  clip=g.add("WanMaskTestFakeClip"), width=32, height=32, resolution_buckets=True, length=9,
                  frame_selection="contiguous", short_clips="trim", seed=0, cache=True, subject_folder="(none)")
    inputs.update(overrides)
    return g.add("WanMaskTrainingSet", **inputs)


def encodes(count_file: Path) -> int:
    return int(count_file.read_text()) if count_file.exists() else 0


def read_set(path: Path) -> tuple[dict, list[list[str]]]:
    with safe_open(str(path), "pt") as f:
        names = json.loads(f.metadata()["names"])
    return load_file(str(path)), names


@pytest.fixture(scope="module")
def two_runs(server, dataset, tmp_path_factory):
    """The same set built twice: the second run must come from the cache."""
    out = tmp_path_factory.mktemp("set_runs")
    count = out / "encodes.txt"
    results = []
    for run in (1, 2):
        g = Graph()
        ts = training_set(g, tiny_vae(g), f"{SET}/clips", mask_folder=f"{SET}/clips/weighted_masks",
                          count_file=count, subject_folder=f"{SET}/subjects")
        g.add("WanMaskTestSaveSet", latents=ts[0], positive=ts[1], path=str(out / f"run{run}.safetensors"))
        server.run_ok(g.prompt, timeout=600)
        results.append((encodes(count), *read_set(out / f"run{run}.safetensors")))
    return results, server.log_tail(300)


def test_the_report_names_each_items_mask_source_and_the_orphan(two_runs, dataset):
    _, log = two_runs
    for name, item in dataset["items"].items():
        line = next((ln for ln in log.splitlines() if name in ln and item["mask_source"] in ln), None)
        assert line is not None, f"{name}: no report line with its mask source {item['mask_source']!r}"
    assert "orphan_mask" in log
    assert "Encoded 8 of 8 items, 0 from the cache" in log
    assert "Encoded 0 of 8 items, 8 from the cache" in log


def test_a_rerun_loads_the_cache_bit_exactly_and_encodes_nothing(two_runs, dataset):
    (first_count, first, first_names), (second_count, second, second_names) = two_runs[0]
    assert first_count == len(dataset["items"])       # one VAE call per item
    assert second_count == first_count               # the rerun called the VAE for nothing
    assert first_names == second_names
    assert sorted(n for bucket in first_names for n in bucket) == sorted(dataset["items"])
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_each_items_weights_travel_with_it(two_runs, dataset):
    (_, tensors, names), _ = two_runs[0]
    weights = {name: tensors[f"{b}.weights"][i] for b, bucket in enumerate(names) for i, name in enumerate(bucket)}
    samples = {name: tensors[f"{b}.samples"][i] for b, bucket in enumerate(names) for i, name in enumerate(bucket)}
    for name, item in dataset["items"].items():
        assert weights[name].shape[1:] == samples[name].shape[1:], name
    assert torch.all(weights["photo_tall"] == 1.0) and torch.all(weights["clip_plain"] == 1.0)  # no mask: full
    tiers = {round(v * 255) for v in weights["portrait_alpha"].unique().tolist()}
    assert {255, 0} <= tiers, tiers                                                        # alpha tiers
    group = weights["group_alpha"][0, 0]          # the subject is the left quarter: the bystander gets 0
    assert float(group[:, group.shape[1] // 2:].max()) == 0.0 and float(group.max()) > 0.0
    # the per-frame mask video: its square moves, so the latent frames' weights differ
    per_frame = weights["clip_perframe"][0]
    assert not torch.equal(per_frame[1], per_frame[2])
    # captions: items with the same caption share it, items with other captions do not
    conds = {name: tensors[f"{b}.cond.{i}"] for b, bucket in enumerate(names) for i, name in enumerate(bucket)}
    assert not torch.equal(conds["photo_wide"], conds["clip_plain"])


# ---- errors before any encoding ------------------------------------------------------------------

def _copy(dataset, target: Path, names: list[str]) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    (target / "masks").mkdir(exist_ok=True)
    for name in names:
        item = dataset["items"][name]
        shutil.copy(dataset["folder"] / item["file"], target / item["file"])
        if item["mask_file"]:
            shutil.copy(dataset["mask_folder"] / item["mask_file"], target / "masks" / item["mask_file"])
    return target


def bad_folders(dataset, input_dir: Path) -> dict[str, tuple[str, dict, list[str]]]:
    """{case: (folder, node overrides, words the error must contain)}."""
    base = input_dir / "wm_bad"
    cases = {}
    _copy(dataset, base / "missing", ["photo_wide", "photo_tall"])
    cases["missing mask"] = ("wm_bad/missing", {"require_mask": True}, ["photo_tall", "require_mask", "Fix"])
    aspect_root = base / "aspect_root"
    write_tiny_dataset(aspect_root)
    bad = write_bad_aspect_mask(aspect_root)
    cases["aspect ratio"] = ("wm_bad/aspect_root/clips", {}, [bad.name, "aspect", "Fix"])
    frames = _copy(dataset, base / "frames", ["clip_perframe"])
    write_video(  # a 5-frame mask video for the 9-frame clip
        frames / "masks" / "clip_perframe.mkv", torch.zeros(5, 32, 64, dtype=torch.uint8).numpy(), codec="ffv1")
    cases["mask video length"] = ("wm_bad/frames", {}, ["clip_perframe", "5", "9", "Fix"])
    unreadable = _copy(dataset, base / "unreadable", ["photo_wide"])
    (unreadable / "broken.png").write_bytes(b"not a png at all")
    cases["unreadable"] = ("wm_bad/unreadable", {}, ["broken.png", "Fix"])
    empty = base / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    (empty / "notes.txt").write_text("no items here")
    cases["empty"] = ("wm_bad/empty", {}, ["wm_bad", "Fix"])
    return cases


def test_every_dataset_error_stops_before_any_encoding(server, dataset, tmp_path):
    for case, (folder, overrides, words) in bad_folders(dataset, server.base / "input").items():
        count = tmp_path / f"{case.replace(' ', '_')}.txt"
        g = Graph()
        mask_folder = f"{folder}/masks" if (server.base / "input" / folder / "masks").is_dir() else \
            f"{folder}/weighted_masks" if (server.base / "input" / folder / "weighted_masks").is_dir() else "(none)"
        ts = training_set(g, tiny_vae(g), folder, mask_folder=mask_folder, count_file=count, **overrides)
        g.add("WanMaskTestSaveSet", latents=ts[0], positive=ts[1], path=str(tmp_path / "never.safetensors"))
        entry = server.run(g.prompt, timeout=300)
        message = execution_error(entry)
        assert message, f"{case}: the run did not fail"
        for word in words:
            assert word in message, f"{case}: {word!r} not in the error: {message}"
        assert encodes(count) == 0, f"{case}: the VAE ran before the error"


# ---- training ------------------------------------------------------------------------------------

def trainer(g, model, ts, steps, **settings):
    values = dict(batch_size=1, grad_accumulation_steps=1, steps=steps, learning_rate=1e-3, rank=4, optimizer="SGD",
                  loss_function="MSE", seed=3, training_dtype="fp32", lora_dtype="fp32", quantized_backward=False,
                  algorithm="LoRA", gradient_checkpointing=False, checkpoint_depth=1, offloading=False,
                  existing_lora="[None]", bucket_mode=True, bypass_mode=False, gamma=1.0, min_weight=0.0,
                  prior_preservation_weight=0.0, prior_mask_threshold=0.0, normalize_per_sample=False,
                  require_mask=False)
    values.update(settings)
    return g.add("WanMaskTrainLoRA", model=model, latents=ts[0], positive=ts[1], **values)


def test_bucketed_training_draws_every_item(server, dataset, tmp_path):
    g = Graph()
    ts = training_set(g, tiny_vae(g), f"{SET}/clips", mask_folder=f"{SET}/clips/weighted_masks")
    trained = trainer(g, tiny_t2v_model(g), ts, steps=40, prior_preservation_weight=0.5)
    g.add("WanMaskTestSaveLoss", loss=trained[2], path=str(tmp_path / "loss.json"))
    server.run_ok(g.prompt, timeout=900)
    log = server.log_tail(200)
    assert "items drawn: 8 of 8 at least once" in log, log
    assert "buckets (latent frames x h x w)" in log
    loss = json.loads((tmp_path / "loss.json").read_text())
    assert len(loss["loss"]) == 40 and all(v == v for v in loss["loss"])    # every step ran, no NaN


def test_an_item_whose_weights_are_all_zero_sends_no_gradient(server, tmp_path):
    """One RGBA image whose alpha is 0 everywhere. ComfyUI's LoRA starts with its down matrices and the
    diffs at 0; with SGD (no momentum) and no gradient they stay exactly 0, while the same image at full
    weight moves them."""
    folder = server.base / "input" / "wm_zero"
    rgba = torch.randint(0, 256, (32, 32, 4), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    rgba[..., 3] = 0
    write_image(folder / "nobody.png", rgba.numpy())
    g = Graph()
    model, vae = tiny_t2v_model(g), tiny_vae(g)
    for tag, alpha in (("zero", True), ("full", False)):
        ts = training_set(g, vae, "wm_zero", alpha_mask=alpha, cache=False)
        g.add("WanMaskTestSaveLora", lora=trainer(g, model, ts, steps=3)[1], path=str(tmp_path / f"{tag}.safetensors"))
    server.run_ok(g.prompt, timeout=600)
    zero, full = (load_file(str(tmp_path / f"{tag}.safetensors")) for tag in ("zero", "full"))
    moving = [k for k in zero if k.endswith(("lora_down.weight", ".diff", ".diff_b"))]
    assert moving, sorted(zero)[:10]
    assert all(float(zero[k].abs().max()) == 0.0 for k in moving), "a zero-weight item changed the LoRA"
    assert any(float(full[k].abs().max()) > 0.0 for k in moving), "the full-weight control did not train"


def test_the_set_is_saved_in_musubis_layout_and_reads_back_the_same(server, dataset):
    """WanMaskSaveMusubiDataset writes items, weighted_masks/ and dataset.toml into the output folder;
    this pack's own pairing reads the export back with the same items and mask sources."""
    import tomllib
    from comfyui_wanmasking.masking.training.dataset_files import pair_training_folder
    from comfyui_wanmasking.masking.training.dataset_media import read_item
    g = Graph()
    g.add("WanMaskSaveMusubiDataset", folder=f"{SET}/clips", mask_folder=f"{SET}/clips/weighted_masks",
          alpha_mask=True, require_mask=False, output_folder="wm_musubi", method="mask_folder",
          video_masks="per_frame", subject_folder="(none)")
    server.run_ok(g.prompt, timeout=300)
    out = server.base / "output" / "wm_musubi"
    toml = tomllib.loads((out / "dataset.toml").read_text())
    assert any(d.get("mask_directory", "").endswith("weighted_masks") for d in toml["datasets"]), toml
    exported = pair_training_folder(out, out / "weighted_masks", alpha_mask=True)
    original = pair_training_folder(dataset["folder"], dataset["mask_folder"], alpha_mask=True)
    assert [i.name for i in exported.items] == [i.name for i in original.items]
    for before, after in zip(original.items, exported.items):
        frames = list(range(before.info.frames))
        _, m0, _ = read_item(before, frames)
        _, m1, _ = read_item(after, frames)
        assert (m0 is None) == (m1 is None), before.name
        if m0 is not None:
            assert torch.allclose(m0, m1, atol=0.5 / 255), before.name
    g = Graph()   # the folder is taken now: a second export there is refused, naming it
    g.add("WanMaskSaveMusubiDataset", folder=f"{SET}/clips", mask_folder="(none)", alpha_mask=True,
          require_mask=False, output_folder="wm_musubi", method="alpha", video_masks="static", subject_folder="(none)")
    message = execution_error(server.run(g.prompt, timeout=300))
    assert "wm_musubi" in message and "Fix" in message, message
