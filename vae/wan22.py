"""The Wan 2.2 TI2V-5B VAE: 48 latent channels, 16x spatial (2x patchify, then 8x), 4x temporal.

Official configuration: ``dim=160`` (encoder), ``dec_dim=256`` (decoder), ``z_dim=48``,
``dim_mult=(1, 2, 4, 4)``, ``num_res_blocks=2``, ``temporal_downsample=(False, True, True)``.
Compared with Wan 2.1, every stage is a residual *group* whose parameter-free shortcut averages
(encoder, :class:`AvgDown3D`) or duplicates (decoder, :class:`DupUp3D`) neighbouring cells, the
upsample conv keeps its width, and pixels are patchified 2x2 (3 -> 12 channels) around the
encoder/decoder. Parameter names equal the official keys (``encoder.downsamples.{i}.downsamples.{j}...``,
``decoder.upsamples.{i}.upsamples.{j}...``).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..masking.geometry import WAN22

from .base import WanVAEBase
from .cache import FeatureCache
from .layers import (
    CausalConv3d, Resample, ResidualBlock, cached_causal_conv, framewise, head, middle, run_head, run_middle,
)

PATCH = 2


def patchify(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, F, 2H, 2W] -> [B, 4C, F, H, W]`` (channel order c, col, row as in the official VAE)."""
    return rearrange(x, "b c f (h q) (w r) -> b (c r q) f h w", q=PATCH, r=PATCH)


