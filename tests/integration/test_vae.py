"""The streaming Wan VAE inside a real ComfyUI: the loader's VAE in native nodes, equal to native
decoding/encoding of the same file, and the explicit decode/encode nodes."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_wanmasking.tests.integration.comfy_server import execution_error
from comfyui_wanmasking.tests.integration.graphs import Graph, tiny_t2v_model, tiny_vae, zero_cond
from comfyui_wanmasking.tests.unit.vae_helpers import qwen_style_vae_state_dict, sd_style_vae_state_dict

FRAMES, SIZE = 9, 32  # -> latent [1, 16, 3, 4, 4] (small: the tiny VAE has the real width)
C = SIZE // 8


def our_vae(g: Graph, offload=False):
    return g.add("WanMaskVAELoader", vae_name="wan_tiny_vae.safetensors", decode_precision="auto",
                 encode_precision="auto", cache_offload=offload)


@pytest.fixture
def clip_file(io_dir):
    g = torch.Generator().manual_seed(5)
    path = io_dir / "clip.safetensors"
    save_file({"image": torch.rand(FRAMES, SIZE, SIZE, 3, generator=g),
               "samples": torch.randn(1, 16, 3, C, C, generator=g)}, str(path))
    return path


@pytest.fixture
def wide_latent_file(io_dir):
    """A 64x64 latent of 5 frames [1, 16, 2, 8, 8]: wide enough for tiles with an overlap on both sides."""
    path = io_dir / "wide_latent.safetensors"
    save_file({"samples": torch.randn(1, 16, 2, 8, 8, generator=torch.Generator().manual_seed(5))}, str(path))
    return path


def test_nodes_are_listed_with_their_inputs(server):
    info = server.get("/object_info")
    loader = info["WanMaskVAELoader"]
    assert list(loader["input"]["required"]) == ["vae_name", "decode_precision", "encode_precision", "cache_offload"]
    assert "wan_tiny_vae.safetensors" in loader["input"]["required"]["vae_name"][1]["options"]  # V3 COMBO
    assert loader["output"] == ["VAE"]
    assert loader["category"] == info["VAELoader"]["category"] + "/wan masking"  # beside native's loader
    decode = info["WanMaskVAEDecode"]["input"]["required"]
    assert list(decode) == ["samples", "vae", "tile_size", "overlap", "temporal_chunk"]
    encode = info["WanMaskVAEEncode"]["input"]["required"]
    assert list(encode) == ["pixels", "vae", "tile_size", "overlap", "temporal_chunk", "frame_count"]
    assert encode["frame_count"][1]["options"] == ["error", "pad"]


def test_loader_vae_in_native_vaedecode_equals_native_decoding(server, clip_file, io_dir):
    g = Graph()
    clip = g.add("WanMaskTestLoad", path=str(clip_file))
    native = g.add("VAEDecode", samples=clip[2], vae=tiny_vae(g))
    ours = g.add("VAEDecode", samples=clip[2], vae=our_vae(g))
    offload = g.add("VAEDecode", samples=clip[2], vae=our_vae(g, offload=True))
    explicit = g.add("WanMaskVAEDecode", samples=clip[2], vae=tiny_vae(g), tile_size=0, overlap=64, temporal_chunk=2)
    for name, node in (("native", native), ("ours", ours), ("offload", offload), ("explicit", explicit)):
        g.add("WanMaskTestSave", path=str(io_dir / f"{name}.safetensors"), image=node)
    server.run_ok(g.prompt)
    res = {n: load_file(str(io_dir / f"{n}.safetensors"))["image"] for n in ("native", "ours", "offload", "explicit")}
    assert res["native"].shape == (FRAMES, SIZE, SIZE, 3)
    assert res["native"].std() > 0.01  # random weights still give a non-trivial picture
    for name in ("ours", "offload", "explicit"):
        assert res[name].shape == res["native"].shape
        diff = (res[name] - res["native"]).abs().max().item()
        assert diff < 1e-4, f"{name} differs from native decoding by {diff:.3g}"
    assert torch.equal(res["ours"], res["offload"])  # CPU offload is exact
    assert "WanMasking VAE: WanVAE21, encode float32, decode float32, cache offload True" in server.log_tail(400)


def test_loader_vae_in_native_vaeencode_equals_native_encoding(server, clip_file, io_dir):
    g = Graph()
    clip = g.add("WanMaskTestLoad", path=str(clip_file))
    native = g.add("VAEEncode", pixels=clip[0], vae=tiny_vae(g))
    ours = g.add("VAEEncode", pixels=clip[0], vae=our_vae(g))
    explicit = g.add("WanMaskVAEEncode", pixels=clip[0], vae=our_vae(g), tile_size=0, overlap=64, temporal_chunk=1,
                     frame_count="error")
    for name, node in (("native", native), ("ours", ours), ("explicit", explicit)):
        g.add("WanMaskTestSave", path=str(io_dir / f"{name}.safetensors"), latent=node)
    server.run_ok(g.prompt)
    res = {n: load_file(str(io_dir / f"{n}.safetensors"))["samples"] for n in ("native", "ours", "explicit")}
    assert res["native"].shape == (1, 16, 3, C, C)
    for name in ("ours", "explicit"):
        diff = (res[name] - res["native"]).abs().max().item()
        assert diff < 1e-4, f"{name} differs from native encoding by {diff:.3g}"


def test_loader_vae_in_wanimagetovideo_and_sampling(server, clip_file, io_dir):
    g = Graph()
    clip = g.add("WanMaskTestLoad", path=str(clip_file))
    cond = zero_cond(g)
    outs = {}
    for name, vae in (("native", tiny_vae(g)), ("ours", our_vae(g))):
        i2v = g.add("WanImageToVideo", positive=cond, negative=cond, vae=vae, width=SIZE, height=SIZE,
                    length=FRAMES, batch_size=1, start_image=clip[0])
        g.add("WanMaskTestSaveConcatLatent", path=str(io_dir / f"{name}_concat.safetensors"), conditioning=i2v[0])
        outs[name] = i2v
    sampled = g.add("KSampler", model=tiny_t2v_model(g, "i2v"), positive=outs["ours"][0], negative=outs["ours"][1],
                    latent_image=outs["ours"][2], seed=1, steps=2, cfg=1.0, sampler_name="euler",
                    scheduler="simple", denoise=1.0)
    decoded = g.add("VAEDecode", samples=sampled, vae=our_vae(g))
    g.add("WanMaskTestSave", path=str(io_dir / "video.safetensors"), image=decoded)
    server.run_ok(g.prompt)
    native = load_file(str(io_dir / "native_concat.safetensors"))
    ours = load_file(str(io_dir / "ours_concat.safetensors"))
    assert ours["concat_latent_image"].shape == (1, 16, 3, C, C)
    assert (ours["concat_latent_image"] - native["concat_latent_image"]).abs().max() < 1e-4
    assert torch.equal(ours["concat_mask"], native["concat_mask"])
    video = load_file(str(io_dir / "video.safetensors"))["image"]
    assert video.shape == (FRAMES, SIZE, SIZE, 3) and torch.isfinite(video).all()


def test_tiled_explicit_decode_runs_and_stays_close_to_untiled(server, wide_latent_file, io_dir):
    g = Graph()
    clip = g.add("WanMaskTestLoad", path=str(wide_latent_file))
    vae = our_vae(g)
    untiled = g.add("WanMaskVAEDecode", samples=clip[2], vae=vae, tile_size=0, overlap=16, temporal_chunk=1)
    tiled = g.add("WanMaskVAEDecode", samples=clip[2], vae=vae, tile_size=48, overlap=16, temporal_chunk=1)
    g.add("WanMaskTestSave", path=str(io_dir / "untiled.safetensors"), image=untiled)
    g.add("WanMaskTestSave", path=str(io_dir / "tiled.safetensors"), image=tiled)
    server.run_ok(g.prompt)
    a = load_file(str(io_dir / "untiled.safetensors"))["image"]
    b = load_file(str(io_dir / "tiled.safetensors"))["image"]
    assert a.shape == b.shape == (5, 64, 64, 3)
    diff = (a - b).abs()
    assert diff.max() > 0  # tiles really were decoded separately
    assert diff.mean() < 0.1


def test_frame_count_not_1_plus_4k_is_an_error_or_padded(server, io_dir):
    path = io_dir / "seven.safetensors"
    save_file({"image": torch.rand(7, SIZE, SIZE, 3)}, str(path))
    g = Graph()
    clip = g.add("WanMaskTestLoad", path=str(path))
    enc = g.add("WanMaskVAEEncode", pixels=clip[0], vae=our_vae(g), tile_size=0, overlap=64, temporal_chunk=1,
                frame_count="error")
    g.add("WanMaskTestSave", path=str(io_dir / "never.safetensors"), latent=enc)
    entry = server.run(g.prompt)
    assert entry["status"]["status_str"] == "error"
    msg = execution_error(entry)
    assert "WanMaskVAEEncode" in msg and "7 frames is not of the form 1+4k" in msg and "Use 5 or 9" in msg
    assert not (io_dir / "never.safetensors").exists()

    g = Graph()
    clip = g.add("WanMaskTestLoad", path=str(path))
    enc = g.add("WanMaskVAEEncode", pixels=clip[0], vae=our_vae(g), tile_size=0, overlap=64, temporal_chunk=1,
                frame_count="pad")
    g.add("WanMaskTestSave", path=str(io_dir / "padded.safetensors"), latent=enc)
    server.run_ok(g.prompt)
    assert load_file(str(io_dir / "padded.safetensors"))["samples"].shape == (1, 16, 3, C, C)
    assert "repeated the last frame 2 time(s)" in server.log_tail(200)


def test_native_vaeencode_with_loader_vae_refuses_to_drop_frames(server, io_dir):
    path = io_dir / "eight.safetensors"
    save_file({"image": torch.rand(8, SIZE, SIZE, 3)}, str(path))
    g = Graph()
    clip = g.add("WanMaskTestLoad", path=str(path))
    enc = g.add("VAEEncode", pixels=clip[0], vae=our_vae(g))
    g.add("WanMaskTestSave", path=str(io_dir / "never.safetensors"), latent=enc)
    entry = server.run(g.prompt)
    assert entry["status"]["status_str"] == "error"
    assert "8 frames is not of the form 1+4k" in execution_error(entry)


def test_wrong_latent_channels_are_a_clear_error(server, io_dir):
    path = io_dir / "wide.safetensors"
    save_file({"samples": torch.randn(1, 48, 2, 4, 4)}, str(path))
    g = Graph()
    clip = g.add("WanMaskTestLoad", path=str(path))
    dec = g.add("WanMaskVAEDecode", samples=clip[2], vae=our_vae(g), tile_size=0, overlap=64, temporal_chunk=1)
    g.add("WanMaskTestSave", path=str(io_dir / "never.safetensors"), image=dec)
    entry = server.run(g.prompt)
    assert "the latent has 48 channels but the loaded Wan 2.1 VAE decodes 16" in execution_error(entry)


NOT_WAN = {
    # what ComfyUI itself does with each (0.33): none of its keys -> "VAE is invalid: None ... checkpoint";
    # the others -> a model of its default width, whose weights then do not fit (a size mismatch)
    "unknown": ({"alpha.weight": torch.zeros(2, 2)}, "1 tensor with keys like alpha.weight"),
    "sd_style": (sd_style_vae_state_dict(), "2-D image VAE in the AutoencoderKL layout"),
    "qwen_style": (qwen_style_vae_state_dict(), "it has the Wan 2.2 key layout but temporal kernel 1"),
}


@pytest.mark.parametrize("kind", sorted(NOT_WAN))
def test_loader_refuses_a_non_wan_file_with_its_own_message(server, io_dir, kind):
    """The pack identifies the file before ComfyUI builds its own VAE from it, on every version: the
    error names the input and file, says it is not a Wan VAE and what it is, and which file to choose."""
    sd, found = NOT_WAN[kind]
    name = f"not_wan_{kind}.safetensors"
    path = server.base / "models" / "vae" / name
    save_file(sd, str(path))
    try:
        latent = io_dir / "latent.safetensors"
        save_file({"samples": torch.zeros(1, 16, 1, 2, 2)}, str(latent))
        g = Graph()
        vae = g.add("WanMaskVAELoader", vae_name=name, decode_precision="auto", encode_precision="auto",
                    cache_offload=False)
        dec = g.add("VAEDecode", samples=g.add("WanMaskTestLoad", path=str(latent))[2], vae=vae)
        g.add("WanMaskTestSave", path=str(io_dir / "never.safetensors"), image=dec)
        entry = server.run(g.prompt)
    finally:
        path.unlink()
    error = execution_error(entry)
    assert error.startswith(f"WanMaskVAELoader: vae_name ({name}): this file is not a Wan"), error
    assert found in error
    assert "Fix: choose an official Wan VAE: wan_2.1_vae.safetensors" in error
    assert "checkpoint" not in error and "VAE is invalid" not in error
    assert not (io_dir / "never.safetensors").exists()


@pytest.mark.parametrize("kind", ["2.1", "2.2"])
def test_modules_equal_comfyui_native_wan_vaes_in_process(comfyui_path, kind):
    """Our Wan 2.1 and 2.2 modules against ComfyUI's own classes, same random weights, small width
    (the tiny checkpoints have no Wan 2.2 VAE, so this is where 2.2 meets native)."""
    native, ours, _ = _native_pair(comfyui_path, kind)
    g = torch.Generator().manual_seed(1)
    s = 8 if kind == "2.1" else 16
    x = torch.rand(1, 3, 9, 3 * s, 4 * s, generator=g) * 2 - 1
    with torch.inference_mode():
        z_native, z_ours = native.encode(x), ours.encode(x)
        assert z_ours.shape == z_native.shape == (1, ours.z_dim, 3, 3, 4)
        assert (z_ours - z_native).abs().max() < 1e-4
        z = torch.randn(z_native.shape, generator=g)
        x_native, x_ours = native.decode(z), ours.decode(z)
        assert x_ours.shape == x_native.shape == x.shape
        assert x_native.abs().max() > 0.1
        assert (x_ours - x_native).abs().max() < 1e-4


def _native_pair(comfyui_path, kind):
    """(native ComfyUI Wan VAE module, our module) with the same random weights, small width."""
    import sys

    sys.path.insert(0, str(comfyui_path))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    from comfy.ldm.wan import vae as native21, vae2_2 as native22

    from comfyui_wanmasking.vae.loading import build_wan_vae

    cfg = dict(dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[], temperal_downsample=[False, True, True])
    torch.manual_seed(0)
    native = (native21.WanVAE(dim=8, z_dim=16, **cfg) if kind == "2.1"
              else native22.WanVAE(dim=8, dec_dim=12, z_dim=48, **cfg)).eval()
    g = torch.Generator().manual_seed(1)
    sd = {k: (torch.randn(v.shape, generator=g) * (v[0].numel() ** -0.5 if v.dim() > 1 else 0.1)
              + (1.0 if k.endswith("gamma") else 0.0)) for k, v in native.state_dict().items()}
    native.load_state_dict(sd)
    return native, build_wan_vae(sd), sd


@pytest.mark.parametrize("kind", ["2.1", "2.2"])
def test_every_streaming_mode_equals_native_in_process(comfyui_path, kind):
    """Frame streaming (1 or 2 frames per pass, or off), latent chunking and cache offload: every
    mode decodes and encodes like ComfyUI's own Wan VAE, within 1e-4 in fp32."""
    native, ours, _ = _native_pair(comfyui_path, kind)
    s = 8 if kind == "2.1" else 16
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, 13, 2 * s, 3 * s, generator=g) * 2 - 1
    z = torch.randn(1, ours.z_dim, 4, 2, 3, generator=g)
    with torch.inference_mode():
        x_native, z_native = native.decode(z), native.encode(x)
        assert x_native.abs().max() > 0.1
        for frames in (1, 2, 0):
            for chunk in (1, 2):
                for offload in (False, True):
                    mode = f"frame_stream={frames} temporal_chunk={chunk} offload={offload}"
                    dx = (ours.decode(z, frame_stream=frames, temporal_chunk=chunk, offload=offload) - x_native).abs().max()
                    dz = (ours.encode(x, frame_stream=frames, temporal_chunk=chunk, offload=offload) - z_native).abs().max()
                    assert dx < 1e-4, f"decode {mode}: {dx:.3g}"
                    assert dz < 1e-4, f"encode {mode}: {dz:.3g}"


