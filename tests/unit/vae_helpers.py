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