def unpatchify(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``[B, 4C, F, H, W] -> [B, C, F, 2H, 2W]``."""
    return rearrange(x, "b (c r q) f h w -> b c f (h q) (w r)", q=PATCH, r=PATCH)


class AvgDown3D(nn.Module):
    """Parameter-free shortcut: fold ``factor_t x factor_s x factor_s`` cells into channels, then
    average groups of channels down to ``out_channels``. A chunk with an odd frame count (frame 0)
    gets one zero frame in front. ``[B, C, T, H, W] -> [B, out, ceil(T/ft), H/fs, W/fs]``."""

    def __init__(self, in_channels: int, out_channels: int, factor_t: int, factor_s: int = 1):
        super().__init__()
        self.out_channels, self.factor_t, self.factor_s = out_channels, factor_t, factor_s
        factor = factor_t * factor_s * factor_s
        if (in_channels * factor) % out_channels:
            raise ValueError(f"AvgDown3D: {in_channels}*{factor} is not a multiple of {out_channels}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad_t = (self.factor_t - x.shape[2] % self.factor_t) % self.factor_t
        x = F.pad(x, (0, 0, 0, 0, pad_t, 0))
        x = rearrange(x, "b c (t ft) (h fh) (w fw) -> b (c ft fh fw) t h w",
                      ft=self.factor_t, fh=self.factor_s, fw=self.factor_s)
        return rearrange(x, "b (o g) t h w -> b o g t h w", o=self.out_channels).mean(dim=2)


class DupUp3D(nn.Module):
    """Parameter-free shortcut: repeat channels and unfold them into ``factor_t x factor_s x factor_s``
    cells. On the first chunk the first ``factor_t - 1`` frames are dropped (frame 0 stays one frame).
    ``[B, C, T, H, W] -> [B, out, T*ft, H*fs, W*fs]``."""

    def __init__(self, in_channels: int, out_channels: int, factor_t: int, factor_s: int = 1):
        super().__init__()
        self.out_channels, self.factor_t, self.factor_s = out_channels, factor_t, factor_s
        factor = factor_t * factor_s * factor_s
        if (out_channels * factor) % in_channels:
            raise ValueError(f"DupUp3D: {out_channels}*{factor} is not a multiple of {in_channels}")
        self.repeats = out_channels * factor // in_channels

    def forward(self, x: torch.Tensor, first_chunk: bool) -> torch.Tensor:
        x = x.repeat_interleave(self.repeats, dim=1)
        x = rearrange(x, "b (c ft fh fw) t h w -> b c (t ft) (h fh) (w fw)",
                      ft=self.factor_t, fh=self.factor_s, fw=self.factor_s)
        return x[:, :, self.factor_t - 1:] if first_chunk else x

    def frames(self, x: torch.Tensor, first_chunk: bool, f0: int, f1: int) -> torch.Tensor:
        """Output frames ``[f0, f1)`` of ``forward(x, first_chunk)``, computed from the input frames
        they come from only (the same values: this shortcut only copies)."""
        skip = self.factor_t - 1 if first_chunk else 0
        a, b = f0 + skip, f1 + skip  # indices into the undropped output
        t0, t1 = a // self.factor_t, -(-b // self.factor_t)
        y = self.forward(x[:, :, t0:t1], first_chunk=False)
        return y[:, :, a - t0 * self.factor_t:b - t0 * self.factor_t]


class DownGroup(nn.Module):
    """Encoder stage: ``num_res_blocks`` residual blocks and an optional downsample, plus :class:`AvgDown3D`."""

    def __init__(self, in_dim: int, out_dim: int, num_res_blocks: int, temporal: bool, down: bool):
        super().__init__()
        self.avg_shortcut = AvgDown3D(in_dim, out_dim, factor_t=2 if temporal else 1, factor_s=2 if down else 1)
        layers: list[nn.Module] = []
        for _ in range(num_res_blocks):
            layers.append(ResidualBlock(in_dim, out_dim))
            in_dim = out_dim
        if down:
            layers.append(Resample(out_dim, "downsample3d" if temporal else "downsample2d"))
        self.downsamples = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, cache: FeatureCache, frames: int = 0) -> torch.Tensor:
        """``frames`` > 0: everything up to the temporal downsampling runs ``frames`` frames at a
        time (the residual blocks and the downsample's spatial part are causal per frame)."""
        layers = list(self.downsamples)
        res = layers[-1] if isinstance(layers[-1], Resample) else None

        def body(y: torch.Tensor) -> torch.Tensor:
            for layer in layers[:-1] if res is not None else layers:
                y = layer(y, cache)
            return res.spatial(y) if res is not None else y

        y = framewise(body, x, cache, frames)
        if res is not None and res.mode == "downsample3d":
            y = res.time_down(y, cache)
        return y.add_(self.avg_shortcut(x))

    @property
    def temporal(self) -> bool:
        return self.avg_shortcut.factor_t > 1


class UpGroup(nn.Module):
    """Decoder stage: ``num_res_blocks + 1`` residual blocks and an optional upsample, plus :class:`DupUp3D`."""

    def __init__(self, in_dim: int, out_dim: int, num_blocks: int, temporal: bool, up: bool):
        super().__init__()
        self.avg_shortcut = DupUp3D(in_dim, out_dim, factor_t=2 if temporal else 1, factor_s=2) if up else None
        layers: list[nn.Module] = []
        for _ in range(num_blocks):
            layers.append(ResidualBlock(in_dim, out_dim))
            in_dim = out_dim
        if up:
            layers.append(Resample(out_dim, "upsample3d" if temporal else "upsample2d"))
        self.upsamples = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, cache: FeatureCache, first_chunk: bool) -> torch.Tensor:
        y = x
        for layer in self.upsamples:
            y = layer(y, cache)
        return y + self.avg_shortcut(x, first_chunk) if self.avg_shortcut is not None else y

    def stream(self, x: torch.Tensor, cache: FeatureCache, first_chunk: bool, frames: int, cont) -> None:
        """Run the stage and pass its output to ``cont``: after a temporal upsampling ``frames``
        frames at a time (each ``cont`` call starts from the same cache cursor), else at once."""
        res = self.upsamples[-1]
        if frames <= 0 or not (isinstance(res, Resample) and res.mode == "upsample3d"):
            cont(self(x, cache, first_chunk))
            return
        y = x
        for layer in list(self.upsamples)[:-1]:
            y = layer(y, cache)
        y = res.time_up(y, cache)  # still at the low resolution
        start = cache.cursor
        for f in range(0, y.shape[2], frames):
            cache.cursor = start
            f1 = min(f + frames, y.shape[2])
            out = res.spatial(y[:, :, f:f1])
            cont(out.add_(self.avg_shortcut.frames(x, first_chunk, f, f1)))


class Encoder22(nn.Module):
    """Patchified pixels ``[B, 12, F, H/2, W/2]`` -> ``[B, 2*z_dim, T, H/16, W/16]``."""

    def __init__(self, dim: int, z_channels: int, dim_mult, num_res_blocks: int, temporal_downsample):
        super().__init__()
        dims = [dim * u for u in [1, *dim_mult]]
        self.conv1 = CausalConv3d(3 * PATCH * PATCH, dims[0], 3, padding=1)
        self.downsamples = nn.ModuleList([
            DownGroup(a, b, num_res_blocks, temporal=i < len(temporal_downsample) and temporal_downsample[i],
                      down=i != len(dim_mult) - 1)
            for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))])
        self.middle = middle(dims[-1])
        self.head = head(dims[-1], z_channels)

    def forward(self, x: torch.Tensor, cache: FeatureCache, frames: int = 1) -> torch.Tensor:
        """Encode one chunk; ``frames`` patchified frames per pass above each temporal downsampling
        (0: the whole chunk at once). A temporal stage's average shortcut pairs frames, so each
        stage's input is gathered, then its body runs frame by frame again."""
        groups = list(self.downsamples)
        n_front = next((i for i, g in enumerate(groups) if g.temporal), len(groups))

        def front(y: torch.Tensor) -> torch.Tensor:
            y = cached_causal_conv(self.conv1, y, cache)
            for group in groups[:n_front]:
                y = group(y, cache)
            return y

        x = framewise(front, x, cache, frames)
        for group in groups[n_front:]:
            x = group(x, cache, frames)
        return run_head(self.head, run_middle(self.middle, x, cache), cache)


