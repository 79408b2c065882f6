"""Masks and given frames under context windows, in a real ComfyUI on the tiny checkpoints.

33 frames at 32x32 (latent [1, 16, 9, 4, 4]; small, since the tiny VAE has the real one's width) in windows of 17 pixel frames (5 latent frames) with an
overlap of 8 (2 latent frames on both versions). A test-only model wrapper records what the model
receives per window (tests/integration/helper_nodes/windows_io.py); a run without windows gives the
full-clip conditionings that each window must be an exact slice of.
"""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_wanmasking.tests.integration.comfy_server import execution_error
from comfyui_wanmasking.tests.integration.graphs import Graph, ksampler, tiny_t2v_model, tiny_vae, zero_cond

L, S, T = 33, 32, 9
C = S // 8  # latent cells per side
WINDOW = {"context_length": 17, "context_overlap": 8, "context_schedule": "standard_static"}
NATIVE = "WanContextWindowsManual"


@pytest.fixture(scope="module")
def info(server):
    return server.get("/object_info")


def native_defaults(info) -> dict:
    """Native WanContextWindowsManual's widget defaults on this ComfyUI."""
    out = {}
    inputs = info[NATIVE]["input"]
    for section in ("required", "optional"):
        for name, spec in inputs.get(section, {}).items():
            opts = spec[1] if len(spec) > 1 else {}
            if name == "model":
                continue
            if "default" in opts:
                out[name] = opts["default"]
            elif isinstance(spec[0], list):
                out[name] = spec[0][0]
            else:
                out[name] = opts["options"][0]
    return out


def native_has_anchor(info) -> bool:
    """0.33's handler prepends the frame before each window (its Wan node has freenoise beside it)."""
    return "freenoise" in {**info[NATIVE]["input"]["required"], **info[NATIVE]["input"].get("optional", {})}


def windows(g, info, model, ours=True, guides=False, **over):
    kw = native_defaults(info) | WINDOW | over
    if ours:
        return g.add("WanMaskContextWindows", model=model, given_frames_as_guides=guides, **kw)
    return g.add(NATIVE, model=model, **kw)


def record(g, model, folder):
    return g.add("WanMaskTestRecordModelInputs", model=model, folder=str(folder))


def calls(folder) -> list[tuple[dict, dict]]:
    """[(tensors, window meta)] per model call, in call order."""
    out = []
    for path in sorted(folder.glob("call_*.safetensors")):
        out.append((load_file(str(path)), json.loads(path.with_suffix(".json").read_text())))
    return out


