"""Wan 2.1 / 2.2 VAE modules: official key layout, loading, shapes and chunked causal behaviour."""
import pytest
import torch

from comfyui_wanmasking.masking.geometry import WAN21, WAN22
from comfyui_wanmasking.vae.loading import build_wan_vae
from comfyui_wanmasking.vae.wan21 import WanVAE21
from comfyui_wanmasking.vae.wan22 import WanVAE22, patchify, unpatchify
from comfyui_wanmasking.tests.unit.vae_helpers import small21, small22_wide_decoder


# ---- key layout (the official files must load) ----------------------------------------------

def test_wan21_real_width_has_the_official_key_layout():
    with torch.device("meta"):
        sd = WanVAE21().state_dict()
    # 194 tensors in the official Wan 2.1 VAE file (checked against ComfyUI 0.3.64's WanVAE).
    assert len(sd) == 194
    assert sd["encoder.conv1.weight"].shape == (96, 3, 3, 3, 3)
    assert sd["encoder.middle.1.to_qkv.weight"].shape == (1152, 384, 1, 1)
    assert sd["encoder.middle.1.norm.gamma"].shape == (384, 1, 1)
    assert sd["encoder.head.0.gamma"].shape == (384, 1, 1, 1)
    assert sd["encoder.head.2.weight"].shape == (32, 384, 3, 3, 3)
    assert sd["conv1.weight"].shape == (32, 32, 1, 1, 1) and sd["conv2.weight"].shape == (16, 16, 1, 1, 1)
    assert sd["decoder.upsamples.3.resample.1.weight"].shape == (192, 384, 3, 3)
    assert sd["decoder.upsamples.3.time_conv.weight"].shape == (768, 384, 3, 1, 1)
    assert sd["decoder.head.2.weight"].shape == (3, 96, 3, 3, 3)


def test_wan22_real_width_has_the_official_key_layout():
    with torch.device("meta"):
        sd = WanVAE22().state_dict()
    assert len(sd) == 196
    assert sd["encoder.conv1.weight"].shape == (160, 12, 3, 3, 3)
    assert sd["decoder.upsamples.0.upsamples.0.residual.2.weight"].shape == (1024, 1024, 3, 3, 3)
    assert sd["decoder.upsamples.0.upsamples.3.time_conv.weight"].shape == (2048, 1024, 3, 1, 1)
    assert sd["decoder.head.2.weight"].shape == (12, 256, 3, 3, 3)
    assert sd["conv2.weight"].shape == (48, 48, 1, 1, 1)


@pytest.mark.parametrize("make", [small21, small22_wide_decoder])
def test_build_from_state_dict_detects_kind_and_width(make):
    src = make()
    loaded = build_wan_vae(src.state_dict())
    assert type(loaded) is type(src)
    assert loaded.z_dim == src.z_dim
    for k, v in src.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_prefixed_state_dict_loads():
    src = small21()
    loaded = build_wan_vae({"first_stage_model." + k: v for k, v in src.state_dict().items()})
    assert torch.equal(loaded.conv2.weight, src.conv2.weight)


def test_not_a_wan_vae_lists_the_missing_keys():
    sd = {"decoder.mid.block_1.norm1.weight": torch.ones(4), "encoder.conv_in.weight": torch.ones(4, 3, 3, 3)}
    with pytest.raises(ValueError) as e:
        build_wan_vae(sd, name="vae_name")
    msg = str(e.value)
    assert msg.startswith("vae_name: this file is not a Wan VAE")
    assert "decoder.middle.0.residual.0.gamma" in msg and "encoder.conv1.weight" in msg
    assert "Fix:" in msg


def test_truncated_wan_vae_lists_what_it_lacks():
    sd = small21().state_dict()
    del sd["decoder.upsamples.3.time_conv.weight"]
    with pytest.raises(ValueError, match=r"looks like a Wan 2.1 VAE but lacks 1 key\(s\): decoder.upsamples.3.time_conv"):
        build_wan_vae(sd)


def test_wrong_shape_is_reported():
    sd = small21().state_dict()
    sd["decoder.middle.1.proj.weight"] = torch.zeros(5, 5, 1, 1)
    with pytest.raises(ValueError, match=r"wrong shape: decoder.middle.1.proj.weight \[5, 5, 1, 1\]"):
        build_wan_vae(sd)


# ---- shapes ----------------------------------------------------------------------------------

def test_wan21_shapes_follow_the_geometry():
    m = small21()
    x = torch.rand(1, 3, 9, 32, 48) * 2 - 1
    z = m.encode(x)
    assert z.shape == (1, 16, WAN21.latent_frames(9), 4, 6) and z.dtype == torch.float32
    out = m.decode(z)
    assert out.shape == (1, 3, 9, 32, 48)


def test_wan22_round_trips_its_shapes():
    m = small22_wide_decoder()
    for frames, (h, w) in ((1, (32, 32)), (5, (16, 48)), (13, (48, 32))):
        x = torch.rand(2, 3, frames, h, w) * 2 - 1
        z = m.encode(x)
        assert z.shape == (2, 48, WAN22.latent_frames(frames), h // 16, w // 16)
        y = m.decode(z)
        assert y.shape == x.shape
        assert torch.isfinite(y).all()


def test_patchify_inverts_unpatchify():
    x = torch.randn(1, 3, 2, 8, 6)
    p = patchify(x)
    assert p.shape == (1, 12, 2, 4, 3)
    assert torch.equal(unpatchify(p), x)
    # channel order (c, col, row), row fastest: channel 1 is the pixel one row down, channel 2 one column right
    assert torch.equal(p[:, 1], x[:, 0, :, 1::2, 0::2])
    assert torch.equal(p[:, 2], x[:, 0, :, 0::2, 1::2])


def test_causality_earlier_frames_do_not_see_later_ones():
    m = small21()
    x = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    x2 = x.clone()
    x2[:, :, 5:] = 0  # change frames 5..8 (latent 2)
    z, z2 = m.encode(x), m.encode(x2)
    assert torch.equal(z[:, :, :2], z2[:, :, :2])
    assert not torch.allclose(z[:, :, 2], z2[:, :, 2])
    d, d2 = m.decode(z), m.decode(z2)
    assert torch.equal(d[:, :, :5], d2[:, :, :5])


def test_frame_zero_decodes_alone():
    m = small21()
    z = torch.randn(1, 16, 3, 4, 4)
    full = m.decode(z)
    first = m.decode(z[:, :, :1])
    assert first.shape[2] == 1
    assert torch.equal(full[:, :, :1], first)
