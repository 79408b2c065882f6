"""The LATENT dicts the embeds nodes hand to the sampler: empty Wan video latents, and trimming a
sampled latent together with its noise mask.

Shapes: samples [B, C, T, h, w]; noise_mask [B or 1, 1, T, h, w] (NOISE_MASK: 1 = regenerate, 0 = keep).
"""
from __future__ import annotations

import torch

from .i2v import trim_latent


def empty_video_latent(batch_size: int, channels: int, frames: int, height: int, width: int,
                       device: torch.device | str | None = None) -> dict:
    """``{"samples": zeros [batch_size, channels, frames, height, width]}`` (latent-grid sizes)."""
    return {"samples": torch.zeros([batch_size, channels, frames, height, width], device=device)}


def trim_video_latent(latent: dict, start: int, end: int) -> dict:
    """A copy of a LATENT dict with ``start`` latent frames dropped from the front and ``end`` from the
    back; a per-frame noise mask (5-D, same frame count) is trimmed with it, any other mask kept."""
    samples = latent["samples"]
    out = dict(latent)
    out["samples"] = trim_latent(samples, start, end, "samples")
    mask = latent.get("noise_mask")
    if mask is not None and mask.dim() == 5 and mask.shape[2] == samples.shape[2]:
        out["noise_mask"] = trim_latent(mask, start, end, "noise_mask")
    return out