def media(io_dir) -> dict:
    g = torch.Generator().manual_seed(11)
    clip = torch.rand(L, S, S, 3, generator=g)
    box = torch.zeros(L, S, S)
    box[:, S // 4:3 * S // 4, S // 8:5 * S // 8] = 1.0
    items = {"clip": {"image": clip, "mask": box}, "start": {"image": clip[:1]}, "end": {"image": clip[-1:]},
             "keys": {"image": clip[[0, 16, 32]]}, "ref": {"image": torch.rand(1, S, S, 3, generator=g)},
             "motion": {"image": torch.rand(7, S, S, 3, generator=g)}}
    paths = {}
    for name, tensors in items.items():
        paths[name] = str(io_dir / f"media_{name}.safetensors")
        save_file(tensors, paths[name])
    return paths


def load(g, path):
    return g.add("WanMaskTestLoad", path=path)


def patch(g, model, exact_keep=True):
    return g.add("WanMaskSamplerPatch", model=model, differential="timestep", strength=1.0, exact_keep=exact_keep,
                 validate=True)


I2V_CASES = {
    # name: (embeds inputs, fun_or_fl2v_model, latent frames, given latent frames)
    "start": (("start",), True, T, [0]),
    "first_last": (("start", "end"), True, T, [0, T - 1]),
    "keyframes": (("keys",), True, T, [0, 4, 8]),
    "end_alone": (("start", "end"), False, T + 1, [0, T]),
}


def i2v_embeds(g, paths, case, keep=False):
    names, fun, _, _ = I2V_CASES[case]
    vae, cond = tiny_vae(g), zero_cond(g)
    kw = {"start_image": load(g, paths["start"])[0]} if "start" in names else {}
    if "end" in names:
        kw["end_image"] = load(g, paths["end"])[0]
    if "keys" in names:
        kw |= {"keyframes": load(g, paths["keys"])[0], "keyframe_indices": "0, 16, 32"}
    return g.add("WanMaskI2VEmbeds", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L, batch_size=1,
                 fun_or_fl2v_model=fun, null_fill="gray", latent_strength=1.0, keep_given_latents=keep, **kw)


def sample(g, io_dir, name, model, emb, steps=2):
    out = ksampler(g, model, emb[0], emb[2], steps=steps)
    g.add("WanMaskTestSave", path=str(io_dir / f"{name}.safetensors"), latent=out)
    return out


def record_three_ways(g, io_dir, info, base, emb):
    """Recorded runs of the embeds: without windows (1 step, the full clip's conditionings), in our windows
    with exact slicing ("ours") and with given frames as guides ("guided")."""
    sample(g, io_dir, "full", record(g, base, io_dir / "full"), emb, steps=1)
    sample(g, io_dir, "ours", windows(g, info, record(g, base, io_dir / "ours")), emb)
    sample(g, io_dir, "guided", windows(g, info, record(g, base, io_dir / "guided"), guides=True), emb)


def read(io_dir, name):
    return load_file(str(io_dir / f"{name}.safetensors"))


def check_exact_slices(folder, full: dict, key: str, dim: int, anchor_expected: bool, guides: list[int] | None):
    """Every recorded call's ``key`` is the full-clip one at exactly the frames the window's input holds."""
    recorded = calls(folder)
    assert recorded, "the model was never called"
    windows_seen = set()
    for tensors, meta in recorded:
        idx = meta["x_indices"]
        own = meta["index_list"]
        windows_seen.add(tuple(own))
        lead = [own[0] - 1] if anchor_expected and own[0] > 0 else []
        extra = [g for g in (guides or []) if g not in own and g not in lead]
        assert idx[:len(lead) + len(own)] == lead + own, meta
        assert sorted(idx[len(lead) + len(own):]) == sorted(extra), meta
        assert tensors["x"].shape[2] == len(idx)
        want = full[key].index_select(dim, torch.tensor(idx))
        assert torch.equal(tensors[key], want), (meta, float((tensors[key] - want).abs().max()))
    assert len(windows_seen) >= 3, windows_seen
    return recorded


def own_end(meta) -> int:
    """Positions of the anchor (if any) and the window's own frames in the model input."""
    lead = 0 if meta["x_indices"][0] == meta["index_list"][0] else 1
    return lead + len(meta["index_list"])


def check_guides_are_the_given_frames(recorded, guides: list[int]):
    """At each guide position the input holds that frame's latent as the window that owns it saw it in the
    same step (same sigma), and its concat conditioning with the given slots (1 - concat_mask = 1)."""
    by_step: dict[float, list] = {}
    for tensors, meta in recorded:
        by_step.setdefault(float(tensors["t"][0]), []).append((tensors, meta))
    checked = 0
    for step_calls in by_step.values():
        owner = {}
        for tensors, meta in step_calls:
            for pos in range(own_end(meta)):
                owner.setdefault(meta["x_indices"][pos], tensors["x"][:, :, pos])
        for tensors, meta in step_calls:
            for pos in range(own_end(meta), len(meta["x_indices"])):
                i = meta["x_indices"][pos]
                assert i in guides, meta
                assert torch.equal(tensors["x"][:, :, pos], owner[i]), (meta, i)
                assert (tensors["c_concat"][:, :4, pos] == 1).flatten(2).all(2).any(), (meta, i)
                checked += 1
    assert checked > 0


def test_node_takes_native_inputs_then_the_guides_option(info):
    ours, native = info["WanMaskContextWindows"], info[NATIVE]
    names = lambda spec: [n for s in ("required", "optional") for n in spec["input"].get(s, {})]  # noqa: E731
    assert names(ours) == names(native) + ["given_frames_as_guides"]
    assert ours["category"].startswith(native["category"] + "/")  # beside native's node
    guides = ours["input"].get("optional", {}).get("given_frames_as_guides") or ours["input"]["required"]["given_frames_as_guides"]
    assert guides[1]["default"] is False and "EXPERIMENTAL" in guides[1]["tooltip"]
    assert ours["output"] == ["MODEL"]


def test_t2v_noise_mask_equals_native_and_keeps_exactly(server, info, io_dir):
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
        win = windows(g, info, model, ours=ours, context_schedule=native_defaults(info)["context_schedule"])
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
def test_every_schedule_and_fuse_method_equals_native_on_t2v(server, info, io_dir, fuse, schedule):
    """Native's own schedules and fuse weights, reused: the same windows and the same fused result."""
    g = Graph()
    latent, cond = g.add("EmptyHunyuanLatentVideo", width=S, height=S, length=L, batch_size=1), zero_cond(g)
    model = tiny_t2v_model(g)
    for name, ours in (("ours", True), ("native", False)):
        win = windows(g, info, model, ours=ours, fuse_method=fuse, context_schedule=schedule)
        g.add("WanMaskTestSave", path=str(io_dir / f"{name}.safetensors"), latent=ksampler(g, win, cond, latent, steps=2))
    server.run_ok(g.prompt)
    assert torch.equal(read(io_dir, "ours")["samples"], read(io_dir, "native")["samples"])


def test_retain_first_frame_lands_on_the_windows_first_frame_not_the_anchor(server, info, io_dir):
    """retain_first_frame (0.33): frame 0's conditioning replaces each window's first own frame's; the anchor
    keeps its own, so the model's input and conditioning agree there. Native puts it on the anchor."""
    if "retain_first_frame" not in native_defaults(info):
        pytest.skip("this ComfyUI's Wan context windows have no retain_first_frame")
    paths = media(io_dir)
    g = Graph()
    emb = i2v_embeds(g, paths, "start")
    base = tiny_t2v_model(g, "i2v")
    sample(g, io_dir, "full", record(g, base, io_dir / "full"), emb, steps=1)
    for name, ours in (("ours", True), ("native", False)):
        win = windows(g, info, record(g, base, io_dir / name), ours=ours, retain_first_frame=True)
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
    win = windows(g, info, patch(g, tiny_t2v_model(g, "i2v")), ours=False, retain_first_frame=True)
    sample(g, io_dir, "warned", win, i2v_embeds(g, paths, "start"), steps=1)
    server.run_ok(g.prompt)
    assert "retain_first_frame put frame 0's conditioning on each window's anchor" in server.log_tail(400)


@pytest.mark.parametrize("case", list(I2V_CASES))
def test_i2v_windows_slice_exactly_and_equal_native_where_it_runs(server, info, io_dir, case):
    """Exact slicing (guides off): every window's c_concat is the full clip's at exactly the window's frames
    (0.33: the anchor frame first). Native on the same graph: equal where it slices c_concat (0.33), the
    known crash where it does not (0.3.64). With keep_given_latents and exact keep, the kept latents stay."""
    paths = media(io_dir)
    _, _, t, given = I2V_CASES[case]
    g = Graph()
    emb = i2v_embeds(g, paths, case, keep=True)
    base = patch(g, tiny_t2v_model(g, "i2v"))
    sample(g, io_dir, "full", record(g, base, io_dir / "full"), emb, steps=1)
    sample(g, io_dir, "ours", windows(g, info, record(g, base, io_dir / "ours")), emb)
    g.add("WanMaskTestSave", path=str(io_dir / "input.safetensors"), latent=emb[2])
    server.run_ok(g.prompt)
    full = calls(io_dir / "full")[0][0]
    assert full["c_concat"].shape[2] == t
    check_exact_slices(io_dir / "ours", full, "c_concat", 2, native_has_anchor(info), None)
    ours, given_in = read(io_dir, "ours")["samples"], read(io_dir, "input")
    kept = (given_in["noise_mask"] == 0).expand_as(ours)
    assert kept[:, :, given[0]].all() and torch.equal(ours[kept], given_in["samples"][kept])

    g = Graph()
    emb = i2v_embeds(g, paths, case, keep=True)
    sample(g, io_dir, "native", windows(g, info, patch(g, tiny_t2v_model(g, "i2v")), ours=False), emb)
    entry = server.run(g.prompt)
    if native_has_anchor(info):
        assert entry["status"]["status_str"] == "success", execution_error(entry)
        assert torch.equal(read(io_dir, "native")["samples"], ours)
        assert "give each window only its own frames' conditioning" in server.log_tail(400)
    else:
        assert entry["status"]["status_str"] == "error"
        assert "Sizes of tensors must match" in execution_error(entry)
        assert "do not cut the I2V concat image and mask" in server.log_tail(400)


@pytest.mark.parametrize("case", ["first_last", "keyframes", "end_alone"])
def test_i2v_given_frames_as_guides_reach_every_window(server, info, io_dir, case):
    """given_frames_as_guides: each window's input holds, after its own frames, every given latent frame it
    lacks (start, end, keyframes, the separately encoded end latent), each with its own conditioning and
    the current latent at its position; the outputs stay the window's own frames only (it samples)."""
    paths = media(io_dir)
    _, _, t, given = I2V_CASES[case]
    g = Graph()
    emb = i2v_embeds(g, paths, case)
    base = tiny_t2v_model(g, "i2v")
    sample(g, io_dir, "full", record(g, base, io_dir / "full"), emb, steps=1)
    sample(g, io_dir, "guided", windows(g, info, record(g, base, io_dir / "guided"), guides=True), emb)
    sample(g, io_dir, "exact", windows(g, info, base), emb)
    server.run_ok(g.prompt)
    full = calls(io_dir / "full")[0][0]
    recorded = check_exact_slices(io_dir / "guided", full, "c_concat", 2, native_has_anchor(info), given)
    check_guides_are_the_given_frames(recorded, given)
    guided, exact = read(io_dir, "guided")["samples"], read(io_dir, "exact")["samples"]
    assert guided.shape == exact.shape == (1, 16, t, C, C) and torch.isfinite(guided).all()
    assert not torch.equal(guided, exact)


def vace_embeds(g, paths):
    vae, cond, clip = tiny_vae(g), zero_cond(g), load(g, paths["clip"])
    return g.add("WanMaskVaceEmbeds", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L,
                 batch_size=1, strength=1.0, mask_threshold=0.5, control_video=clip[0], control_masks=clip[1],
                 reference_image=load(g, paths["ref"])[0])


def test_vace_with_reference_under_windows(server, info, io_dir):
    """VACE (control video, mask, reference): vace_context sliced on its time dim 3 with exactly each window's
    frames; with guides, the reference latent (frame 0) is in every window. Native: equal where it slices
    (0.33), the known crash where it does not (0.3.64)."""
    paths = media(io_dir)
    g = Graph()
    emb = vace_embeds(g, paths)
    base = tiny_t2v_model(g, "vace")
    record_three_ways(g, io_dir, info, base, emb)
    server.run_ok(g.prompt)
    full = calls(io_dir / "full")[0][0]
    assert full["vace_context"].shape[3] == T + 1
    check_exact_slices(io_dir / "ours", full, "vace_context", 3, native_has_anchor(info), None)
    guided = check_exact_slices(io_dir / "guided", full, "vace_context", 3, native_has_anchor(info), [0])
    assert all(meta["x_indices"][-1] == 0 for _, meta in guided if 0 not in meta["index_list"])
    ours = read(io_dir, "ours")["samples"]

    g = Graph()
    sample(g, io_dir, "native", windows(g, info, patch(g, tiny_t2v_model(g, "vace")), ours=False), vace_embeds(g, paths))
    entry = server.run(g.prompt)
    if native_has_anchor(info):
        assert entry["status"]["status_str"] == "success", execution_error(entry)
        assert torch.equal(read(io_dir, "native")["samples"], ours)
    else:
        assert entry["status"]["status_str"] == "error"
        assert "must match the size of tensor b" in execution_error(entry)
        assert "do not cut the VACE context and mask" in server.log_tail(400)


def test_animate_continue_motion_under_windows(server, info, io_dir):
    """Wan-Animate embeds (reference + 7 continue_motion frames, the last 5 used) on the tiny I2V model: the
    concat is [reference | clip], so the given frames are the reference (0) and the motion frames' latents
    (1, 2). Exact slicing per window; with guides each window holds them."""
    paths = media(io_dir)
    g = Graph()
    vae, cond = tiny_vae(g), zero_cond(g)
    emb = g.add("WanMaskAnimateEmbeds", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L - 4,
                batch_size=1, reference_image=load(g, paths["ref"])[0], continue_motion=load(g, paths["motion"])[0],
                continue_motion_max_frames=5)
    base = tiny_t2v_model(g, "i2v")
    record_three_ways(g, io_dir, info, base, emb)
    server.run_ok(g.prompt)
    full = calls(io_dir / "full")[0][0]
    assert full["c_concat"].shape[2] == T
    check_exact_slices(io_dir / "ours", full, "c_concat", 2, native_has_anchor(info), None)
    recorded = check_exact_slices(io_dir / "guided", full, "c_concat", 2, native_has_anchor(info), [0, 1, 2])
    check_guides_are_the_given_frames(recorded, [0, 1, 2])


def test_conditioning_for_another_length_is_still_a_clear_error(server, info, io_dir):
    """The sampler patch's checks run on the whole clip before the windows: I2V embeds for 29 frames with a
    33-frame latent fail before sampling, naming the cause, with our windows as with none."""
    paths = media(io_dir)
    g = Graph()
    cond = zero_cond(g)
    emb = g.add("WanMaskI2VEmbeds", positive=cond, negative=cond, vae=tiny_vae(g), width=S, height=S, length=L - 4,
                batch_size=1, fun_or_fl2v_model=True, null_fill="gray", latent_strength=1.0,
                start_image=load(g, paths["start"])[0])
    latent = g.add("EmptyHunyuanLatentVideo", width=S, height=S, length=L, batch_size=1)
    model = windows(g, info, patch(g, tiny_t2v_model(g, "i2v")))
    out = g.add("KSampler", model=model, positive=emb[0], negative=emb[1], latent_image=latent, seed=1, steps=2,
                cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0)
    g.add("WanMaskTestSave", path=str(io_dir / "never.safetensors"), latent=out)
    entry = server.run(g.prompt)
    assert entry["status"]["status_str"] == "error"
    msg = execution_error(entry)
    assert "built for 8 latent frames but the latent has 9" in msg, msg
    assert not (io_dir / "never.safetensors").exists()


def test_animate_pose_and_face_follow_the_windows_on_the_animate_model(server, info, io_dir):
    """The tiny Wan-Animate model, 13 frames (reference + 4 clip latents) in windows of 3 latent frames, with
    continue_motion and guides: the pose latents and face pixels each window gets are the full clip's for
    exactly its frames after position 0 (pose: latent i -> entry i-1; face: 4 pixel frames per latent), with
    the reference (no pose, no face) as the last guide."""
    g0 = torch.Generator().manual_seed(4)
    length = 13
    paths = {}
    for name, tensors in {"drive": {"image": torch.rand(length, S, S, 3, generator=g0)},
                          "face": {"image": torch.rand(length, 32, 32, 3, generator=g0)},
                          "ref": {"image": torch.rand(1, S, S, 3, generator=g0)},
                          "motion": {"image": torch.rand(5, S, S, 3, generator=g0)}}.items():
        paths[name] = str(io_dir / f"{name}.safetensors")
        save_file(tensors, paths[name])
    g = Graph()
    vae, cond = tiny_vae(g), zero_cond(g)
    emb = g.add("WanMaskAnimateEmbeds", positive=cond, negative=cond, vae=vae, width=S, height=S, length=length,
                batch_size=1, reference_image=load(g, paths["ref"])[0], pose_video=load(g, paths["drive"])[0],
                face_video=load(g, paths["face"])[0], continue_motion=load(g, paths["motion"])[0],
                continue_motion_max_frames=5)
    base = tiny_t2v_model(g, "animate")
    sample(g, io_dir, "full", record(g, base, io_dir / "full"), emb, steps=1)
    win = windows(g, info, record(g, base, io_dir / "guided"), guides=True, context_length=9, context_overlap=4)
    sample(g, io_dir, "guided", win, emb, steps=1)
    server.run_ok(g.prompt, timeout=1200)
    full = calls(io_dir / "full")[0][0]
    t = full["x"].shape[2]
    assert t == 5 and full["pose_latents"].shape[2] == t - 1 and full["face_pixel_values"].shape[2] == length
    recorded = calls(io_dir / "guided")
    assert len(recorded) >= 2
    for tensors, meta in recorded:
        idx = meta["x_indices"]
        assert idx[-1] == 0 or 0 in meta["index_list"], meta  # the reference: in the window or the last guide
        assert {1, 2} <= set(idx), meta  # the motion frames' latents (clip latents 0 and 1)
        assert torch.equal(tensors["c_concat"], full["c_concat"][:, :, idx])
        entries = [i - 1 for i in idx[1:] if i >= 1]
        assert torch.equal(tensors["pose_latents"], full["pose_latents"][:, :, entries]), meta
        frames = [4 * j + k for j in entries for k in range(4) if 4 * j + k < length]
        assert torch.equal(tensors["face_pixel_values"], full["face_pixel_values"][:, :, frames]), meta
    assert torch.isfinite(read(io_dir, "guided")["samples"]).all()
