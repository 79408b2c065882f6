"""Streaming, tiled encode and decode drivers for the Wan VAEs.

Decode runs one chunk of latent frames at a time (default: one latent frame, as upstream) with
the causal feature cache, and inside the chunk one *pixel frame* at a time below every temporal
upsampling (``frame_stream``): every layer there is causal with the cache, so single frames give
the same result as the whole chunk while only one frame's activations are alive. Finished frames
are copied off the device as they are made, straight into a preallocated output (pinned CPU
memory on CUDA, copied asynchronously), so device memory does not grow with clip length. Encode
runs frame 0, then groups of 4 pixel frames (or ``temporal_chunk`` groups at once), each group
one frame at a time above every temporal downsampling.

Spatial tiling: every tile keeps its *own* feature cache for the whole clip, so a tile is a
complete causal stream in time and tiles cannot flicker against each other. Tiles run one after
the other, each through the whole clip, so only one tile's cache and activations are alive at a
time; their outputs are accumulated with feathered overlap weights (:mod:`vae.tiling`).

All frame arithmetic comes from :mod:`masking.geometry`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..masking.geometry import VaeGeometry

from .cache import FeatureCache
from .tiling import Tile, blend_weights, plan_tiles

log = logging.getLogger("WanMasking")

ProgressFn = Callable[[int, int], None]
"""``progress(done, total)`` in latent frames; called with ``done = 0`` before the first chunk."""

CheckFn = Callable[[], Optional[bool]]
"""Called between chunks; may raise (e.g. ComfyUI's interrupt) or return True to stop."""


class StreamInterrupted(RuntimeError):
    """Raised when the ``check_interrupt`` callable returns True."""


class NonFiniteOutputError(RuntimeError):
    """The VAE produced inf/NaN from finite input (fp16 overflow, typically)."""


@dataclass
class StreamOptions:
    """How one encode/decode call runs.

    Attributes:
        tile: tile size in *pixels* (multiple of the VAE's spatial stride); 0 disables tiling.
        overlap: feathered overlap between tiles in pixels (multiple of the stride).
        temporal_chunk: latent frames per model call after frame 0 (decode), or groups of 4 pixel
            frames per call (encode). 1 = upstream's chunking; larger is faster, uses more memory.
        frame_stream: pixel frames per pass below every temporal upsampling (decode) and above every
            temporal downsampling (encode); 1 = the least memory, 0 = the whole chunk at once (the
            layout before frame streaming). The result does not depend on it.
        offload: keep the causal feature cache in CPU memory (pinned, async on CUDA).
        pad_frames: encode only: when F is not 1+4k, repeat the last frame up to the next 1+4k
            (with a warning) instead of raising.
        output_device: where results go (CPU by default; pinned when computing on CUDA).
        progress: progress callback, see :data:`ProgressFn`.
        check_interrupt: interrupt check, see :data:`CheckFn`.
    """

    tile: int = 0
    overlap: int = 64
    temporal_chunk: int = 1
    frame_stream: int = 1
    offload: bool = False
    pad_frames: bool = False
    output_device: torch.device | str = "cpu"
    progress: Optional[ProgressFn] = None
    check_interrupt: Optional[CheckFn] = None
    prefetch: int = 3


def latent_chunks(latent_frames: int, temporal_chunk: int) -> list[tuple[int, int]]:
    """``[(0, 1), (1, 1+c), ...]``: latent frame 0 alone, then ``temporal_chunk`` frames per chunk."""
    if temporal_chunk < 1:
        raise ValueError(f"temporal_chunk must be >= 1, got {temporal_chunk}")
    chunks = [(0, 1)]
    chunks += [(s, min(s + temporal_chunk, latent_frames)) for s in range(1, latent_frames, temporal_chunk)]
    return chunks


def pixel_range(geometry: VaeGeometry, t0: int, t1: int) -> tuple[int, int]:
    """Pixel frames ``[f0, f1)`` packed into latent frames ``[t0, t1)``."""
    return geometry.frame_group(t0).start, geometry.frame_group(t1 - 1).stop


def _tiles(size_hw: tuple[int, int], tile: int, overlap: int, unit: int, what: str) -> tuple[list[Tile], int]:
    """Plan tiles over a grid of ``size_hw`` latent cells; ``tile``/``overlap`` are pixels, one cell is ``unit`` px."""
    if tile and (tile % unit or overlap % unit):
        raise ValueError(f"tile_size/overlap ({what}): {tile} and {overlap} px must be multiples of {unit} "
                         f"(the VAE's spatial stride). Fix: use e.g. tile_size {max(unit, tile // unit * unit)}, "
                         f"overlap {overlap // unit * unit}.")
    t, o = tile // unit, overlap // unit
    if tile and t <= o:
        raise ValueError(f"overlap ({what}): {overlap} px must be smaller than the tile size {tile} px. "
                         "Fix: lower overlap or raise tile_size.")
    return plan_tiles(size_hw[0], size_hw[1], t, o), o


def _output(shape, device: torch.device, output_device) -> torch.Tensor:
    out_dev = torch.device(output_device)
    pin = device.type == "cuda" and out_dev.type == "cpu"
    return torch.empty(shape, dtype=torch.float32, device=out_dev, pin_memory=pin)


def _check(opts: StreamOptions) -> None:
    if opts.check_interrupt is not None and opts.check_interrupt():
        raise StreamInterrupted("VAE run stopped by the interrupt check")


def _raise_non_finite(what: str, dtype: torch.dtype) -> None:
    if dtype == torch.float16:
        raise NonFiniteOutputError(
            f"{what}: the Wan VAE overflowed to inf/NaN in fp16 (activations exceed 65504). "
            "Fix: set the precision to bf16 (same speed, wider range) or fp32.")
    raise NonFiniteOutputError(f"{what}: the Wan VAE produced inf/NaN in {str(dtype).replace('torch.', '')} "
                               "from finite input. Fix: use fp32; check the weights file.")


def _run_stream(src: torch.Tensor, chunks, src_range, dst_range, step, tiles: list[Tile], grid_hw,
                overlap_cells: int, src_unit: int, scale: int, out: torch.Tensor, device, dtype,
                opts: StreamOptions, what: str) -> torch.Tensor:
    """Shared loop: for every tile (one after the other), run its stream through every chunk and
    write (untiled) or accumulate with the blend weights (tiled) the result into ``out``.

    ``step(piece, cache, first, emit)`` runs one chunk and calls ``emit(y)`` with its output frames
    in order (several calls per chunk when the model streams frames). Tiles are in grid cells
    (latent cells); one cell is ``src_unit`` source cells and ``scale`` output cells along H and W.
    """
    weights = blend_weights(tiles, grid_hw[0], grid_hw[1], overlap_cells, scale, device) if len(tiles) > 1 else [None]
    if weights[0] is not None:
        out.zero_()
    per_tile = chunks[-1][1]
    total = per_tile * len(tiles)
    bad = torch.zeros((), dtype=torch.bool, device=device)
    if opts.progress:
        opts.progress(0, total)
    for k, (tile, w) in enumerate(zip(tiles, weights)):
        cache = FeatureCache(offload=opts.offload, prefetch=opts.prefetch, check=lambda: _check(opts))
        ys = slice(tile.y0 * scale, tile.y1 * scale)
        xs = slice(tile.x0 * scale, tile.x1 * scale)
        for t0, t1 in chunks:
            _check(opts)
            s0, s1 = src_range(t0, t1)
            d0, d1 = dst_range(t0, t1)
            piece = src[:, :, s0:s1] if w is None else src[:, :, s0:s1, tile.y0 * src_unit:tile.y1 * src_unit,
                                                                tile.x0 * src_unit:tile.x1 * src_unit]
            pos = [d0]

            def emit(y: torch.Tensor) -> None:
                nonlocal bad
                n = y.shape[2]
                if pos[0] + n > d1:
                    raise RuntimeError(f"{what}: chunk {t0}:{t1} produced more than {d1 - d0} frames")
                y = y.float()
                bad |= ~torch.isfinite(y).all()
                if w is None:
                    out[:, :, pos[0]:pos[0] + n].copy_(y, non_blocking=True)
                else:
                    out[:, :, pos[0]:pos[0] + n, ys, xs].add_(y.mul_(w).to(out.device))
                pos[0] += n

            step(piece.to(device=device, dtype=dtype), cache, t0 == 0, emit)
            if pos[0] != d1:
                raise RuntimeError(f"{what}: chunk {t0}:{t1} produced {pos[0] - d0} frames, expected {d1 - d0}")
            if opts.progress:
                opts.progress(k * per_tile + t1, total)
        cache.clear()
        del cache
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()
    if bool(bad):
        _raise_non_finite(what, dtype)
    return out


def _model_device_dtype(modules) -> tuple[torch.device, torch.dtype]:
    p = next(modules[0].parameters())
    return p.device, p.dtype


@torch.no_grad()
def decode_video(model, z: torch.Tensor, opts: StreamOptions | None = None) -> torch.Tensor:
    """Decode a Wan latent chunk by chunk.

    Args:
        model: a :class:`~vae.base.WanVAEBase` whose decoder sits on the compute device in the
            decode precision.
        z: raw latents ``[B, C, T, h, w]`` (C = the model's ``z_dim``), any device/dtype.
        opts: :class:`StreamOptions`.

    Returns:
        float32 pixels in about [-1, 1], ``[B, 3, 1+4(T-1), h*s, w*s]`` on ``opts.output_device``.
    """
    opts = opts or StreamOptions()
    geometry = model.geometry
    if z.dim() != 5:
        raise ValueError(f"samples: expected a Wan video latent [B,C,T,h,w], got shape {list(z.shape)}.")
    if z.shape[1] != model.z_dim:
        raise ValueError(
            f"samples: the latent has {z.shape[1]} channels but the loaded {geometry.name} VAE decodes "
            f"{model.z_dim}-channel latents. Fix: load the VAE that matches the model "
            f"(16 ch: Wan 2.1 VAE; 48 ch: Wan 2.2 5B VAE).")
    if not torch.isfinite(z).all():
        raise ValueError("samples: the latent contains inf/NaN (the sampler diverged); decoding it cannot help.")
    device, dtype = _model_device_dtype(model.decoder_modules())
    b, _, t, h, w = z.shape
    s = geometry.spatial_stride
    tiles, o = _tiles((h, w), opts.tile, opts.overlap, s, "decode")
    frames = geometry.pixel_frames(t)
    out = _output((b, 3, frames, h * s, w * s), device, opts.output_device)
    return _run_stream(z, latent_chunks(t, opts.temporal_chunk), lambda a, b_: (a, b_),
                       lambda a, b_: pixel_range(geometry, a, b_),
                       lambda piece, cache, first, emit: model.decode_chunk(piece, cache, first, emit, opts.frame_stream),
                       tiles, (h, w), o, 1, s, out, device, dtype, opts, "decode")


def pad_to_causal_length(x: torch.Tensor, geometry: VaeGeometry, pad: bool, input_name: str = "pixels") -> torch.Tensor:
    """Return ``x`` (``[B, C, F, H, W]``) with 1+4k frames: as is, padded by repeating the last frame
    (``pad=True``, with a warning), or raise when ``pad=False``."""
    f = x.shape[2]
    if geometry.is_exact_pixel_count(f):
        return x
    if not pad:
        geometry.check_pixel_frames(f, input_name)  # raises with the fix
    target = geometry.pixel_frames(geometry.latent_frames(f) + 1)
    log.warning("%s: %d frames is not 1+4k; repeated the last frame %d time(s) to %d frames "
                "(trim the decoded video back to %d frames).", input_name, f, target - f, target, f)
    return torch.cat([x, x[:, :, -1:].expand(-1, -1, target - f, -1, -1)], dim=2)


@torch.no_grad()
def encode_video(model, x: torch.Tensor, opts: StreamOptions | None = None) -> torch.Tensor:
    """Encode pixels chunk by chunk (frame 0, then groups of 4 pixel frames).

    Args:
        model: a :class:`~vae.base.WanVAEBase` whose encoder sits on the compute device in the
            encode precision.
        x: pixels ``[B, 3, F, H, W]`` in [-1, 1]; F must be 1+4k (or ``opts.pad_frames``), H and W
            multiples of the spatial stride (8 for Wan 2.1, 16 for Wan 2.2).

    Returns:
        float32 latent means ``[B, z_dim, 1+(F-1)/4, H/s, W/s]`` on ``opts.output_device``.
    """
    opts = opts or StreamOptions()
    geometry = model.geometry
    if x.dim() != 5 or x.shape[1] != 3:
        raise ValueError(f"pixels: expected video [B,3,F,H,W] (RGB), got shape {list(x.shape)}. "
                         "Fix: pass an RGB IMAGE batch (drop the alpha channel).")
    s = geometry.spatial_stride
    geometry.check_spatial(x.shape[3], x.shape[4], "pixels", multiple=s)
    if not torch.isfinite(x).all():
        raise ValueError("pixels: the image contains inf/NaN.")
    x = pad_to_causal_length(x, geometry, opts.pad_frames)
    device, dtype = _model_device_dtype(model.encoder_modules())
    b, _, f, hp, wp = x.shape
    t = geometry.latent_frames(f)
    h, w = hp // s, wp // s
    tiles, o = _tiles((h, w), opts.tile, opts.overlap, s, "encode")
    out = _output((b, model.z_dim, t, h, w), device, opts.output_device)
    return _run_stream(x, latent_chunks(t, opts.temporal_chunk), lambda a, b_: pixel_range(geometry, a, b_),
                       lambda a, b_: (a, b_), lambda piece, cache, first, emit: emit(model.encode_chunk(piece, cache, opts.frame_stream)),
                       tiles, (h, w), o, s, 1, out, device, dtype, opts, "encode")
