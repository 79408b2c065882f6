"""Which frames of a clip to train on, and the size to train it at.

* :func:`select_frames` picks 1+4k pixel frames of a clip (Wan's causal VAE uses every one of them),
  deterministically from a seed and the item's name.
* :func:`bucket_resolution` picks a training size (multiples of the model's stride) near a pixel area,
  with the item's aspect ratio.
* :func:`fit_item` scales an item to cover that size and center-crops it: pixels, mask and subject
  mask get the same scale and the same crop.

Shapes: pixels [F, H, W, 3], masks [F, H, W]; sizes are (h, w).
"""
from __future__ import annotations

import hashlib
import logging
import math

import torch
import torch.nn.functional as F

from ..geometry import WAN21, VaeGeometry
from .weights import resize_weights

log = logging.getLogger("WanMasking")

FRAME_MODES = ("contiguous", "spread")
SHORT_POLICIES = ("trim", "error")


def seeded_offset(seed: int, name: str, choices: int) -> int:
    """A stable pick in ``range(choices)`` from (seed, name): sha256, never Python's salted ``hash()``."""
    digest = hashlib.sha256(f"{int(seed)}\x00{name}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % choices


def select_frames(total: int, length: int, *, mode: str = "contiguous", seed: int = 0, name: str = "",
                  short: str = "trim", geometry: VaeGeometry = WAN21) -> list[int]:
    """Pixel frame indices to train on for a clip of ``total`` frames.

    Args:
        total: the clip's frame count (1 = an image, always ``[0]``).
        length: wanted pixel frames, 1+4k; 0 = all frames (trimmed to 1+4k).
        mode: "contiguous" = ``length`` consecutive frames from a start drawn from (seed, name);
            "spread" = ``length`` frames evenly spaced over the clip, ``round(i*(total-1)/(length-1))``.
        seed, name: make the contiguous start differ per item and per seed, reproducibly.
        short: a clip shorter than ``length`` (or, with ``length`` 0, not 1+4k long): "trim" uses the
            largest 1+4k <= total frames, with a warning; "error" raises.
        geometry: the VAE (its time stride gives the 1+4k rule).

    Returns:
        sorted, distinct frame indices; their count is 1+4k.
    """
    who = f"clip '{name}'" if name else "clip"
    if mode not in FRAME_MODES:
        raise ValueError(f"{who}: frame mode '{mode}' is not one of {FRAME_MODES}. Fix: pick one of them.")
    if short not in SHORT_POLICIES:
        raise ValueError(f"{who}: short-clip policy '{short}' is not one of {SHORT_POLICIES}. Fix: pick one of them.")
    length, total = int(length), int(total)
    if length < 0 or (length and not geometry.is_exact_pixel_count(length)):
        lo = geometry.pixel_frames(geometry.latent_frames(max(1, length)))
        raise ValueError(f"frame length: {length} is not of the form 1+{geometry.time_stride}k, so the "
                         f"{geometry.name} VAE would drop frames. Fix: use {lo} or {lo + geometry.time_stride} "
                         f"(or 0 for all frames of each clip).")
    if total < 1:
        raise ValueError(f"{who}: has {total} frames. Fix: remove the empty clip from the folder.")
    if total == 1:
        return [0]
    want = length or total
    if total < want or not geometry.is_exact_pixel_count(want):
        usable = geometry.pixel_frames(geometry.latent_frames(min(total, want)))
        asked = f"{length} frames were asked for" if length else f"all frames must be 1+{geometry.time_stride}k"
        if short == "error":
            raise ValueError(f"{who}: has {total} frames but {asked}. Fix: use a frame length of at most {usable} "
                             f"(1+{geometry.time_stride}k), a longer clip, or short='trim' to train on {usable} "
                             f"of its frames.")
        log.warning("%s: has %d frames but %s; training on %d of them.", who, total, asked, usable)
        want = usable
    if want == 1:
        return [seeded_offset(seed, name, total)] if mode == "contiguous" else [0]
    if mode == "spread":
        return [round(i * (total - 1) / (want - 1)) for i in range(want)]
    start = seeded_offset(seed, name, total - want + 1)
    return list(range(start, start + want))


def bucket_resolution(width: int, height: int, area: int, multiple: int) -> tuple[int, int]:
    """The training size (h, w) for a ``width`` x ``height`` item: h and w multiples of ``multiple``,
    h*w <= ``area``, the aspect ratio closest to the item's (|log| difference), then the largest area.

    Every width w = k*multiple is a candidate with the tallest height that fits the area,
    ``floor(area / w / multiple) * multiple`` (as musubi-tuner's bucket lists). Deterministic.
    """
    if width < 1 or height < 1:
        raise ValueError(f"bucket resolution: the item is {width}x{height} (WxH). Fix: check the file decodes.")
    if multiple < 1 or area < multiple * multiple:
        raise ValueError(f"bucket resolution: area {area} cannot hold one {multiple}x{multiple} block. "
                         f"Fix: use an area of at least {multiple * multiple} px (e.g. 512*512) and a multiple "
                         f"of 16 (32 for Wan 2.2 5B).")
    target = math.log(width / height)
    best = None
    for w in range(multiple, area // multiple + 1, multiple):
        h = (area // w) // multiple * multiple
        if h < multiple:
            break
        key = (abs(math.log(w / h) - target), -h * w, w)
        if best is None or key < best[0]:
            best = (key, (h, w))
    return best[1]


def cover_scale(size_in: tuple[int, int], size_out: tuple[int, int]) -> tuple[int, int]:
    """The (h, w) that ``size_in`` scales to so it covers ``size_out`` with its aspect ratio kept."""
    (h_in, w_in), (h, w) = size_in, size_out
    scale = max(h / h_in, w / w_in)
    return max(h, round(h_in * scale)), max(w, round(w_in * scale))


def fit_item(pixels: torch.Tensor, mask: torch.Tensor | None, subject: torch.Tensor | None,
             size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Scale to cover ``size`` (aspect kept), then center-crop to it; the same scale and crop for all three.

    Args:
        pixels: [F, H, W, 3] in [0, 1]; resized bilinear with antialias.
        mask: [F, H, W] weights or None; resized with ``resize_weights`` (area down / nearest up).
        subject: [F, H, W] binary or None; resized nearest, then ``>= 0.5``.
        size: (h, w) to train at.

    Returns:
        pixels [F, h, w, 3], mask [F, h, w] or None, subject [F, h, w] in {0, 1} or None.
    """
    if pixels.dim() != 4 or pixels.shape[-1] != 3:
        raise ValueError(f"fit_item: pixels must be IMAGE frames [F,H,W,3], got shape {list(pixels.shape)}. "
                         f"Fix: pass read_item's pixels.")
    frames, height, width = pixels.shape[:3]
    for what, m in (("mask", mask), ("subject", subject)):
        if m is not None and tuple(m.shape) != (frames, height, width):
            raise ValueError(f"fit_item: the {what} is {list(m.shape)} but the pixels are [{frames}, {height}, "
                             f"{width}, 3]. Fix: pass read_item's outputs (they are resized to the pixels).")
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f"fit_item: target size must be at least 1x1, got {w}x{h} (WxH).")
    sh, sw = cover_scale((height, width), (h, w))
    top, left = (sh - h) // 2, (sw - w) // 2
    if (sh, sw) != (height, width):
        x = pixels.permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(sh, sw), mode="bilinear", antialias=True, align_corners=False)
        pixels = x.clamp(0.0, 1.0).permute(0, 2, 3, 1)
        if mask is not None:
            mask = resize_weights(mask, (sh, sw))
        if subject is not None:
            subject = F.interpolate(subject.float().unsqueeze(1), size=(sh, sw), mode="nearest-exact").squeeze(1)
    crop = (slice(None), slice(top, top + h), slice(left, left + w))
    pixels = pixels[crop].contiguous()
    mask = None if mask is None else mask[crop].contiguous()
    subject = None if subject is None else (subject[crop] >= 0.5).float()
    return pixels, mask, subject
