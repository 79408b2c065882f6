"""Masks and given frames under context windows, T2V and I2V, in a real ComfyUI on the tiny checkpoints:
WanMaskContextWindows' inputs, equality with native's windows (schedules, fuse methods, noise masks),
retain_first_frame, and exact per-window slices of the I2V conditioning, with and without given frames
as guides. VACE and Animate: test_context_windows_vace_animate.py; the shared graphs and checks:
context_window_runs.py (a test-only model wrapper records what the model receives per window; a run
without windows gives the full-clip conditionings that each window must be an exact slice of).
"""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_wanmasking.tests.integration.comfy_server import execution_error
from comfyui_wanmasking.tests.integration.context_window_runs import (
    C, I2V_CASES, L, NATIVE, S, T, calls, check_exact_slices, check_guides_are_the_given_frames, i2v_embeds, load,
    media, native_defaults, native_has_anchor, patch, read, record, sample, windows,
)
from comfyui_wanmasking.tests.integration.graphs import Graph, ksampler, tiny_t2v_model, zero_cond


def test_node_takes_native_inputs_then_the_guides_option(object_info):
    ours, native = object_info["WanMaskContextWindows"], object_info[NATIVE]
    names = lambda spec: [n for s in ("required", "optional") for n in spec["input"].get(s, {})]  # noqa: E731
    assert names(ours) == names(native) + ["given_frames_as_guides"]
    assert ours["category"].startswith(native["category"] + "/")  # beside native's node
    guides = ours["input"].get("optional", {}).get("given_frames_as_guides") or ours["input"]["required"]["given_frames_as_guides"]
    assert guides[1]["default"] is False and "EXPERIMENTAL" in guides[1]["tooltip"]
    assert ours["output"] == ["MODEL"]


