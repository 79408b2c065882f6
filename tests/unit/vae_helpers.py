"""Shared helpers of the VAE tests: tiny Wan 2.1 / 2.2 VAEs (random weights, base width 8) and seeded
inputs. Only the width is small; the layout, strides and causal cache are the official ones."""
from __future__ import annotations

import torch

from comfyui_wanmasking.vae.wan21 import WanVAE21
from comfyui_wanmasking.vae.wan22 import WanVAE22


def small21(seed: int = 0, dim: int = 8) -> WanVAE21:
    torch.manual_seed(seed)
    return WanVAE21(dim=dim).eval()


def small22(seed: int = 0, dec_dim: int = 8) -> WanVAE22:
    torch.manual_seed(seed)
    return WanVAE22(dim=8, dec_dim=dec_dim).eval()


def small22_wide_decoder(seed: int = 0) -> WanVAE22:
    """A tiny Wan 2.2 VAE whose decoder is wider than its encoder (as the official 160 / 256)."""
    return small22(seed, dec_dim=12)


def video(frames: int, h: int, w: int, b: int = 1, seed: int = 1) -> torch.Tensor:
    """Pixels ``[b, 3, frames, h, w]`` uniform in [-1, 1)."""
    return torch.rand(b, 3, frames, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def latent(c: int, t: int, h: int, w: int, seed: int = 2) -> torch.Tensor:
    """A standard-normal latent ``[1, c, t, h, w]``."""
    return torch.randn(1, c, t, h, w, generator=torch.Generator().manual_seed(seed))


# ---- other VAEs a user may pick (zero weights; only keys and shapes matter) ---------------------

def sd_style_vae_state_dict() -> dict[str, torch.Tensor]:
    """A few tensors of a 2-D image VAE in the AutoencoderKL layout (SD 1.x / SDXL / Flux style)."""
    return {"encoder.conv_in.weight": torch.zeros(8, 3, 3, 3), "encoder.conv_in.bias": torch.zeros(8),
            "decoder.conv_in.weight": torch.zeros(8, 4, 3, 3), "quant_conv.weight": torch.zeros(8, 8, 1, 1)}


def qwen_style_vae_state_dict(device: str = "cpu") -> dict[str, torch.Tensor]:
    """The Wan 2.2 key layout (``decoder.middle.0.residual.0.gamma`` included) with what a Qwen Image
    2.1 VAE has instead: 2-D (temporal kernel 1), RGBA pixels (16 channels after the 2x2 patchify) and
    64 latent channels; base width 8."""
    with torch.device("meta"):
        layout = WanVAE22(dim=8, dec_dim=8, z_dim=64).state_dict()
    out = {}
    for key, value in layout.items():
        shape = list(value.shape)
        if len(shape) == 5 and shape[2] == 3:
            shape[2] = 1
        out[key] = torch.zeros(shape, device=device)
    out["encoder.conv1.weight"] = torch.zeros(8, 16, 1, 3, 3, device=device)
    out["decoder.head.2.weight"] = torch.zeros(16, 8, 1, 3, 3, device=device)
    return out
