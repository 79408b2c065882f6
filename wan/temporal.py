"""Temporal masks from frame ranges: which pixel frames are kept and which are generated.

Convention: the MASK holds 1 = generate, 0 = keep (the same polarity as ComfyUI noise masks and the
native I2V ``concat_mask``; the opposite of the WanVideoWrapper's I2V mask). Shape [F, H, W].
"""
from __future__ import annotations

import torch

from .frames import parse_ranges


def keep_frames(length: int, keep: str, input_name: str = "keep") -> torch.Tensor:
    """Per-pixel-frame mask [F] float32: 0 on the frames named in ``keep`` (e.g. "0-0, 77-80"), 1 elsewhere."""
    if length < 1:
        raise ValueError(f"length: {length} frames; need at least 1.")
    mask = torch.ones(length)
    for r in parse_ranges(keep, length, input_name):
        mask[r.start:r.stop] = 0.0
    return mask


def temporal_mask(length: int, height: int, width: int, keep: str, input_name: str = "keep") -> torch.Tensor:
    """MASK [F, height, width] float32: 0 (keep) on every pixel of the frames in ``keep``, 1 (generate) elsewhere."""
    if height < 1 or width < 1:
        raise ValueError(f"width/height: {width}x{height} is empty.")
    frames = keep_frames(length, keep, input_name)
    return frames[:, None, None].expand(length, height, width).contiguous()
