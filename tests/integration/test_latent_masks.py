"""WanMaskToLatent and WanMaskPreview inside a real ComfyUI, on the tiny Wan checkpoints."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_wanmasking.masking.geometry import WAN21
from comfyui_wanmasking.masking.latent_mask import latent_mask_to_pixel, pixel_mask_to_latent
from comfyui_wanmasking.tests.helpers.masks import moving_square
from comfyui_wanmasking.tests.integration.graphs import Graph, ksampler, tiny_t2v_model, tiny_vae, zero_cond

FRAMES, SIZE = 17, 32  # -> latent [1, 16, 5, 4, 4] (small: the tiny VAE has the real width)
C = SIZE // 8


@pytest.fixture
def clip_file(io_dir):
    g = torch.Generator().manual_seed(3)
    path = io_dir / "clip.safetensors"
    save_file({"image": torch.rand(FRAMES, SIZE, SIZE, 3, generator=g), "mask": moving_square(FRAMES, SIZE)}, str(path))
    return path


def test_nodes_are_listed_in_object_info(server):
    info = server.get("/object_info")
    to_latent = info["WanMaskToLatent"]["input"]["required"]
    assert list(to_latent) == ["samples", "mask", "temporal", "spatial", "grow"]
    assert to_latent["temporal"][:1] == ["COMBO"] and to_latent["temporal"][1]["options"] == ["max", "mean", "min", "trilinear"]
    assert to_latent["temporal"][1]["default"] == "max"
    assert "1 = regenerate" in to_latent["mask"][1]["tooltip"]
    preview = info["WanMaskPreview"]
    assert list(preview["input"]["required"]) == ["samples"]
    assert list(preview["input"]["optional"]) == ["images", "mask"]
    assert preview["output"] == ["IMAGE", "MASK"] and preview["output_node"] is True


def test_encode_mask_sample_decode_keeps_the_unmasked_latent(server, clip_file, io_dir):
    g = Graph()
    clip = g.add("WanMaskTestLoad", path=str(clip_file))
    vae = tiny_vae(g)
    encoded = g.add("VAEEncode", pixels=clip[0], vae=vae)
    masked = g.add("WanMaskToLatent", samples=encoded, mask=clip[1], temporal="max", spatial="max", grow=0)
    sampled = ksampler(g, tiny_t2v_model(g), zero_cond(g), masked)
    decoded = g.add("VAEDecode", samples=sampled, vae=vae)
    g.add("WanMaskTestSave", path=str(io_dir / "before.safetensors"), latent=masked)
    g.add("WanMaskTestSave", path=str(io_dir / "after.safetensors"), latent=sampled, image=decoded)
    server.run_ok(g.prompt)

    before, after = load_file(str(io_dir / "before.safetensors")), load_file(str(io_dir / "after.safetensors"))
    assert before["samples"].shape == (1, 16, 5, C, C)
    assert before["noise_mask"].shape == (1, 1, 5, C, C)
    expected = pixel_mask_to_latent(moving_square(FRAMES, SIZE), (1, 16, 5, C, C), WAN21)
    assert torch.equal(before["noise_mask"], expected)
    assert after["image"].shape == (FRAMES, SIZE, SIZE, 3)

    keep = (expected == 0).expand_as(before["samples"])
    diff = (after["samples"] - before["samples"]).abs()
    assert keep.any() and (~keep).any()
    assert diff[keep].max() < 1e-4, f"kept region moved by {diff[keep].max():.3g}"
    assert diff[~keep].mean() > 1e-2, "masked region did not change"


def test_native_noise_mask_preview_shows_comfyui_trilinear(server, clip_file, io_dir):
    """SetLatentNoiseMask's pixel mask, previewed through ComfyUI's own reshape, equals this pack's
    trilinear/bilinear mode: the native numbers are reproduced exactly."""
    g = Graph()
    clip = g.add("WanMaskTestLoad", path=str(clip_file))
    encoded = g.add("VAEEncode", pixels=clip[0], vae=tiny_vae(g))
    native = g.add("SetLatentNoiseMask", samples=encoded, mask=clip[1])
    ours = g.add("WanMaskToLatent", samples=encoded, mask=clip[1], temporal="trilinear", spatial="bilinear", grow=0)
    causal = g.add("WanMaskToLatent", samples=encoded, mask=clip[1], temporal="max", spatial="max", grow=0)
    for name, latent in (("native", native), ("ours", ours), ("causal", causal)):
        p = g.add("WanMaskPreview", samples=latent, images=clip[0], mask=clip[1])
        g.add("WanMaskTestSave", path=str(io_dir / f"{name}.safetensors"), image=p[0], mask=p[1])
    entry = server.run_ok(g.prompt)

    res = {n: load_file(str(io_dir / f"{n}.safetensors")) for n in ("native", "ours", "causal")}
    assert res["native"]["mask"].shape == (FRAMES, SIZE, SIZE)
    assert torch.equal(res["native"]["mask"], res["ours"]["mask"])
    user = moving_square(FRAMES, SIZE)
    # native leaves part of the moving square kept; the causal max mask covers all of it
    assert (res["native"]["mask"][user > 0] < 0.5).any()
    assert res["causal"]["mask"][user > 0].min() == 1
    expected = latent_mask_to_pixel(pixel_mask_to_latent(user, (1, 16, 5, C, C), WAN21), WAN21)[0]
    assert torch.equal(res["causal"]["mask"], expected)
    # the overlay marks missed pixels (masked but kept) in yellow only for the native mask
    yellow = torch.tensor([1.0, 0.9, 0.0])
    is_yellow = lambda img: ((img - yellow).abs().sum(-1) < 1e-3)
    assert is_yellow(res["native"]["image"]).any() and not is_yellow(res["causal"]["image"]).any()
    # previews are shown in the UI
    previews = [o for o in entry["outputs"].values() if "images" in o]
    assert len(previews) == 3 and all(len(o["images"]) == FRAMES for o in previews)


def test_bad_mask_frame_count_is_a_clear_node_error(server, io_dir):
    path = io_dir / "bad.safetensors"
    save_file({"image": torch.rand(FRAMES, SIZE, SIZE, 3), "mask": torch.ones(16, SIZE, SIZE)}, str(path))
    g = Graph()
    clip = g.add("WanMaskTestLoad", path=str(path))
    encoded = g.add("VAEEncode", pixels=clip[0], vae=tiny_vae(g))
    masked = g.add("WanMaskToLatent", samples=encoded, mask=clip[1], temporal="max", spatial="max", grow=0)
    g.add("WanMaskTestSave", path=str(io_dir / "never.safetensors"), latent=masked)
    entry = server.run(g.prompt)
    assert entry["status"]["status_str"] == "error"
    from comfyui_wanmasking.tests.integration.comfy_server import execution_error
    msg = execution_error(entry)
    assert "WanMaskToLatent" in msg and "mask: 16 frames" in msg and "17" in msg
    assert not (io_dir / "never.safetensors").exists()
    assert server.get("/system_stats")["system"]["comfyui_version"]
