"""The Wan 2.1 VAE (also used by Wan 2.2 14B): 16 latent channels, 8x spatial, 4x temporal.

Official configuration: ``dim=96, z_dim=16, dim_mult=(1, 2, 4, 4), num_res_blocks=2,
temporal_downsample=(False, True, True)``. Parameter names equal the official safetensors keys
(``encoder.conv1.weight``, ``encoder.downsamples.{i}...``, ``encoder.middle.{0,1,2}...``,
``encoder.head.{0,2}...``, ``conv1``, ``conv2``, ``decoder.*``), so the files ComfyUI users
already have load unchanged.

The model itself only knows how to process one *chunk* with a feature cache
(:meth:`WanVAE21.encode_chunk`, :meth:`WanVAE21.decode_chunk`); the drivers in :mod:`vae.stream`
decide the chunks, tiles, devices and precision.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..masking.geometry import WAN21

from .base import WanVAEBase
from .cache import FeatureCache
from .layers import (
    CausalConv3d, Resample, ResidualBlock, cached_causal_conv, framewise, head, middle, run_head, run_middle,
)


class Encoder21(nn.Module):
    """Pixels ``[B, 3, F, H, W]`` -> ``[B, 2*z_dim, T, H/8, W/8]`` (mean and log-variance)."""

    def __init__(self, dim: int, z_channels: int, dim_mult, num_res_blocks: int, temporal_downsample):
        super().__init__()
        dims = [dim * u for u in [1, *dim_mult]]
        self.conv1 = CausalConv3d(3, dims[0], 3, padding=1)
        layers = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(num_res_blocks):
                layers.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if i != len(dim_mult) - 1:
                layers.append(Resample(out_dim, "downsample3d" if temporal_downsample[i] else "downsample2d"))
        self.downsamples = nn.ModuleList(layers)
        self.middle = middle(dims[-1])
        self.head = head(dims[-1], z_channels)

    def forward(self, x: torch.Tensor, cache: FeatureCache, frames: int = 1) -> torch.Tensor:
        """Encode one chunk; ``frames``: pixel frames per pass through each section above a temporal
        downsampling (0: the whole chunk at once). The result does not depend on it."""
        layers = list(self.downsamples)
        # sections: [conv1 + layers up to the first downsample3d's spatial part], then from each
        # downsample3d's temporal part up to the next one's spatial part, then the rest
        cuts = [i for i, m in enumerate(layers) if isinstance(m, Resample) and m.mode == "downsample3d"]

        def section(lo: int, hi: int, first: bool):
            def run(y: torch.Tensor) -> torch.Tensor:
                if first:
                    y = cached_causal_conv(self.conv1, y, cache)
                for layer in layers[lo:hi]:
                    y = layer(y, cache)
                return layers[hi].spatial(y) if hi < len(layers) else y
            return run

        lo = 0
        for k, hi in enumerate(cuts):
            x = framewise(section(lo, hi, k == 0), x, cache, frames)
            x = layers[hi].time_down(x, cache)
            lo = hi + 1
        if not cuts:
            x = cached_causal_conv(self.conv1, x, cache)
        for layer in layers[lo:]:
            x = layer(x, cache)
        return run_head(self.head, run_middle(self.middle, x, cache), cache)


class Decoder21(nn.Module):
    """Latent ``[B, z_dim, t, h, w]`` -> pixels ``[B, 3, f, 8h, 8w]`` (f = 1 on the first chunk, else 4t)."""

    def __init__(self, dim: int, z_dim: int, dim_mult, num_res_blocks: int, temporal_upsample):
        super().__init__()
        dims = [dim * u for u in [dim_mult[-1], *dim_mult[::-1]]]
        self.conv1 = CausalConv3d(z_dim, dims[0], 3, padding=1)
        self.middle = middle(dims[0])
        layers = []
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            if i > 0:
                in_dim = in_dim // 2  # the previous upsample's conv halves the width
            for _ in range(num_res_blocks + 1):
                layers.append(ResidualBlock(in_dim, out_dim))
                in_dim = out_dim
            if i != len(dim_mult) - 1:
                mode = "upsample3d" if temporal_upsample[i] else "upsample2d"
                layers.append(Resample(out_dim, mode, up_out=out_dim // 2))
        self.upsamples = nn.ModuleList(layers)
        self.head = head(dims[-1], 3)

    def forward(self, x: torch.Tensor, cache: FeatureCache, emit=None, frames: int = 1):
        """Decode one chunk of latents ``[B, z, t, h, w]``.

        Below every temporal upsampling the rest of the decoder runs ``frames`` pixel frames at a
        time (0: the whole chunk at once), each pass from the same cache cursor; the result does
        not depend on it. ``emit(pixels [B, 3, f, 8h, 8w])`` receives the output in order as it is
        made; without ``emit`` the chunk's frames are returned concatenated.
        """
        pieces = []
        out = emit if emit is not None else pieces.append
        x = cached_causal_conv(self.conv1, x, cache)
        x = run_middle(self.middle, x, cache)
        self._run(0, x, cache, out, frames)
        return None if emit is not None else torch.cat(pieces, dim=2)

    def _run(self, i: int, x: torch.Tensor, cache: FeatureCache, out, frames: int) -> None:
        layers = self.upsamples
        while i < len(layers):
            layer = layers[i]
            i += 1
            if frames > 0 and isinstance(layer, Resample) and layer.mode == "upsample3d":
                x = layer.time_up(x, cache)  # still at the low resolution
                if x.shape[2] > frames:
                    start = cache.cursor
                    for f in range(0, x.shape[2], frames):
                        cache.cursor = start
                        self._run(i, layer.spatial(x[:, :, f:f + frames]), cache, out, frames)
                    return
                x = layer.spatial(x)
            else:
                x = layer(x, cache)
        out(run_head(self.head, x, cache))


class WanVAE21(WanVAEBase):
    """Wan 2.1 VAE. ``encode``: ``[B, 3, 1+4k, H, W]`` in [-1, 1] -> mean ``[B, 16, 1+k, H/8, W/8]``;
    ``decode``: the reverse. Latents are raw VAE space (ComfyUI's ``Wan21`` latent format normalises).

    Args:
        dim: base width (96 in the official file; smaller widths are for tests).
        z_dim: latent channels (16).
    """

    geometry = WAN21

    def __init__(self, dim: int = 96, z_dim: int = 16, dim_mult=(1, 2, 4, 4), num_res_blocks: int = 2,
                 temporal_downsample=(False, True, True)):
        super().__init__()
        self.dim, self.z_dim = dim, z_dim
        self.config = {"dim": dim, "z_dim": z_dim, "dim_mult": tuple(dim_mult), "num_res_blocks": num_res_blocks,
                       "temporal_downsample": tuple(temporal_downsample)}
        """Constructor arguments (rebuilds the same architecture, e.g. the meta twin of :mod:`vae.memory`)."""
        self.encoder = Encoder21(dim, z_dim * 2, dim_mult, num_res_blocks, temporal_downsample)
        self.conv1 = CausalConv3d(z_dim * 2, z_dim * 2, 1)
        self.conv2 = CausalConv3d(z_dim, z_dim, 1)
        self.decoder = Decoder21(dim, z_dim, dim_mult, num_res_blocks, tuple(temporal_downsample)[::-1])

    def encode_chunk(self, x: torch.Tensor, cache: FeatureCache, frames: int = 1) -> torch.Tensor:
        """One chunk of pixels ``[B, 3, f, H, W]`` (f = 1 for frame 0, else 4k) -> mean ``[B, z, t, H/8, W/8]``;
        ``frames`` pixel frames per pass above each temporal downsampling (0: all at once)."""
        cache.begin_chunk()
        mu, _log_var = self.conv1(self.encoder(x, cache, frames)).chunk(2, dim=1)
        return mu

    def decode_chunk(self, z: torch.Tensor, cache: FeatureCache, first: bool, emit=None, frames: int = 1):
        """One chunk of latents ``[B, z, t, h, w]`` -> pixels ``[B, 3, f, 8h, 8w]`` (f = 1 when ``first``, else 4t),
        ``frames`` pixel frames at a time below each temporal upsampling (0: all at once); with ``emit``
        the pixels go to ``emit`` piece by piece and nothing is returned."""
        cache.begin_chunk()
        return self.decoder(self.conv2(z), cache, emit, frames)

    def encoder_modules(self) -> list[nn.Module]:
        return [self.encoder, self.conv1]

    def decoder_modules(self) -> list[nn.Module]:
        return [self.decoder, self.conv2]
