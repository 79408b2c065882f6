"""Pixel-space masks <-> latent noise masks, following Wan's causal frame grouping.

Convention: a latent noise mask holds 1 = regenerate, 0 = keep the input latent (ComfyUI's
``noise_mask``). All masks here are float32 in [0, 1].

Shapes (B = latent batch, N = mask frames as given, F = pixel frames = 1+4(T-1),
T = latent frames, H/W = mask pixels, h/w = latent cells):

* input MASK: [H, W] or [N, H, W] (ComfyUI's MASK type)
* latent noise mask: [B, 1, T, h, w]
* effective pixel mask (the inverse): [B, F, h*s, w*s]
"""
from __future__ import annotations

import logging

import einops
import torch
import torch.nn.functional as F

from .geometry import FrameLayout, VaeGeometry
from .mask_input import validate_mask

log = logging.getLogger("WanMasking")

TEMPORAL_MODES = ("max", "mean", "min", "trilinear")
"""``max``: a latent frame regenerates where any pixel frame of its causal group is masked.
``mean``: the fraction of the group's frames that are masked. ``min``: only where every frame is.
``trilinear``: ComfyUI's native ``reshape_mask`` (misaligned with the causal groups)."""

SPATIAL_MODES = ("max", "area", "min", "nearest", "bilinear")
"""``max``: a cell regenerates where any of its pixels is masked. ``area``: the covered fraction.
``min``: only where every pixel is. ``nearest``: one pixel per cell. ``bilinear``: native."""