def test_t2v_noise_mask_equals_native_and_keeps_exactly(server, object_info, io_dir):
    """T2V with a noise mask and the sampler patch's exact keep, in the default (step-dependent) schedule:
    ours equals native (right for T2V on both versions), and the kept cells end at the input latent."""
    g0 = torch.Generator().manual_seed(2)
    mask = torch.rand(1, 1, T, C, C, generator=g0)
    mask[..., :C // 2] = 0.0
    path = io_dir / "latent.safetensors"
    save_file({"samples": torch.randn(1, 16, T, C, C, generator=g0), "noise_mask": mask}, str(path))
    g = Graph()
    latent, cond = load(g, str(path))[2], zero_cond(g)
    model = patch(g, tiny_t2v_model(g))
    for name, ours in (("ours", True), ("native", False)):
        win = windows(g, object_info, model, ours=ours, context_schedule=native_defaults(object_info)["context_schedule"])
        g.add("WanMaskTestSave", path=str(io_dir / f"{name}.safetensors"),
              latent=ksampler(g, win, cond, latent, steps=3))
    g.add("WanMaskTestSave", path=str(io_dir / "plain.safetensors"), latent=ksampler(g, model, cond, latent, steps=3))
    server.run_ok(g.prompt)
    ours, native, plain = (read(io_dir, n)["samples"] for n in ("ours", "native", "plain"))
    x0 = load_file(str(path))["samples"]
    assert torch.equal(ours, native)
    assert not torch.equal(ours, plain)  # the windows were used
    kept = (mask == 0).expand_as(x0)
    assert torch.equal(ours[kept], x0[kept]) and (ours[~kept] - x0[~kept]).abs().mean() > 1e-2


@pytest.mark.parametrize("fuse,schedule", [("flat", "standard_static"), ("overlap-linear", "standard_uniform"),
                                            ("relative", "standard_static"), ("pyramid", "looped_uniform"),
                                            ("pyramid", "batched")])
def test_every_schedule_and_fuse_method_equals_native_on_t2v(server, object_info, io_dir, fuse, schedule):
    """Native's own schedules and fuse weights, reused: the same windows and the same fused result."""
    g = Graph()
    latent, cond = g.add("EmptyHunyuanLatentVideo", width=S, height=S, length=L, batch_size=1), zero_cond(g)
    model = tiny_t2v_model(g)
    for name, ours in (("ours", True), ("native", False)):
        win = windows(g, object_info, model, ours=ours, fuse_method=fuse, context_schedule=schedule)
        g.add("WanMaskTestSave", path=str(io_dir / f"{name}.safetensors"), latent=ksampler(g, win, cond, latent, steps=2))
    server.run_ok(g.prompt)
    assert torch.equal(read(io_dir, "ours")["samples"], read(io_dir, "native")["samples"])


def test_retain_first_frame_lands_on_the_windows_first_frame_not_the_anchor(server, object_info, io_dir):
    """retain_first_frame (0.33): frame 0's conditioning replaces each window's first own frame's; the anchor
    keeps its own, so the model's input and conditioning agree there. Native puts it on the anchor."""
    if "retain_first_frame" not in native_defaults(object_info):
        pytest.skip("this ComfyUI's Wan context windows have no retain_first_frame")
    paths = media(io_dir)
    g = Graph()
    emb = i2v_embeds(g, paths, "start")
    base = tiny_t2v_model(g, "i2v")
    sample(g, io_dir, "full", record(g, base, io_dir / "full"), emb, steps=1)
    for name, ours in (("ours", True), ("native", False)):
        win = windows(g, object_info, record(g, base, io_dir / name), ours=ours, retain_first_frame=True)
        sample(g, io_dir, name, win, emb, steps=1)
    server.run_ok(g.prompt)
    full = calls(io_dir / "full")[0][0]["c_concat"]
    checked = 0
    for (o, meta), (n, native_meta) in zip(calls(io_dir / "ours"), calls(io_dir / "native")):
        anchor = native_meta["anchor"]
        assert meta["index_list"] == native_meta["index_list"]
        if anchor is None or anchor < 0:
            continue
        assert meta["x_indices"][0] == anchor
        assert torch.equal(o["c_concat"][:, :, 0], full[:, :, anchor])  # the anchor's own conditioning
        assert torch.equal(o["c_concat"][:, :, 1], full[:, :, 0])  # frame 0's on the first own frame
        assert torch.equal(n["c_concat"][:, :, 0], full[:, :, 0])  # native: frame 0's on the anchor
        checked += 1
    assert checked >= 2

    g = Graph()
    win = windows(g, object_info, patch(g, tiny_t2v_model(g, "i2v")), ours=False, retain_first_frame=True)
    sample(g, io_dir, "warned", win, i2v_embeds(g, paths, "start"), steps=1)
    server.run_ok(g.prompt)
    assert "retain_first_frame put frame 0's conditioning on each window's anchor" in server.log_tail(400)


@pytest.mark.parametrize("case", list(I2V_CASES))
def test_i2v_windows_slice_exactly_and_equal_native_where_it_runs(server, object_info, io_dir, case):
    """Exact slicing (guides off): every window's c_concat is the full clip's at exactly the window's frames
    (0.33: the anchor frame first). Native on the same graph: equal where it slices c_concat (0.33), the
    known crash where it does not (0.3.64). With keep_given_latents and exact keep, the kept latents stay."""
    paths = media(io_dir)
    _, _, t, given = I2V_CASES[case]
    g = Graph()
    emb = i2v_embeds(g, paths, case, keep=True)
    base = patch(g, tiny_t2v_model(g, "i2v"))
    sample(g, io_dir, "full", record(g, base, io_dir / "full"), emb, steps=1)
    sample(g, io_dir, "ours", windows(g, object_info, record(g, base, io_dir / "ours")), emb)
    g.add("WanMaskTestSave", path=str(io_dir / "input.safetensors"), latent=emb[2])
    server.run_ok(g.prompt)
    full = calls(io_dir / "full")[0][0]
    assert full["c_concat"].shape[2] == t
    check_exact_slices(io_dir / "ours", full, "c_concat", 2, native_has_anchor(object_info), None)
    ours, given_in = read(io_dir, "ours")["samples"], read(io_dir, "input")
    kept = (given_in["noise_mask"] == 0).expand_as(ours)
    assert kept[:, :, given[0]].all() and torch.equal(ours[kept], given_in["samples"][kept])

    g = Graph()
    emb = i2v_embeds(g, paths, case, keep=True)
    sample(g, io_dir, "native", windows(g, object_info, patch(g, tiny_t2v_model(g, "i2v")), ours=False), emb)
    entry = server.run(g.prompt)
    if native_has_anchor(object_info):
        assert entry["status"]["status_str"] == "success", execution_error(entry)
        assert torch.equal(read(io_dir, "native")["samples"], ours)
        assert "give each window only its own frames' conditioning" in server.log_tail(400)
    else:
        assert entry["status"]["status_str"] == "error"
        assert "Sizes of tensors must match" in execution_error(entry)
        assert "do not cut the I2V concat image and mask" in server.log_tail(400)


@pytest.mark.parametrize("case", ["first_last", "keyframes", "end_alone"])
def test_i2v_given_frames_as_guides_reach_every_window(server, object_info, io_dir, case):
    """given_frames_as_guides: each window's input holds, after its own frames, every given latent frame it
    lacks (start, end, keyframes, the separately encoded end latent), each with its own conditioning and
    the current latent at its position; the outputs stay the window's own frames only (it samples)."""
    paths = media(io_dir)
    _, _, t, given = I2V_CASES[case]
    g = Graph()
    emb = i2v_embeds(g, paths, case)
    base = tiny_t2v_model(g, "i2v")
    sample(g, io_dir, "full", record(g, base, io_dir / "full"), emb, steps=1)
    sample(g, io_dir, "guided", windows(g, object_info, record(g, base, io_dir / "guided"), guides=True), emb)
    sample(g, io_dir, "exact", windows(g, object_info, base), emb)
    server.run_ok(g.prompt)
    full = calls(io_dir / "full")[0][0]
    recorded = check_exact_slices(io_dir / "guided", full, "c_concat", 2, native_has_anchor(object_info), given)
    check_guides_are_the_given_frames(recorded, given)
    guided, exact = read(io_dir, "guided")["samples"], read(io_dir, "exact")["samples"]
    assert guided.shape == exact.shape == (1, 16, t, C, C) and torch.isfinite(guided).all()
    assert not torch.equal(guided, exact)
