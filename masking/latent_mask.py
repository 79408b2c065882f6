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


_GROUP_REDUCERS = {"max": torch.amax, "mean": torch.mean, "min": torch.amin}
"""Temporal reducers over the frames of one causal group (element-wise over whole planes)."""

_BLOCK_REDUCERS = {"max": torch.amax, "area": torch.mean, "min": torch.amin}
"""Spatial reducers that, when the cells are whole pixel blocks, are block reductions."""

CHUNK_PIXELS = 1 << 22
"""Group-reduced pixels per chunk (16 MiB of float32 scratch, reused): a 720p clip goes 4 latent
frames at a time, so the scratch stays small and no full-size intermediate is ever made."""


def reduce_time(x: torch.Tensor, latent_frames: int, layout: FrameLayout, mode: str,
                geometry: VaeGeometry) -> torch.Tensor:
    """[B, Fm, H, W] -> [B, T, H, W] with the causal grouping (or native trilinear).

    Full resolution; :func:`pixel_mask_to_latent` reduces chunk by chunk instead (same numbers).
    """
    if mode not in TEMPORAL_MODES:
        raise ValueError(f"temporal: unknown mode {mode!r}; choose one of {', '.join(TEMPORAL_MODES)}.")
    if mode == "trilinear":
        # Linear in time only (H, W unchanged is an exact identity), as native trilinear does.
        return F.interpolate(x.unsqueeze(1), size=(latent_frames, *x.shape[-2:]), mode="trilinear").squeeze(1)
    if layout is FrameLayout.BROADCAST:
        return x.expand(-1, latent_frames, -1, -1)
    if layout is FrameLayout.LATENT:
        return x
    first, rest = geometry.causal_groups(x, dim=1)  # [B, 1, H, W], [B, T-1, 4, H, W]
    # Latent 0's group is frame 0 alone: its max, min and mean are frame 0 itself.
    return torch.cat([first, _GROUP_REDUCERS[mode](rest, dim=2)], dim=1)


