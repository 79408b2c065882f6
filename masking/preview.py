"""Previews of the effective noise mask: what the sampler really regenerates, per pixel frame.

Colors (RGB in [0, 1]):
* ``REGENERATE_COLOR`` (red) tints what the sampler regenerates, by the effective mask value;
* ``MISSED_COLOR`` (yellow) marks pixels the user masked that the sampler keeps (a soft or
  partly kept value shows in proportion).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .geometry import VaeGeometry
from .latent_mask import latent_mask_to_pixel, split_batch, to_pixel_frames, validate_mask

REGENERATE_COLOR = (1.0, 0.15, 0.1)
MISSED_COLOR = (1.0, 0.9, 0.0)
REGENERATE_ALPHA = 0.5
BACKGROUND_GRAY = 0.5


def overlay_effective_mask(effective: torch.Tensor, images: torch.Tensor | None = None,
                           user_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Paint the effective mask over frames.

    Args:
        effective: [N, H, W] in [0, 1], 1 = the sampler regenerates this pixel.
        images: optional [N, H, W, 3] frames in [0, 1]; gray when absent.
        user_mask: optional [N, H, W], the mask the user drew (1 = wants regenerated).

    Returns:
        [N, H, W, 3] float32 image batch.
    """
    effective = effective.float()
    base = torch.full((*effective.shape, 3), BACKGROUND_GRAY) if images is None else images[..., :3].float()
    a = (REGENERATE_ALPHA * effective).unsqueeze(-1)
    out = base * (1 - a) + torch.tensor(REGENERATE_COLOR) * a
    if user_mask is not None:
        missed = (user_mask.float() - effective).clamp(0, 1).unsqueeze(-1)
        out = out * (1 - missed) + torch.tensor(MISSED_COLOR) * missed
    return out.clamp(0, 1)


def regenerate_everything(latent_shape: tuple[int, ...]) -> torch.Tensor:
    """The noise mask the sampler uses when a latent [B, C, T, h, w] has none: all ones [1, 1, T, h, w]."""
    return torch.ones(1, 1, *latent_shape[2:])


def effective_mask_preview(latent_mask: torch.Tensor, geometry: VaeGeometry,
                           images: torch.Tensor | None = None,
                           user_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The effective mask per pixel frame, and an overlay of it.

    Args:
        latent_mask: [B, C, T, h, w], the mask as the sampler uses it (1 = regenerate); channel 0 is shown.
        images: optional [F or B*F, H, W, 3] frames that were encoded into the latent (H, W = h*s, w*s).
        user_mask: optional MASK the user drew: [N, H', W'] with N = 1, T, F or B times T or F.

    Returns:
        (overlay [B*F, H, W, 3], effective [B*F, H, W]) with F = 1+4(T-1).
    """
    latent_mask = latent_mask[:, :1].float().cpu()
    b, _, t, h, w = latent_mask.shape
    effective = latent_mask_to_pixel(latent_mask, geometry)  # [B, F, H, W]
    f, hp, wp = effective.shape[1:]
    if images is not None:
        if images.dim() != 4 or images.shape[1:3] != (hp, wp) or images.shape[0] not in (f, b * f):
            raise ValueError(
                f"images: shape {list(images.shape)} does not match the latent, which decodes to "
                f"{f} frames of {wp}x{hp} (x{b} batch). Fix: connect the frames that were encoded into "
                f"this latent ({f} or {b * f} frames of {wp}x{hp})."
            )
        images = images.reshape(-1, f, hp, wp, images.shape[-1]).expand(b, -1, -1, -1, -1)
        images = images.reshape(b * f, hp, wp, -1)
    if user_mask is not None:
        per_sample, layout = split_batch(validate_mask(user_mask), b, t, geometry)
        per_frame = to_pixel_frames(per_sample, layout, t, geometry)
        if per_frame.shape[-2:] != (hp, wp):
            per_frame = F.interpolate(per_frame, size=(hp, wp), mode="nearest-exact")
        user_mask = per_frame.expand(b, -1, -1, -1).reshape(b * f, hp, wp)
    effective = effective.reshape(b * f, hp, wp)
    return overlay_effective_mask(effective, images, user_mask), effective