class Decoder22(nn.Module):
    """Latent ``[B, z_dim, t, h, w]`` -> patchified pixels ``[B, 12, f, 8h, 8w]``."""

    def __init__(self, dim: int, z_dim: int, dim_mult, num_res_blocks: int, temporal_upsample):
        super().__init__()
        dims = [dim * u for u in [dim_mult[-1], *dim_mult[::-1]]]
        self.conv1 = CausalConv3d(z_dim, dims[0], 3, padding=1)
        self.middle = middle(dims[0])
        self.upsamples = nn.ModuleList([
            UpGroup(a, b, num_res_blocks + 1, temporal=i < len(temporal_upsample) and temporal_upsample[i],
                    up=i != len(dim_mult) - 1)
            for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))])
        self.head = head(dims[-1], 3 * PATCH * PATCH)

    def forward(self, x: torch.Tensor, cache: FeatureCache, first_chunk: bool, emit=None, frames: int = 1):
        """Decode one chunk; below every temporal upsampling ``frames`` frames at a time (0: at
        once). ``emit(patchified pixels [B, 12, f, 8h, 8w])`` receives the output in order; without
        it the chunk's frames are returned concatenated."""
        pieces = []
        out = emit if emit is not None else pieces.append
        x = cached_causal_conv(self.conv1, x, cache)
        x = run_middle(self.middle, x, cache)
        self._run(0, x, cache, first_chunk, out, frames)
        return None if emit is not None else torch.cat(pieces, dim=2)

    def _run(self, g: int, x: torch.Tensor, cache: FeatureCache, first_chunk: bool, out, frames: int) -> None:
        if g == len(self.upsamples):
            out(run_head(self.head, x, cache))
            return
        self.upsamples[g].stream(x, cache, first_chunk, frames,
                                 lambda y: self._run(g + 1, y, cache, first_chunk, out, frames))


class WanVAE22(WanVAEBase):
    """Wan 2.2 TI2V-5B VAE. ``encode``: ``[B, 3, 1+4k, H, W]`` in [-1, 1] -> mean ``[B, 48, 1+k, H/16, W/16]``;
    ``decode``: the reverse. Latents are raw VAE space (ComfyUI's ``Wan22`` latent format normalises).

    Args:
        dim: encoder base width (160 official), dec_dim: decoder base width (256 official), z_dim: 48.
    """

    geometry = WAN22

    def __init__(self, dim: int = 160, dec_dim: int = 256, z_dim: int = 48, dim_mult=(1, 2, 4, 4),
                 num_res_blocks: int = 2, temporal_downsample=(False, True, True)):
        super().__init__()
        self.dim, self.dec_dim, self.z_dim = dim, dec_dim, z_dim
        self.config = {"dim": dim, "dec_dim": dec_dim, "z_dim": z_dim, "dim_mult": tuple(dim_mult),
                       "num_res_blocks": num_res_blocks, "temporal_downsample": tuple(temporal_downsample)}
        """Constructor arguments (rebuilds the same architecture, e.g. the meta twin of :mod:`vae.memory`)."""
        self.encoder = Encoder22(dim, z_dim * 2, dim_mult, num_res_blocks, temporal_downsample)
        self.conv1 = CausalConv3d(z_dim * 2, z_dim * 2, 1)
        self.conv2 = CausalConv3d(z_dim, z_dim, 1)
        self.decoder = Decoder22(dec_dim, z_dim, dim_mult, num_res_blocks, tuple(temporal_downsample)[::-1])

    def encode_chunk(self, x: torch.Tensor, cache: FeatureCache, frames: int = 1) -> torch.Tensor:
        """Pixels ``[B, 3, f, H, W]`` (f = 1 for frame 0, else 4k) -> mean ``[B, 48, t, H/16, W/16]``;
        ``frames`` frames per pass above each temporal downsampling (0: all at once)."""
        cache.begin_chunk()
        mu, _log_var = self.conv1(self.encoder(patchify(x), cache, frames)).chunk(2, dim=1)
        return mu

    def decode_chunk(self, z: torch.Tensor, cache: FeatureCache, first: bool, emit=None, frames: int = 1):
        """Latents ``[B, 48, t, h, w]`` -> pixels ``[B, 3, f, 16h, 16w]`` (f = 1 when ``first``, else 4t),
        ``frames`` at a time below each temporal upsampling (0: all at once); with ``emit`` the pixels
        go to ``emit`` piece by piece and nothing is returned."""
        cache.begin_chunk()
        if emit is None:
            return unpatchify(self.decoder(self.conv2(z), cache, first, None, frames))
        self.decoder(self.conv2(z), cache, first, lambda y: emit(unpatchify(y)), frames)
        return None

    def encoder_modules(self) -> list[nn.Module]:
        return [self.encoder, self.conv1]

    def decoder_modules(self) -> list[nn.Module]:
        return [self.decoder, self.conv2]