def split_batch(mask: torch.Tensor, batch: int, latent_frames: int, geometry: VaeGeometry,
                input_name: str = "mask") -> tuple[torch.Tensor, FrameLayout]:
    """Split [N, H, W] into [Bm, Fm, H, W] (Bm = 1 or ``batch``) and classify its frames.

    N may be 1, T or 1+4(T-1) (one mask for every sample), or ``batch`` times T or 1+4(T-1)
    (one mask per sample, sample-major).
    """
    n = mask.shape[0]
    exact = geometry.pixel_frames(latent_frames)
    if batch > 1 and n != 1 and n % batch == 0 and n // batch in (latent_frames, exact):
        per = mask.reshape(batch, n // batch, *mask.shape[1:])
        return per, geometry.resolve_frames(n // batch, latent_frames, input_name)
    try:
        layout = geometry.resolve_frames(n, latent_frames, input_name)
    except ValueError as err:
        if batch > 1:
            raise ValueError(
                f"{err} With a latent batch of {batch} you may also give one mask per sample: "
                f"{batch * latent_frames} or {batch * exact} frames, sample after sample."
            ) from None
        raise
    return mask.unsqueeze(0), layout


def reduce_time(x: torch.Tensor, latent_frames: int, layout: FrameLayout, mode: str,
                geometry: VaeGeometry) -> torch.Tensor:
    """[B, Fm, H, W] -> [B, T, H, W] with the causal grouping (or native trilinear)."""
    if mode not in TEMPORAL_MODES:
        raise ValueError(f"temporal: unknown mode {mode!r}; choose one of {', '.join(TEMPORAL_MODES)}.")
    if mode == "trilinear":
        # Linear in time only (H, W unchanged is an exact identity), as native trilinear does.
        return F.interpolate(x.unsqueeze(1), size=(latent_frames, *x.shape[-2:]), mode="trilinear").squeeze(1)
    if layout is FrameLayout.BROADCAST:
        return x.expand(-1, latent_frames, -1, -1)
    if layout is FrameLayout.LATENT:
        return x
    slots = geometry.frames_to_slots(x, dim=1)  # [B, 4T, H, W]
    return einops.reduce(slots, "b (t s) h w -> b t h w", mode, s=geometry.time_stride)


def reduce_space(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """[B, T, H, W] -> [B, T, h, w] with torch's pooling / interpolation."""
    if mode == "max":
        return F.adaptive_max_pool2d(x, size)
    if mode == "area":
        return F.adaptive_avg_pool2d(x, size)
    if mode == "min":
        return -F.adaptive_max_pool2d(-x, size)
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest-exact")
    if mode == "bilinear":
        return F.interpolate(x, size=size, mode="bilinear")
    raise ValueError(f"spatial: unknown mode {mode!r}; choose one of {', '.join(SPATIAL_MODES)}.")


def grow(x: torch.Tensor, cells: int) -> torch.Tensor:
    """Dilate (cells > 0) or erode (cells < 0) [..., h, w] by ``|cells|`` latent cells, per frame.

    Grey morphology with a square window; when eroding, the border counts as masked.
    """
    if cells == 0:
        return x
    k = 2 * abs(cells) + 1
    flat = x.reshape(-1, 1, *x.shape[-2:])
    if cells > 0:
        out = F.max_pool2d(flat, k, stride=1, padding=abs(cells))
    else:
        out = -F.max_pool2d(-flat, k, stride=1, padding=abs(cells))
    return out.reshape(x.shape)


def pixel_mask_to_latent(mask: torch.Tensor, latent_shape: tuple[int, ...], geometry: VaeGeometry,
                         temporal: str = "max", spatial: str = "max", grow_cells: int = 0,
                         input_name: str = "mask") -> torch.Tensor:
    """Convert a pixel MASK to a latent noise mask at exact latent size.

    Args:
        mask: [H, W] or [N, H, W], 1 = regenerate. N is 1, T, 1+4(T-1), or B times one of the last two.
        latent_shape: [B, C, T, h, w] of the latent the mask is for.
        geometry: the VAE geometry (strides).
        temporal / spatial: reducers, see TEMPORAL_MODES / SPATIAL_MODES.
        grow_cells: dilate (>0) or erode (<0) by this many latent cells after reduction.

    Returns:
        float32 [B, 1, T, h, w]. ComfyUI's sampler uses a mask of this size unchanged.
    """
    if len(latent_shape) != 5:
        raise ValueError(f"samples: expected a 5D video latent [B,C,T,h,w], got shape {list(latent_shape)}.")
    b, _, t, h, w = latent_shape
    mask = validate_mask(mask, input_name)
    per_sample, layout = split_batch(mask, b, t, geometry, input_name)
    hm, wm = per_sample.shape[-2:]
    if (hm, wm) != geometry.pixel_size(h, w):
        ph, pw = geometry.pixel_size(h, w)
        log.warning("%s: %dx%d (WxH) resized to the latent grid of a %dx%d video (%dx%d cells).",
                    input_name, wm, hm, pw, ph, w, h)
    if temporal == "trilinear" and spatial == "bilinear":
        # Native ComfyUI exactly: comfy.utils.reshape_mask does one trilinear call.
        out = F.interpolate(per_sample.unsqueeze(1), size=(t, h, w), mode="trilinear").squeeze(1)
    else:
        out = reduce_space(reduce_time(per_sample, t, layout, temporal, geometry), (h, w), spatial)
    out = grow(out, grow_cells).clamp(0.0, 1.0)
    return out.expand(b, -1, -1, -1).unsqueeze(1).contiguous()


def latent_mask_to_pixel(latent_mask: torch.Tensor, geometry: VaeGeometry) -> torch.Tensor:
    """What the sampler regenerates at every pixel and pixel frame, with no smoothing.

    Args:
        latent_mask: [B, 1, T, h, w] or [B, T, h, w] (channel 0 is used if C > 1).

    Returns:
        [B, F, h*s, w*s] with F = 1+4(T-1): each cell is painted over its full s x s block and
        over every pixel frame of its causal group.
    """
    if latent_mask.dim() == 5:
        latent_mask = latent_mask[:, 0]
    if latent_mask.dim() != 4:
        raise ValueError(f"latent mask: expected [B,1,T,h,w] or [B,T,h,w], got {list(latent_mask.shape)}.")
    t = latent_mask.shape[1]
    index = geometry.frame_to_latent_index(geometry.pixel_frames(t), device=latent_mask.device)
    per_frame = latent_mask.index_select(1, index)
    s = geometry.spatial_stride
    return einops.repeat(per_frame, "b f h w -> b f (h s1) (w s2)", s1=s, s2=s)


def to_pixel_frames(per_sample: torch.Tensor, layout: FrameLayout, latent_frames: int,
                    geometry: VaeGeometry) -> torch.Tensor:
    """[Bm, Fm, H, W] (as returned by :func:`split_batch`) -> one frame per pixel frame [Bm, F, H, W]."""
    f = geometry.pixel_frames(latent_frames)
    if layout is FrameLayout.BROADCAST:
        return per_sample.expand(-1, f, -1, -1)
    if layout is FrameLayout.LATENT:
        return per_sample.index_select(1, geometry.frame_to_latent_index(f, device=per_sample.device))
    return per_sample
