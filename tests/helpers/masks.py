"""Synthetic pixel masks for the tests."""
from __future__ import annotations

import torch


def moving_square(frames: int = 17, size: int = 32, side: int = 10, speed: int = 7, top: int | None = None):
    """A [frames, size, size] mask: a ``side`` px square, ``top`` px from the top (default a third of
    the way down), moving ``speed`` px per frame to the right and wrapping before the edge.
    1 = regenerate inside the square, 0 = keep elsewhere."""
    top = size // 3 if top is None else top
    m = torch.zeros(frames, size, size)
    for f in range(frames):
        x = (f * speed) % (size - side)
        m[f, top:top + side, x:x + side] = 1
    return m