def test_comfyui_memory_estimate_is_the_traced_working_set(comfyui_path):
    """wire_vae hands ComfyUI's memory manager the model's traced working set instead of native's
    formula, per sample, following the offload option; comfy.sd.VAE then decodes like native."""
    _native_pair(comfyui_path, "2.1")  # ComfyUI on sys.path, CPU mode
    import comfy.sd

    from comfyui_wanmasking.vae.loading import build_wan_vae
    from comfyui_wanmasking.vae.wan21 import WanVAE21
    from comfyui_wanmasking.wanmask_runner.embedded_backend import load_compat

    torch.manual_seed(0)
    sd = WanVAE21().state_dict()  # real width: ComfyUI 0.3.64 builds its Wan 2.1 VAE at width 96
    ours = build_wan_vae(sd)

    compat = load_compat("wanmask_compat_vae_test")
    native_vae = comfy.sd.VAE(sd=sd)
    shape, pixels = (1, 16, 21, 60, 104), (1, 3, 81, 480, 832)
    native_dec = native_vae.memory_used_decode(shape, torch.float32)
    native_enc = native_vae.memory_used_encode(pixels, torch.float32)
    vae = compat.wire_vae(comfy.sd.VAE(sd=sd), ours, decode_dtype=torch.float32, encode_dtype=torch.float32)
    dec, enc = vae.memory_used_decode(shape, torch.float32), vae.memory_used_encode(pixels, torch.float32)
    assert dec == ours.decode_working_set(shape) and enc == ours.encode_working_set(pixels)
    assert 0 < dec < native_dec and 0 < enc < native_enc
    assert vae.memory_used_decode((4, *shape[1:]), None) == dec  # per sample, as ComfyUI divides by it
    ours.options.offload = True
    assert vae.memory_used_decode(shape, torch.float32) < dec / 2  # the cache leaves the device
    ours.options.offload = False
    z = torch.randn(1, 16, 2, 2, 2, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        # comfy.sd.VAE.decode applies the latent format's process_output; compare against native's
        ref = native_vae.decode(z)
        got = vae.decode(z)
    assert got.shape == ref.shape and (got - ref).abs().max() < 1e-4