def _block_reduce(x: torch.Tensor, size: tuple[int, int], mode: str,
                  out: torch.Tensor | None = None) -> torch.Tensor | None:
    """[..., H, W] -> [..., h, w] when every cell is a whole (H/h) x (W/w) block, else None.

    Reduces the block's rows first (over an outer axis: contiguous rows, one read of ``x``), then
    its columns on the 1/(H/h) result (into ``out`` when given). These are the windows adaptive
    pooling uses when h divides H and w divides W, so max and min are bit-identical to it and
    area equal to rounding.
    """
    (h, w), (hm, wm) = size, x.shape[-2:]
    if mode not in _BLOCK_REDUCERS or hm % h or wm % w:
        return None
    op = _BLOCK_REDUCERS[mode]
    rows = op(x.reshape(-1, h, hm // h, wm), dim=2)  # [N, h, W]
    cells = rows.view(*x.shape[:-2], h, w, wm // w)
    return op(cells, dim=-1) if out is None else op(cells, dim=-1, out=out)


def _nearest_pixels(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[..., H, W] -> [..., h, w]: the pixels ``nearest-exact`` interpolation picks, without the
    contiguous copy of its whole input that torch's kernel makes for many channels. The rows and
    columns are found by interpolating their own indices, so they are torch's exactly."""
    picks = []
    for n, m in zip(x.shape[-2:], size):
        index = torch.arange(n, dtype=torch.float32, device=x.device).view(1, 1, n)
        picks.append(F.interpolate(index, size=m, mode="nearest-exact").view(m).long())
    return x[..., picks[0][:, None], picks[1]]


def reduce_space(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """[B, T, H, W] -> [B, T, h, w] with torch's pooling / interpolation (as block reductions when
    the cells are whole pixel blocks, see :func:`_block_reduce`)."""
    if mode not in SPATIAL_MODES:
        raise ValueError(f"spatial: unknown mode {mode!r}; choose one of {', '.join(SPATIAL_MODES)}.")
    blocks = _block_reduce(x, size, mode)
    if blocks is not None:
        return blocks
    if mode == "max":
        return F.adaptive_max_pool2d(x, size)
    if mode == "area":
        return F.adaptive_avg_pool2d(x, size)
    if mode == "min":
        return -F.adaptive_max_pool2d(-x, size)
    if mode == "nearest":
        return _nearest_pixels(x, size)
    return F.interpolate(x, size=size, mode="bilinear")


def _reduce_space_into(x: torch.Tensor, size: tuple[int, int], mode: str, target: torch.Tensor) -> None:
    """:func:`reduce_space` of frames [n, H, W], written into ``target`` [n, h, w]."""
    if _block_reduce(x, size, mode, out=target) is None:
        target.copy_(reduce_space(x.unsqueeze(0), size, mode)[0])


def reduce_mask(x: torch.Tensor, latent_frames: int, layout: FrameLayout, temporal: str, spatial: str,
                size: tuple[int, int], geometry: VaeGeometry) -> torch.Tensor:
    """[B, Fm, H, W] -> [B, T, h, w]: :func:`reduce_time`, then :func:`reduce_space`, with the same
    numbers but without the full-resolution [B, T, H, W] intermediate.

    Each causal group is reduced over its frames (element-wise over whole planes), a few latent
    frames at a time into one reused scratch buffer, and each chunk is then reduced in space.
    ``nearest`` picks one pixel per cell whatever the values, so it is applied first (exactly the
    same result, on 1/64 of the data). ``trilinear`` keeps the full-resolution path.
    """
    if temporal not in TEMPORAL_MODES:
        raise ValueError(f"temporal: unknown mode {temporal!r}; choose one of {', '.join(TEMPORAL_MODES)}.")
    if spatial not in SPATIAL_MODES:
        raise ValueError(f"spatial: unknown mode {spatial!r}; choose one of {', '.join(SPATIAL_MODES)}.")
    if temporal == "trilinear" or (x.requires_grad and torch.is_grad_enabled()):
        # (the chunks below write with out=, which autograd refuses)
        return reduce_space(reduce_time(x, latent_frames, layout, temporal, geometry), size, spatial)
    if spatial == "nearest":
        x = reduce_space(x, size, spatial)  # then an identity below, at [B, Fm, h, w]
    if layout is FrameLayout.BROADCAST:
        return reduce_space(x, size, spatial).expand(-1, latent_frames, -1, -1)
    hm, wm = x.shape[-2:]
    out = x.new_empty(x.shape[0], latent_frames, *size)
    scratch = None
    for b, sample in enumerate(x):  # [Fm, H, W]
        if layout is FrameLayout.LATENT:
            done, rest = 0, sample.unsqueeze(1)  # every latent frame is a group of one frame
        else:
            first, rest = geometry.causal_groups(sample, dim=0)  # [1, H, W], [T-1, 4, H, W]
            # Latent 0's group is frame 0 alone: its max, min and mean are frame 0 itself.
            _reduce_space_into(first, size, spatial, out[b, :1])
            done = 1
        k = rest.shape[1]
        # A mean sums the group here and divides the small result by k at the end, one pass less
        # over the scratch. With k = 4 that gives the numbers of dividing first: scaling by a power
        # of two is exact, and every spatial reducer either picks values or is linear.
        reducer = torch.sum if temporal == "mean" else _GROUP_REDUCERS[temporal]
        step = max(1, CHUNK_PIXELS // (hm * wm))
        for c0 in range(0, rest.shape[0], step):
            groups = rest[c0:c0 + step]  # [n, k, H, W]
            n = groups.shape[0]
            if k == 1:
                reduced = groups[:, 0]
            else:
                if scratch is None:
                    scratch = x.new_empty(min(step, rest.shape[0]) * hm * wm)
                reduced = reducer(groups, dim=1, out=scratch[:n * hm * wm].view(n, hm, wm))
            _reduce_space_into(reduced, size, spatial, out[b, done + c0:done + c0 + n])
        if temporal == "mean" and k > 1:
            out[b, done:].div_(k)
    return out


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

    Cost: one read of the mask to validate it, one to reduce it (see :func:`reduce_mask`); no
    full-size copy unless the mask is not float32 or must be clamped.
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
        out = reduce_mask(per_sample, t, layout, temporal, spatial, (h, w), geometry)
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
