"""WanMaskVaceEmbeds (and WanMaskTemporal feeding it) inside a real ComfyUI: equal to native
WanVaceToVideo, and sampled on the tiny VACE checkpoint."""
from __future__ import annotations

from comfyui_wanmasking.tests.integration.embeds_media import (
    C, L, S, T, load, max_diff, read, save_cond,
)
from comfyui_wanmasking.tests.integration.embeds_media import media as make_media
from comfyui_wanmasking.tests.integration.graphs import Graph, ksampler, tiny_t2v_model, tiny_vae, zero_cond


def test_vace_equals_native_WanVaceToVideo(server, io_dir):
    media = make_media(io_dir)
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


def test_vace_with_temporal_mask_sampled_end_to_end(server, io_dir):
    """WanMaskTemporal keeps frames 0-4 (mask 0 = inactive) for VACE extension; sampled on the tiny VACE
    model with a reference, then the reference latent is trimmed with trim_latent."""
    media = make_media(io_dir)
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
