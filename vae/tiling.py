"""Spatial tiles with feathered overlap.

A tile is a rectangle of the *input grid* (latent cells for decode, pixels for encode). Its output
(scaled by the VAE's stride) is blended with linear feather weights over the overlap; at the image
border a tile keeps full weight, so a pixel covered by one tile takes that tile's value exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tile:
    """Input rectangle ``[y0, y1) x [x0, x1)`` in grid units."""

    y0: int
    y1: int
    x0: int
    x1: int


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)`` with at least ``overlap`` shared.

    One tile when ``tile >= length``. The last tile is aligned to the end (it may overlap more).
    """
    if tile <= 0 or tile >= length:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must be in [0, tile size): got overlap {overlap} for tile {tile}")
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def plan_tiles(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    """Tiles covering a ``height x width`` grid (``tile <= 0``: one tile, i.e. no tiling)."""
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    th, tw = min(tile, height) if tile > 0 else height, min(tile, width) if tile > 0 else width
    return [Tile(y, y + th, x, x + tw) for y in ys for x in xs]


def _ramp(n: int, ramp: int, lead: bool, trail: bool) -> torch.Tensor:
    w = torch.ones(n)
    ramp = min(ramp, n // 2)
    if ramp > 0:
        up = torch.arange(1, ramp + 1, dtype=torch.float32) / (ramp + 1)
        if lead:
            w[:ramp] = up
        if trail:
            w[n - ramp:] = up.flip(0)
    return w


def feather_weight(t: Tile, height: int, width: int, overlap: int, scale: int) -> torch.Tensor:
    """Blend weight ``[ (y1-y0)*scale, (x1-x0)*scale ]`` of tile ``t``'s output.

    Linear ramps of ``overlap*scale`` output cells on the sides that face another tile; full weight
    on sides at the image border.
    """
    ramp = overlap * scale
    wy = _ramp((t.y1 - t.y0) * scale, ramp, t.y0 > 0, t.y1 < height)
    wx = _ramp((t.x1 - t.x0) * scale, ramp, t.x0 > 0, t.x1 < width)
    return wy[:, None] * wx[None, :]


def blend_weights(tiles: list[Tile], height: int, width: int, overlap: int, scale: int,
                  device=None) -> list[torch.Tensor]:
    """Per-tile weights already divided by the total weight at every output cell (they sum to 1)."""
    raw = [feather_weight(t, height, width, overlap, scale).to(device) for t in tiles]
    total = torch.zeros(height * scale, width * scale, device=device)
    for t, w in zip(tiles, raw):
        total[t.y0 * scale:t.y1 * scale, t.x0 * scale:t.x1 * scale] += w
    return [w / total[t.y0 * scale:t.y1 * scale, t.x0 * scale:t.x1 * scale] for t, w in zip(tiles, raw)]
