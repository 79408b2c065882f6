"""WanMaskI2VEmbeds inside a real ComfyUI: equal to native WanImageToVideo / WanFirstLastFrameToVideo
where it should be, the slot fix where it differs on purpose, the ID-V2V padding (ref_pad_image), and
sampling on the tiny I2V and FLF2V checkpoints."""
from __future__ import annotations

import pytest
import torch

from comfyui_wanmasking.tests.integration.embeds_media import (
    C, L, S, T, i2v, load, max_diff, read, save_cond,
)
from comfyui_wanmasking.tests.integration.embeds_media import media as make_media
from comfyui_wanmasking.tests.integration.graphs import Graph, ksampler, tiny_t2v_model, tiny_vae, zero_cond


@pytest.mark.parametrize("start", ["start1", "start5"])
def test_start_image_equals_native_WanImageToVideo(server, io_dir, start):
    """1 or 5 start frames: same concat image, same latent, and the same mask the model sees (native
    stores 1 channel that concat_cond repeats to 4; this pack stores the 4 slot channels)."""
    media = make_media(io_dir)
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


def test_latent_strength_scales_the_given_latent_toward_the_empty_latent(server, io_dir):
    """latent_strength 0.5: latent 0 (the start frame) = mean + 0.5 * (encoded - mean) per channel, with
    mean = the Wan 2.1 latent mean (0 after the model's normalization); other latents untouched."""
    media = make_media(io_dir)
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


def test_three_start_frames_differ_from_native_by_the_slot_fix(server, io_dir):
    """Deliberate difference: native WanImageToVideo marks whole latent frames ((3-1)//4+1 = latent 0 only),
    so encoded frames 1-2 count as "generate". This pack marks slots 0..5: frames 0, 1, 2."""
    media = make_media(io_dir)
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


def test_first_last_equals_native_WanFirstLastFrameToVideo(server, io_dir):
    media = make_media(io_dir)
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


def declares_input(server, node_id: str, name: str) -> bool:
    """Feature detection by the node's declared inputs (its schema, as /object_info serves it)."""
    spec = server.get(f"/object_info/{node_id}").get(node_id)
    return spec is not None and name in {**spec["input"].get("required", {}), **spec["input"].get("optional", {})}


@pytest.mark.parametrize("native", ["WanImageToVideo", "WanMaskTestFakeRefPadImageToVideo"])
def test_ref_pad_image_equals_native_where_it_has_the_input(server, io_dir, native):
    """ID-V2V padding, compared with native WanImageToVideo wherever the running ComfyUI declares its
    ref_pad_image input (added after 0.33: neither tree under test has it), and with a fake that presents
    that input: the same concat image (the reference under the start frame), the same mask the model sees,
    the mask of plain gray padding, and a concat image that differs from the gray-padded one."""
    if not declares_input(server, native, "ref_pad_image"):
        pytest.skip(f"{native} of this ComfyUI declares no ref_pad_image (native added it after 0.33)")
    media = make_media(io_dir)
    g = Graph()
    vae, cond, start, ref = tiny_vae(g), zero_cond(g), load(g, media["start1"]), load(g, media["ref"])
    runs = {"native": g.add(native, positive=cond, negative=cond, vae=vae, width=S, height=S, length=L,
                            batch_size=1, start_image=start[0], ref_pad_image=ref[0]),
            "ours": i2v(g, vae, cond, start_image=start[0], ref_pad_image=ref[0]),
            "gray": i2v(g, vae, cond, start_image=start[0])}
    for name, node in runs.items():
        save_cond(g, str(io_dir / f"{name}.safetensors"), node[0])
    server.run_ok(g.prompt)
    n, o, gray = (read(io_dir / f"{name}.safetensors") for name in runs)
    assert o["concat_latent_image"].shape == (1, 16, T, C, C)
    assert max_diff(n["concat_latent_image"], o["concat_latent_image"]) == 0.0
    assert max_diff(n["concat_mask"].expand(1, 4, T, C, C), o["concat_mask"]) == 0.0
    assert max_diff(o["concat_mask"], gray["concat_mask"]) == 0.0
    assert max_diff(o["concat_latent_image"][:, :, 1:], gray["concat_latent_image"][:, :, 1:]) > 1e-3


def test_i2v_sampled_end_to_end_keeps_the_given_latents(server, io_dir):
    """Start + end (fun off: end encoded alone as an extra latent) on the tiny 36-channel I2V model, with
    keep_given_latents: the known latent frames come back at their encoded values; the extra end latent
    is trimmed before decoding."""
    media = make_media(io_dir)
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


def test_i2v_keyframes_sampled_end_to_end(server, io_dir):
    """Keyframes filling latents 0 and 2, black fill, and a CLIP vision output that reaches the tiny model's
    img_emb (sampling would fail on a wrong feature shape)."""
    media = make_media(io_dir)
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


def test_first_last_sampled_on_the_tiny_flf2v_model_equals_native(server, io_dir):
    """The tiny FLF2V checkpoint (img_emb.emb_pos for 514 tokens) samples our embeds with start + end
    CLIP tokens to the same latent as native WanFirstLastFrameToVideo's; swapping the two CLIP outputs
    changes the result, so the model really reads the joined tokens in their order."""
    media = make_media(io_dir)
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
