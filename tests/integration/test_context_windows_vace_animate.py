"""Context windows on the VACE and Wan-Animate conditionings, in a real ComfyUI on the tiny checkpoints:
exact per-window slices of vace_context and of Animate's concat, pose latents and face pixels (with the
reference and motion frames as guides), equality with native where it slices, and the sampler patch's
length check before any window. T2V and I2V: test_context_windows.py; the shared graphs and checks:
context_window_runs.py.
"""
from __future__ import annotations

import torch
from safetensors.torch import save_file

from comfyui_wanmasking.tests.integration.comfy_server import execution_error
from comfyui_wanmasking.tests.integration.context_window_runs import (
    L, S, T, calls, check_exact_slices, check_guides_are_the_given_frames, load, media, native_has_anchor, patch,
    read, record, record_three_ways, sample, windows,
)
from comfyui_wanmasking.tests.integration.graphs import Graph, tiny_t2v_model, tiny_vae, zero_cond


def vace_embeds(g, paths):
    vae, cond, clip = tiny_vae(g), zero_cond(g), load(g, paths["clip"])
    return g.add("WanMaskVaceEmbeds", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L,
                 batch_size=1, strength=1.0, mask_threshold=0.5, control_video=clip[0], control_masks=clip[1],
                 reference_image=load(g, paths["ref"])[0])


def test_vace_with_reference_under_windows(server, object_info, io_dir):
    """VACE (control video, mask, reference): vace_context sliced on its time dim 3 with exactly each window's
    frames; with guides, the reference latent (frame 0) is in every window. Native: equal where it slices
    (0.33), the known crash where it does not (0.3.64)."""
    paths = media(io_dir)
    g = Graph()
    emb = vace_embeds(g, paths)
    base = tiny_t2v_model(g, "vace")
    record_three_ways(g, io_dir, object_info, base, emb)
    server.run_ok(g.prompt)
    full = calls(io_dir / "full")[0][0]
    assert full["vace_context"].shape[3] == T + 1
    check_exact_slices(io_dir / "ours", full, "vace_context", 3, native_has_anchor(object_info), None)
    guided = check_exact_slices(io_dir / "guided", full, "vace_context", 3, native_has_anchor(object_info), [0])
    assert all(meta["x_indices"][-1] == 0 for _, meta in guided if 0 not in meta["index_list"])
    ours = read(io_dir, "ours")["samples"]

    g = Graph()
    sample(g, io_dir, "native", windows(g, object_info, patch(g, tiny_t2v_model(g, "vace")), ours=False), vace_embeds(g, paths))
    entry = server.run(g.prompt)
    if native_has_anchor(object_info):
        assert entry["status"]["status_str"] == "success", execution_error(entry)
        assert torch.equal(read(io_dir, "native")["samples"], ours)
    else:
        assert entry["status"]["status_str"] == "error"
        assert "must match the size of tensor b" in execution_error(entry)
        assert "do not cut the VACE context and mask" in server.log_tail(400)


def test_animate_continue_motion_under_windows(server, object_info, io_dir):
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
    record_three_ways(g, io_dir, object_info, base, emb)
    server.run_ok(g.prompt)
    full = calls(io_dir / "full")[0][0]
    assert full["c_concat"].shape[2] == T
    check_exact_slices(io_dir / "ours", full, "c_concat", 2, native_has_anchor(object_info), None)
    recorded = check_exact_slices(io_dir / "guided", full, "c_concat", 2, native_has_anchor(object_info), [0, 1, 2])
    check_guides_are_the_given_frames(recorded, [0, 1, 2])


def test_conditioning_for_another_length_is_still_a_clear_error(server, object_info, io_dir):
    """The sampler patch's checks run on the whole clip before the windows: I2V embeds for 29 frames with a
    33-frame latent fail before sampling, naming the cause, with our windows as with none."""
    paths = media(io_dir)
    g = Graph()
    cond = zero_cond(g)
    emb = g.add("WanMaskI2VEmbeds", positive=cond, negative=cond, vae=tiny_vae(g), width=S, height=S, length=L - 4,
                batch_size=1, fun_or_fl2v_model=True, null_fill="gray", latent_strength=1.0,
                start_image=load(g, paths["start"])[0])
    latent = g.add("EmptyHunyuanLatentVideo", width=S, height=S, length=L, batch_size=1)
    model = windows(g, object_info, patch(g, tiny_t2v_model(g, "i2v")))
    out = g.add("KSampler", model=model, positive=emb[0], negative=emb[1], latent_image=latent, seed=1, steps=2,
                cfg=1.0, sampler_name="euler", scheduler="simple", denoise=1.0)
    g.add("WanMaskTestSave", path=str(io_dir / "never.safetensors"), latent=out)
    entry = server.run(g.prompt)
    assert entry["status"]["status_str"] == "error"
    msg = execution_error(entry)
    assert "built for 8 latent frames but the latent has 9" in msg, msg
    assert not (io_dir / "never.safetensors").exists()


def test_animate_pose_and_face_follow_the_windows_on_the_animate_model(server, object_info, io_dir):
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
    win = windows(g, object_info, record(g, base, io_dir / "guided"), guides=True, context_length=9, context_overlap=4)
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
