"""Identifying a Wan 2.1 / Wan 2.2 VAE by its key set and tensor shapes, never by one key.

The state dicts are data-free: Wan modules built on the meta device (only keys and shapes
matter), edited into the other VAEs a user may pick: an SD-style 2-D VAE, a Qwen-Image-2.1-style VAE
(the Wan 2.2 key layout, but 2-D, RGBA, 64 latent channels), an RGBA Wan variant, a mixed-up file.
"""
import pytest
import torch

from comfyui_wanmasking.tests.unit.vae_helpers import (
    qwen_style_vae_state_dict, sd_style_vae_state_dict, small21, small22,
)
from comfyui_wanmasking.vae.identification import WAN22_STAGE_KEY, WAN_MIDDLE_KEY, identify_wan_vae
from comfyui_wanmasking.vae.loading import build_wan_vae
from comfyui_wanmasking.vae.wan21 import WanVAE21
from comfyui_wanmasking.vae.wan22 import WanVAE22


def meta_sd(model_cls, **widths) -> dict:
    with torch.device("meta"):
        return dict(model_cls(**widths).state_dict())


def reshaped(sd: dict, **shapes) -> dict:
    """``sd`` with some tensors replaced by meta tensors of other shapes (keys with '.' written as '__')."""
    out = dict(sd)
    for key, shape in shapes.items():
        out[key.replace("__", ".")] = torch.empty(shape, device="meta")
    return out


def refusal(sd: dict, name: str = "vae_name (x.safetensors)") -> str:
    with pytest.raises(ValueError) as e:
        identify_wan_vae(sd, name)
    msg = str(e.value)
    assert msg.startswith(name + ": this file is not a Wan")
    assert "Fix: choose an official Wan VAE: wan_2.1_vae.safetensors" in msg and "wan2.2_vae.safetensors" in msg
    return msg


# ---- the official layouts ---------------------------------------------------------------------

def test_official_widths_are_identified_with_their_widths():
    k21 = identify_wan_vae(meta_sd(WanVAE21))
    assert (k21.version, k21.dim, k21.z_dim, k21.label) == ("2.1", 96, 16, "Wan 2.1")
    k22 = identify_wan_vae(meta_sd(WanVAE22))
    assert (k22.version, k22.dim, k22.dec_dim, k22.z_dim) == ("2.2", 160, 256, 48)


@pytest.mark.parametrize("prefix", ["first_stage_model.", "vae."])
def test_a_shared_prefix_is_ignored(prefix):
    sd = {prefix + k: v for k, v in meta_sd(WanVAE22, dim=8, dec_dim=12).items()}
    kind = identify_wan_vae(sd)
    assert (kind.version, kind.dim, kind.dec_dim) == ("2.2", 8, 12)


def test_tiny_real_modules_build_from_their_identification():
    for make in (small21, small22):
        src = make()
        assert type(build_wan_vae(src.state_dict())) is type(src)


# ---- other VAEs are refused, saying what they are ---------------------------------------------

def test_sd_style_vae_is_refused_naming_its_layout_and_channels():
    sd = sd_style_vae_state_dict()
    msg = refusal(sd)
    assert "lacks 7 of the 7 core keys" in msg and WAN_MIDDLE_KEY in msg
    assert "2-D image VAE in the AutoencoderKL layout" in msg and "3 pixel and 4 latent channels" in msg


def test_unknown_file_lists_what_it_holds():
    msg = refusal({"alpha.weight": torch.empty(2, device="meta"), "beta.bias": torch.empty(2, device="meta")})
    assert "2 tensors with keys like alpha.weight, beta.bias" in msg


def test_qwen_style_vae_with_the_wan_middle_key_is_refused_as_an_image_vae():
    sd = qwen_style_vae_state_dict("meta")
    assert WAN_MIDDLE_KEY in sd and WAN22_STAGE_KEY in sd  # what a one-key check would take for Wan 2.2
    msg = refusal(sd)
    assert "it has the Wan 2.2 key layout but" in msg
    assert "temporal kernel 1 in encoder.conv1.weight" in msg and "an image-only VAE" in msg
    assert "16 (RGBA, patchified 2x2) pixel input channels instead of 12 (RGB, patchified 2x2)" in msg
    assert "64 latent channels instead of 48" in msg
    assert "Qwen Image 2.1 VAE" in msg and "native VAELoader" in msg


def test_four_dimensional_weights_are_refused_as_2d():
    sd = meta_sd(WanVAE21, dim=8)
    sd = reshaped(sd, encoder__conv1__weight=(8, 3, 3, 3), decoder__head__2__weight=(3, 8, 3, 3))
    msg = refusal(sd)
    assert "2-D convolutions (4-D weights, no time axis) in encoder.conv1.weight, decoder.head.2.weight" in msg


def test_rgba_wan21_variant_is_refused_with_its_channel_count():
    sd = reshaped(meta_sd(WanVAE21, dim=8), encoder__conv1__weight=(8, 4, 3, 3, 3),
                  decoder__head__2__weight=(4, 8, 3, 3, 3))
    msg = refusal(sd)
    assert "4 (RGBA) pixel input channels instead of 3 (RGB)" in msg
    assert "4 (RGBA) pixel output channels" in msg
    assert "image-only" not in msg  # it is a video VAE, just not an RGB one


def test_wan21_layout_with_wan22_latent_channels_is_refused():
    sd = meta_sd(WanVAE21, dim=8, z_dim=48)
    msg = refusal(sd)
    assert "it has the Wan 2.1 key layout but 48 latent channels instead of 16" in msg


def test_latent_widths_that_disagree_are_named():
    sd = reshaped(meta_sd(WanVAE21, dim=8), decoder__conv1__weight=(32, 20, 3, 3, 3))
    msg = refusal(sd)
    assert "latent widths that disagree (conv2 16, decoder.conv1 20" in msg


def test_core_keys_without_either_decoder_layout_are_refused():
    sd = {k: v for k, v in meta_sd(WanVAE21, dim=8).items() if not k.startswith("decoder.upsamples.")}
    msg = refusal(sd)
    assert "neither decoder layout" in msg


def test_build_refuses_before_building():
    with pytest.raises(ValueError, match=r"^vae: this file is not a Wan 2.1 or Wan 2.2 VAE"):
        build_wan_vae(qwen_style_vae_state_dict("meta"))
