"""The embed builder nodes inside a real ComfyUI: equivalence with the native Wan nodes, the deliberate
differences, end-to-end sampling on the tiny I2V and VACE checkpoints, and errors before sampling."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_wanmasking.tests.integration.comfy_server import execution_error
from comfyui_wanmasking.tests.integration.graphs import Graph, ksampler, tiny_t2v_model, tiny_vae, zero_cond

L, S = 17, 32  # 17 frames at 32x32 -> latent [1, 16, 5, 4, 4] (small: the tiny VAE has the real width)
C = S // 8  # latent cells per side
T = 5


def write_media(io_dir, items: dict) -> dict:
    """Save each {name: {key: tensor}} for WanMaskTestLoad; returns {name: path}."""
    paths = {name: str(io_dir / f"{name}.safetensors") for name in items}
    for name, tensors in items.items():
        save_file(tensors, paths[name])
    return paths


@pytest.fixture
def media(io_dir):
    """A clip, a box control mask (binary, exact size) and single images, saved for WanMaskTestLoad."""
    g = torch.Generator().manual_seed(5)
    clip = torch.rand(L, S, S, 3, generator=g)
    box = torch.zeros(L, S, S)
    box[:, S // 4:3 * S // 4, S // 8:5 * S // 8] = 1.0
    return write_media(io_dir, {
        "clip": {"image": clip, "mask": box},
        "start1": {"image": clip[:1]},
        "start3": {"image": clip[:3]},
        "start5": {"image": clip[:5]},
        "end": {"image": torch.rand(1, S, S, 3, generator=g)},
        "ref": {"image": torch.rand(1, S, S, 3, generator=g)},
    })


def load(g, path):
    return g.add("WanMaskTestLoad", path=path)


def save_cond(g, path, cond, value=None):
    kw = {"value": value} if value is not None else {}
    g.add("WanMaskTestSaveConditioning", path=path, conditioning=cond, **kw)


def i2v(g, vae, cond, length=L, fun=True, fill="gray", strength=1.0, **optional):
    return g.add("WanMaskI2VEmbeds", positive=cond, negative=cond, vae=vae, width=S, height=S, length=length,
                 batch_size=1, fun_or_fl2v_model=fun, null_fill=fill, latent_strength=strength, **optional)


def read(path):
    return load_file(str(path))


def max_diff(a, b):
    return float((a.float() - b.float()).abs().max())


def test_nodes_are_listed_with_their_public_inputs(server):
    info = server.get("/object_info")
    i2v_info = info["WanMaskI2VEmbeds"]
    assert list(i2v_info["input"]["required"]) == ["positive", "negative", "vae", "width", "height", "length",
                                                   "batch_size", "fun_or_fl2v_model", "null_fill", "latent_strength"]
    assert list(i2v_info["input"]["optional"])[:5] == ["start_image", "end_image", "keyframes", "keyframe_indices",
                                                       "clip_vision_output"]
    assert i2v_info["output"][:4] == ["CONDITIONING", "CONDITIONING", "LATENT", "MASK"]
    null_fill = i2v_info["input"]["required"]["null_fill"]  # V3 combo: ["COMBO", {"options": [...]}]
    assert null_fill[0] == "COMBO" and null_fill[1]["options"] == ["gray", "black"]
    vace = info["WanMaskVaceEmbeds"]
    assert list(vace["input"]["required"])[:8] == ["positive", "negative", "vae", "width", "height", "length",
                                                   "batch_size", "strength"]
    assert list(vace["input"]["optional"]) == ["control_video", "control_masks", "reference_image"]
    assert vace["output"] == ["CONDITIONING", "CONDITIONING", "LATENT", "INT"]
    assert "1 = reactive" in vace["input"]["optional"]["control_masks"][1]["tooltip"]
    assert info["WanMaskTemporal"]["output"] == ["MASK"]
    animate = info["WanMaskAnimateEmbeds"]
    assert {"bg_images", "mask"} <= set(animate["input"]["optional"])


@pytest.mark.parametrize("start", ["start1", "start5"])
def test_start_image_equals_native_WanImageToVideo(server, media, io_dir, start):
    """1 or 5 start frames: same concat image, same latent, and the same mask the model sees (native
    stores 1 channel that concat_cond repeats to 4; this pack stores the 4 slot channels)."""
    g = Graph()
    vae, cond, img = tiny_vae(g), zero_cond(g), load(g, media[start])
    native = g.add("WanImageToVideo", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L,
                   batch_size=1, start_image=img[0])
    ours = i2v(g, vae, cond, start_image=img[0])
    for name, node in (("native", native), ("ours", ours)):
        save_cond(g, str(io_dir / f"{name}.safetensors"), node[0])
        g.add("WanMaskTestSave", path=str(io_dir / f"{name}_latent.safetensors"), latent=node[2])
    server.run_ok(g.prompt)
    n, o = read(io_dir / "native.safetensors"), read(io_dir / "ours.safetensors")
    assert o["concat_latent_image"].shape == (1, 16, T, C, C)
    assert max_diff(n["concat_latent_image"], o["concat_latent_image"]) == 0.0
    assert n["concat_mask"].shape == (1, 1, T, C, C) and o["concat_mask"].shape == (1, 4, T, C, C)
    assert max_diff(n["concat_mask"].expand(1, 4, T, C, C), o["concat_mask"]) == 0.0
    nl, ol = read(io_dir / "native_latent.safetensors"), read(io_dir / "ours_latent.safetensors")
    assert max_diff(nl["samples"], ol["samples"]) == 0.0 and ol["samples"].shape == (1, 16, T, C, C)


def test_latent_strength_scales_the_given_latent_toward_the_empty_latent(server, media, io_dir):
    """latent_strength 0.5: latent 0 (the start frame) = mean + 0.5 * (encoded - mean) per channel, with
    mean = the Wan 2.1 latent mean (0 after the model's normalization); other latents untouched."""
    g = Graph()
    vae, cond, img = tiny_vae(g), zero_cond(g), load(g, media["start1"])
    full = i2v(g, vae, cond, start_image=img[0])
    half = i2v(g, vae, cond, strength=0.5, start_image=img[0])
    save_cond(g, str(io_dir / "full.safetensors"), full[0])
    save_cond(g, str(io_dir / "half.safetensors"), half[0])
    server.run_ok(g.prompt)
    f, h = read(io_dir / "full.safetensors")["concat_latent_image"], read(io_dir / "half.safetensors")["concat_latent_image"]
    assert max_diff(f[:, :, 1:], h[:, :, 1:]) == 0.0
    half_mean = h[:, :, 0] - 0.5 * f[:, :, 0]  # = 0.5 * mean, constant over h, w
    assert float(half_mean.std(dim=(-2, -1)).max()) < 1e-5
    wan21_mean_c0 = -0.7571  # comfy.latent_formats.Wan21 latents_mean[0]
    assert abs(float(half_mean[0, 0, 0, 0]) - 0.5 * wan21_mean_c0) < 1e-3


def test_three_start_frames_differ_from_native_by_the_slot_fix(server, media, io_dir):
    """Deliberate difference: native WanImageToVideo marks whole latent frames ((3-1)//4+1 = latent 0 only),
    so encoded frames 1-2 count as "generate". This pack marks slots 0..5: frames 0, 1, 2."""
    g = Graph()
    vae, cond, img = tiny_vae(g), zero_cond(g), load(g, media["start3"])
    native = g.add("WanImageToVideo", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L,
                   batch_size=1, start_image=img[0])
    ours = i2v(g, vae, cond, start_image=img[0])
    save_cond(g, str(io_dir / "native.safetensors"), native[0])
    save_cond(g, str(io_dir / "ours.safetensors"), ours[0])
    server.run_ok(g.prompt)
    n, o = read(io_dir / "native.safetensors"), read(io_dir / "ours.safetensors")
    assert max_diff(n["concat_latent_image"], o["concat_latent_image"]) == 0.0
    native_seen = n["concat_mask"].expand(1, 4, T, C, C)
    assert native_seen[0, :, 1, 0, 0].tolist() == [1, 1, 1, 1]  # frames 1..4 all "generate"
    assert o["concat_mask"][0, :, 1, 0, 0].tolist() == [0, 0, 1, 1]  # frames 1, 2 given; 3, 4 generated
    assert max_diff(native_seen[:, :, 0], o["concat_mask"][:, :, 0]) == 0.0
    assert max_diff(native_seen[:, :, 2:], o["concat_mask"][:, :, 2:]) == 0.0


def test_first_last_equals_native_WanFirstLastFrameToVideo(server, media, io_dir):
    g = Graph()
    vae, cond = tiny_vae(g), zero_cond(g)
    start, end = load(g, media["start1"]), load(g, media["end"])
    cv_start, cv_end = (g.add("WanMaskTestClipVisionOutput", tokens=5, seed=s) for s in (1, 2))
    native = g.add("WanFirstLastFrameToVideo", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L,
                   batch_size=1, start_image=start[0], end_image=end[0], clip_vision_start_image=cv_start[0],
                   clip_vision_end_image=cv_end[0])
    ours = i2v(g, vae, cond, fun=True, start_image=start[0], end_image=end[0], clip_vision_output=cv_start[0],
               clip_vision_end_output=cv_end[0])
    for name, node in (("native", native), ("ours", ours)):
        save_cond(g, str(io_dir / f"{name}.safetensors"), node[1])  # the negative gets the same embeds
        g.add("WanMaskTestSave", path=str(io_dir / f"{name}_latent.safetensors"), latent=node[2])
    g.add("WanMaskTestSave", path=str(io_dir / "frames.safetensors"), mask=ours[3])
    server.run_ok(g.prompt)
    n, o = read(io_dir / "native.safetensors"), read(io_dir / "ours.safetensors")
    for key in ("concat_latent_image", "concat_mask", "clip_vision_output"):
        assert n[key].shape == o[key].shape, key
        assert max_diff(n[key], o[key]) == 0.0, key
    assert o["clip_vision_output"].shape == (1, 10, 1280)  # start tokens, then end tokens
    assert max_diff(o["clip_vision_output"][:, :5], o["clip_vision_output"][:, 5:]) > 0.1
    assert o["concat_mask"][0, :, -1, 0, 0].tolist() == [1, 1, 1, 0]
    assert max_diff(read(io_dir / "native_latent.safetensors")["samples"],
                    read(io_dir / "ours_latent.safetensors")["samples"]) == 0.0
    frames = read(io_dir / "frames.safetensors")["mask"]
    assert frames.shape == (L, S, S)
    assert frames.flatten(1).amax(1).tolist() == [0] + [1] * (L - 2) + [0]


def test_vace_equals_native_WanVaceToVideo(server, media, io_dir):
    g = Graph()
    vae, cond, clip, ref = tiny_vae(g), zero_cond(g), load(g, media["clip"]), load(g, media["ref"])
    common = dict(positive=cond, negative=cond, vae=vae, width=S, height=S, length=L, batch_size=1, strength=0.8,
                  control_video=clip[0], control_masks=clip[1], reference_image=ref[0])
    native = g.add("WanVaceToVideo", **common)
    ours = g.add("WanMaskVaceEmbeds", mask_threshold=0.5, **common)
    for name, node in (("native", native), ("ours", ours)):
        save_cond(g, str(io_dir / f"{name}.safetensors"), node[0], value=node[3])
        g.add("WanMaskTestSave", path=str(io_dir / f"{name}_latent.safetensors"), latent=node[2])
    server.run_ok(g.prompt)
    n, o = read(io_dir / "native.safetensors"), read(io_dir / "ours.safetensors")
    assert o["vace_frames.0"].shape == (1, 32, T + 1, C, C) and o["vace_mask.0"].shape == (1, 64, T + 1, C, C)
    for key in ("vace_frames.0", "vace_mask.0", "vace_strength.0", "int"):
        assert n[key].shape == o[key].shape, key
        assert max_diff(n[key], o[key]) == 0.0, key
    assert float(o["int"]) == 1.0 and abs(float(o["vace_strength.0"]) - 0.8) < 1e-6
    assert max_diff(read(io_dir / "native_latent.safetensors")["samples"],
                    read(io_dir / "ours_latent.safetensors")["samples"]) == 0.0


def test_animate_mask_is_native_shifted_by_three_slots(server, media, io_dir):
    """Deliberate difference: native WanAnimateToVideo writes character-mask frame f to slot f; this pack
    writes it to slot f+3 (frame 0 to slots 0..3), the causal group that holds frame f. The concat image
    (reference + background clip) is identical."""
    g = Graph()
    vae, cond, clip, ref = tiny_vae(g), zero_cond(g), load(g, media["clip"]), load(g, media["ref"])
    native = g.add("WanAnimateToVideo", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L,
                   batch_size=1, continue_motion_max_frames=5, video_frame_offset=0, reference_image=ref[0],
                   background_video=clip[0], character_mask=clip[1])
    ours = g.add("WanMaskAnimateEmbeds", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L,
                 batch_size=1, reference_image=ref[0], bg_images=clip[0], mask=clip[1])
    save_cond(g, str(io_dir / "native.safetensors"), native[0], value=native[3])
    save_cond(g, str(io_dir / "ours.safetensors"), ours[0], value=ours[3])
    server.run_ok(g.prompt)
    n, o = read(io_dir / "native.safetensors"), read(io_dir / "ours.safetensors")
    assert max_diff(n["concat_latent_image"], o["concat_latent_image"]) == 0.0
    assert float(n["int"]) == float(o["int"]) == 1.0
    assert n["concat_mask"].shape == o["concat_mask"].shape == (1, 4, T + 1, C, C)

    def slot_view(m):  # [1, 4, 1+T, h, w] -> clip slots [4T, h, w]
        return m[0, :, 1:].transpose(0, 1).reshape(4 * T, C, C)
    ns, os_ = slot_view(n["concat_mask"]), slot_view(o["concat_mask"])
    assert max_diff(os_[3:3 + L], ns[:L]) == 0.0  # ours slot f+3 == native slot f
    assert max_diff(os_[:3], ns[:1].expand(3, C, C)) == 0.0  # frame 0 repeated into slots 0..2
    # the reference latent block is all "given" in both
    assert (o["concat_mask"][:, :, 0] == 0).all() and max_diff(n["concat_mask"][:, :, 0], o["concat_mask"][:, :, 0]) == 0.0


def test_animate_moving_mask_lands_in_its_own_group(server, io_dir):
    """A character present only in frame 6: this pack marks latent 2, channel 1 (frames 5..8 are latent 2);
    native marks slot 6 = latent 1, channel 2 (a frame of latent 1's group, 3 frames early), and leaves the
    3 slots past the last frame at 1, whatever the mask says there."""
    mask = torch.zeros(L, S, S)
    mask[6] = 1.0
    path = str(io_dir / "bg.safetensors")
    save_file({"image": torch.full((L, S, S, 3), 0.4), "mask": mask}, path)
    g = Graph()
    vae, cond, bg = tiny_vae(g), zero_cond(g), load(g, path)
    native = g.add("WanAnimateToVideo", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L,
                   batch_size=1, continue_motion_max_frames=5, video_frame_offset=0,
                   background_video=bg[0], character_mask=bg[1])
    ours = g.add("WanMaskAnimateEmbeds", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L,
                 batch_size=1, bg_images=bg[0], mask=bg[1])
    save_cond(g, str(io_dir / "native.safetensors"), native[0])
    save_cond(g, str(io_dir / "ours.safetensors"), ours[0])
    server.run_ok(g.prompt)
    n, o = read(io_dir / "native.safetensors"), read(io_dir / "ours.safetensors")
    hot = lambda m: (m[0, :, 1:, 0, 0] == 1).nonzero().tolist()  # noqa: E731  [channel, clip latent]
    assert hot(o["concat_mask"]) == [[1, 2]]
    # native: slot 6 = latent 1, channel 2; and slots 17..19 (past the 17 frames) stay 1 = generate
    assert sorted(hot(n["concat_mask"])) == [[1, 4], [2, 1], [2, 4], [3, 4]]


def test_animate_continue_motion_and_frame_offset_match_native(server, io_dir):
    """Chunked long video: 7 frames of the previous chunk (the last 5 used) and video_frame_offset 20, with
    40-frame pose, face, background and character-mask videos. Native WanAnimateToVideo and this pack
    seek the videos to frame 15 alike: the concat image, pose latent, face pixels, trim_image and the
    next offset are identical; the concat mask differs only by the known 3-slot shift of the character
    mask (the motion frames are given in both)."""
    g0 = torch.Generator().manual_seed(9)
    src = 40
    mask = (torch.rand(src, 1, 1, generator=g0) > 0.5).float().expand(src, S, S).contiguous()
    paths = write_media(io_dir, {"drive": {"image": torch.rand(src, S, S, 3, generator=g0), "mask": mask},
                                 "face": {"image": torch.rand(src, 16, 16, 3, generator=g0)},
                                 "motion": {"image": torch.rand(7, S, S, 3, generator=g0)}})
    g = Graph()
    vae, cond = tiny_vae(g), zero_cond(g)
    drive, face, motion = (load(g, paths[k]) for k in ("drive", "face", "motion"))
    common = dict(positive=cond, negative=cond, vae=vae, width=S, height=S, length=L, batch_size=1,
                  continue_motion_max_frames=5, video_frame_offset=20, continue_motion=motion[0],
                  pose_video=drive[0], face_video=face[0])
    native = g.add("WanAnimateToVideo", background_video=drive[0], character_mask=drive[1], **common)
    ours = g.add("WanMaskAnimateEmbeds", bg_images=drive[0], mask=drive[1], **common)
    for name, node, outputs in (("native", native, (3, 4, 5)), ("ours", ours, (3, 4, 5))):
        for i in outputs:
            save_cond(g, str(io_dir / f"{name}_{i}.safetensors"), node[0], value=node[i])
    server.run_ok(g.prompt)
    n = {i: read(io_dir / f"native_{i}.safetensors") for i in (3, 4, 5)}
    o = {i: read(io_dir / f"ours_{i}.safetensors") for i in (3, 4, 5)}
    assert [float(o[i]["int"]) for i in (3, 4, 5)] == [float(n[i]["int"]) for i in (3, 4, 5)] == [1.0, 5.0, 32.0]
    n, o = n[3], o[3]
    for key in ("concat_latent_image", "pose_video_latent", "face_video_pixels"):
        assert n[key].shape == o[key].shape, key
        assert max_diff(n[key], o[key]) == 0.0, key

    def slot_view(m):  # [1, 4, 1+T, h, w] -> clip slots [4T]
        return m[0, :, 1:, 0, 0].transpose(0, 1).reshape(4 * T)
    ns, os_ = slot_view(n["concat_mask"]), slot_view(o["concat_mask"])
    assert os_[:8].tolist() == [0.0] * 8 and ns[:5].tolist() == [0.0] * 5  # motion frames 0..4: given
    assert os_[8:].tolist() == ns[5:L].tolist() == mask[15 + 5:15 + L, 0, 0].tolist()  # frames 5..16 = source 20..31


def test_i2v_sampled_end_to_end_keeps_the_given_latents(server, media, io_dir):
    """Start + end (fun off: end encoded alone as an extra latent) on the tiny 36-channel I2V model, with
    keep_given_latents: the known latent frames come back at their encoded values; the extra end latent
    is trimmed before decoding."""
    g = Graph()
    vae, cond = tiny_vae(g), zero_cond(g)
    start, end = load(g, media["start1"]), load(g, media["end"])
    emb = i2v(g, vae, cond, fun=False, start_image=start[0], end_image=end[0], keep_given_latents=True)
    sampled = ksampler(g, tiny_t2v_model(g, "i2v"), emb[0], emb[2], steps=2)
    trimmed = g.add("WanMaskTrimLatent", samples=sampled, trim_start=0, trim_end=emb[4])
    decoded = g.add("VAEDecode", samples=trimmed, vae=vae)
    save_cond(g, str(io_dir / "cond.safetensors"), emb[0], value=emb[4])
    g.add("WanMaskTestSave", path=str(io_dir / "before.safetensors"), latent=emb[2])
    g.add("WanMaskTestSave", path=str(io_dir / "after.safetensors"), latent=sampled, image=decoded)
    server.run_ok(g.prompt)
    c, before, after = (read(io_dir / f"{n}.safetensors") for n in ("cond", "before", "after"))
    assert c["concat_latent_image"].shape == (1, 16, T + 1, C, C) and float(c["int"]) == 1.0
    assert before["noise_mask"][0, 0, :, 0, 0].tolist() == [0, 1, 1, 1, 1, 0]
    known = after["samples"][:, :, [0, T]]
    assert max_diff(known, c["concat_latent_image"][:, :, [0, T]]) < 1e-4
    assert (after["samples"][:, :, 1:T] - before["samples"][:, :, 1:T]).abs().mean() > 1e-2
    assert after["image"].shape == (L, S, S, 3)


def test_i2v_keyframes_sampled_end_to_end(server, media, io_dir):
    """Keyframes filling latents 0 and 2, black fill, and a CLIP vision output that reaches the tiny model's
    img_emb (sampling would fail on a wrong feature shape)."""
    g = Graph()
    vae, cond, clip = tiny_vae(g), zero_cond(g), load(g, media["start5"])
    clip_vision = g.add("WanMaskTestClipVisionOutput", tokens=257)
    emb = i2v(g, vae, cond, fill="black", keyframes=clip[0], keyframe_indices="0, 5, 6, 7, 8",
              clip_vision_output=clip_vision)
    sampled = ksampler(g, tiny_t2v_model(g, "i2v"), emb[0], emb[2], steps=2)
    decoded = g.add("VAEDecode", samples=sampled, vae=vae)
    save_cond(g, str(io_dir / "cond.safetensors"), emb[0])
    g.add("WanMaskTestSave", path=str(io_dir / "after.safetensors"), latent=sampled, image=decoded)
    server.run_ok(g.prompt)
    c = read(io_dir / "cond.safetensors")
    assert c["clip_vision_output"].shape == (1, 257, 1280)
    assert c["concat_mask"][0, :, :, 0, 0].transpose(0, 1).tolist() == [
        [0, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]
    after = read(io_dir / "after.safetensors")
    assert after["samples"].shape == (1, 16, T, C, C) and torch.isfinite(after["samples"]).all()
    assert after["image"].shape == (L, S, S, 3)


def test_vace_with_temporal_mask_sampled_end_to_end(server, media, io_dir):
    """WanMaskTemporal keeps frames 0-4 (mask 0 = inactive) for VACE extension; sampled on the tiny VACE
    model with a reference, then the reference latent is trimmed with trim_latent."""
    g = Graph()
    vae, cond, clip, ref = tiny_vae(g), zero_cond(g), load(g, media["clip"]), load(g, media["ref"])
    keep = g.add("WanMaskTemporal", length=L, width=S, height=S, keep="0-4")
    emb = g.add("WanMaskVaceEmbeds", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L,
                batch_size=1, strength=1.0, mask_threshold=0.5, control_video=clip[0], control_masks=keep,
                reference_image=ref[0])
    sampled = ksampler(g, tiny_t2v_model(g, "vace"), emb[0], emb[2], steps=2)
    trimmed = g.add("TrimVideoLatent", samples=sampled, trim_amount=emb[3])
    decoded = g.add("VAEDecode", samples=trimmed, vae=vae)
    save_cond(g, str(io_dir / "cond.safetensors"), emb[0])
    g.add("WanMaskTestSave", path=str(io_dir / "after.safetensors"), latent=trimmed, image=decoded, mask=keep)
    server.run_ok(g.prompt)
    c, after = read(io_dir / "cond.safetensors"), read(io_dir / "after.safetensors")
    assert after["mask"].flatten(1).amax(1).tolist() == [0] * 5 + [1] * (L - 5)
    vm = c["vace_mask.0"]
    assert vm.shape == (1, 64, T + 1, C, C)
    # nearest-exact picks frames 1, 5, 9, 13 for latents 0..3 (after the reference): only latent 0 is kept
    assert vm[0, :, :, 0, 0].amax(0).tolist() == [0, 0, 1, 1, 1, 1]
    assert after["samples"].shape == (1, 16, T, C, C) and after["image"].shape == (L, S, S, 3)


def test_animate_sampled_end_to_end_on_the_tiny_i2v_model(server, media, io_dir):
    g = Graph()
    vae, cond, clip, ref = tiny_vae(g), zero_cond(g), load(g, media["clip"]), load(g, media["ref"])
    emb = g.add("WanMaskAnimateEmbeds", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L,
                batch_size=1, reference_image=ref[0], pose_video=clip[0], bg_images=clip[0], mask=clip[1])
    sampled = ksampler(g, tiny_t2v_model(g, "i2v"), emb[0], emb[2], steps=2)
    trimmed = g.add("TrimVideoLatent", samples=sampled, trim_amount=emb[3])
    g.add("WanMaskTestSave", path=str(io_dir / "after.safetensors"), latent=trimmed,
          image=g.add("VAEDecode", samples=trimmed, vae=vae))
    server.run_ok(g.prompt)
    after = read(io_dir / "after.safetensors")
    assert after["samples"].shape == (1, 16, T, C, C) and after["image"].shape == (L, S, S, 3)


def test_first_last_sampled_on_the_tiny_flf2v_model_equals_native(server, media, io_dir):
    """The tiny FLF2V checkpoint (img_emb.emb_pos for 514 tokens) samples our embeds with start + end
    CLIP tokens to the same latent as native WanFirstLastFrameToVideo's; swapping the two CLIP outputs
    changes the result, so the model really reads the joined tokens in their order."""
    g = Graph()
    vae, cond = tiny_vae(g), zero_cond(g)
    start, end = load(g, media["start1"]), load(g, media["end"])
    cv1, cv2 = (g.add("WanMaskTestClipVisionOutput", tokens=257, seed=s) for s in (1, 2))
    model = tiny_t2v_model(g, "flf2v")
    native = g.add("WanFirstLastFrameToVideo", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L,
                   batch_size=1, start_image=start[0], end_image=end[0], clip_vision_start_image=cv1[0],
                   clip_vision_end_image=cv2[0])
    runs = {"native": native,
            "ours": i2v(g, vae, cond, start_image=start[0], end_image=end[0], clip_vision_output=cv1[0],
                        clip_vision_end_output=cv2[0]),
            "swapped": i2v(g, vae, cond, start_image=start[0], end_image=end[0], clip_vision_output=cv2[0],
                           clip_vision_end_output=cv1[0])}
    for name, emb in runs.items():
        g.add("WanMaskTestSave", path=str(io_dir / f"{name}.safetensors"),
              latent=ksampler(g, model, emb[0], emb[2], steps=2))
    server.run_ok(g.prompt)
    out = {name: read(io_dir / f"{name}.safetensors")["samples"] for name in runs}
    assert out["ours"].shape == (1, 16, T, C, C) and torch.isfinite(out["ours"]).all()
    assert max_diff(out["ours"], out["native"]) == 0.0
    assert max_diff(out["ours"], out["swapped"]) > 1e-3


def test_animate_chunk_sampled_on_the_tiny_animate_model(server, io_dir):
    """A second chunk (5 continue_motion frames, video_frame_offset 10) on the tiny Wan-Animate checkpoint:
    it samples, and the model reads our pose latent and face pixels (changing either changes the result).
    9 frames and 1 step: the face motion encoder runs at its real size on 512x512 crops."""
    g0 = torch.Generator().manual_seed(3)
    src, length, t = 30, 9, 3
    paths = write_media(io_dir, {
        "drive": {"image": torch.rand(src, S, S, 3, generator=g0), "mask": torch.ones(src, S, S)},
        "pose2": {"image": torch.rand(src, S, S, 3, generator=g0)},
        "face": {"image": torch.rand(src, 32, 32, 3, generator=g0)},
        "face2": {"image": torch.rand(src, 32, 32, 3, generator=g0)},
        "ref": {"image": torch.rand(1, S, S, 3, generator=g0)},
        "motion": {"image": torch.rand(5, S, S, 3, generator=g0)}})
    g = Graph()
    vae, cond, model = tiny_vae(g), zero_cond(g), tiny_t2v_model(g, "animate")
    n = {name: load(g, path) for name, path in paths.items()}

    def chunk(tag, pose, face):
        emb = g.add("WanMaskAnimateEmbeds", positive=cond, negative=cond, vae=vae, width=S, height=S, length=length,
                    batch_size=1, reference_image=n["ref"][0], pose_video=pose, face_video=face,
                    bg_images=n["drive"][0], mask=n["drive"][1], continue_motion=n["motion"][0],
                    continue_motion_max_frames=5, video_frame_offset=10)
        trimmed = g.add("TrimVideoLatent", samples=ksampler(g, model, emb[0], emb[2], steps=1), trim_amount=emb[3])
        g.add("WanMaskTestSave", path=str(io_dir / f"{tag}.safetensors"), latent=trimmed)
        save_cond(g, str(io_dir / f"{tag}_offset.safetensors"), emb[0], value=emb[5])

    chunk("base", n["drive"][0], n["face"][0])
    chunk("pose2", n["pose2"][0], n["face"][0])
    chunk("face2", n["drive"][0], n["face2"][0])
    server.run_ok(g.prompt, timeout=1200)
    out = {tag: read(io_dir / f"{tag}.safetensors")["samples"] for tag in ("base", "pose2", "face2")}
    assert out["base"].shape == (1, 16, t, C, C) and torch.isfinite(out["base"]).all()
    print(f"\n[animate] |change| pose {max_diff(out['base'], out['pose2']):.4g}, "
          f"face {max_diff(out['base'], out['face2']):.4g}")
    assert max_diff(out["base"], out["pose2"]) > 1e-3
    assert max_diff(out["base"], out["face2"]) > 1e-3
    assert float(read(io_dir / "base_offset.safetensors")["int"]) == 10 - 5 + length


@pytest.mark.parametrize("case,pattern", [
    ("length", "length: 16 frames is not of the form 1+4k"),
    ("size", f"width/height: 72x{S} (WxH) is not a multiple of 16"),
    ("keyframe", "keyframe_indices: frame index 20"),
    ("overflow", "end_image: with fun_or_fl2v_model off"),
    ("pairing", "mask: bg_images is connected but mask is not"),
])
def test_bad_input_fails_before_sampling(server, media, io_dir, case, pattern):
    g = Graph()
    vae, cond, img = tiny_vae(g), zero_cond(g), load(g, media["start1"])
    if case == "length":
        emb = i2v(g, vae, cond, length=16, start_image=img[0])
    elif case == "size":
        emb = g.add("WanMaskI2VEmbeds", positive=cond, negative=cond, vae=vae, width=72, height=S, length=L,
                    batch_size=1, fun_or_fl2v_model=True, null_fill="gray", latent_strength=1.0, start_image=img[0])
    elif case == "keyframe":
        emb = i2v(g, vae, cond, keyframes=img[0], keyframe_indices="20")
    elif case == "overflow":
        emb = i2v(g, vae, cond, length=81, fun=False, end_image=img[0])
    else:
        emb = g.add("WanMaskAnimateEmbeds", positive=cond, negative=cond, vae=vae, width=S, height=S, length=L,
                    batch_size=1, bg_images=img[0])
    sampled = ksampler(g, tiny_t2v_model(g, "i2v"), emb[0], emb[2], steps=1)
    g.add("WanMaskTestSave", path=str(io_dir / "never.safetensors"), latent=sampled)
    if case in ("length", "keyframe"):  # bad widget values: refused by the node's validate_inputs, before the queue
        code, body = server.submit(g.prompt)
        assert code == 400 and pattern in json.dumps(body), body
        assert body["node_errors"][emb.id]["class_type"] == emb_type(g, emb)
        return
    entry = server.run(g.prompt)
    assert entry["status"]["status_str"] == "error"
    err = execution_error(entry)
    assert err.startswith(emb_type(g, emb)) and pattern in err, err
    assert not (io_dir / "never.safetensors").exists()


def emb_type(g, node):
    return g.prompt[node.id]["class_type"]


@pytest.mark.parametrize("name", ["i2v_first_last_keyframes", "vace_inpainting", "animate_long_video_chunks"])
def test_example_workflow_is_a_valid_api_prompt(server, name):
    """Every node exists, every required input is given, links point at existing outputs of the right
    type, and widget values of this pack's nodes are accepted (model files are not checked)."""
    import json
    from pathlib import Path

    prompt = json.loads((Path(__file__).resolve().parents[2] / "example_workflows" / "api" / f"{name}.json").read_text())
    info = server.get("/object_info")
    for nid, node in prompt.items():
        spec = info[node["class_type"]]
        declared = {**spec["input"]["required"], **spec["input"].get("optional", {})}
        missing = set(spec["input"]["required"]) - set(node["inputs"])
        assert not missing, f"{nid} {node['class_type']} lacks {missing}"
        for key, value in node["inputs"].items():
            assert key in declared, f"{nid} {node['class_type']} has no input {key}"
            want = declared[key][0]
            if isinstance(value, list):
                src = prompt[value[0]]
                got = info[src["class_type"]]["output"][value[1]]
                assert want == got or (isinstance(want, list) and got in ("STRING", "COMBO")), \
                    f"{nid}.{key}: {got} linked into {want}"
            elif isinstance(want, list) and node["class_type"].startswith("WanMask"):
                assert value in want, f"{nid}.{key}: {value} not in {want}"
    ours = [n for n in prompt.values() if n["class_type"].startswith("WanMask")]
    assert ours and any(n["class_type"] == "SaveAnimatedWEBP" for n in prompt.values())
