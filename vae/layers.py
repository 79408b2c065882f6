"""Building blocks shared by the Wan 2.1 and Wan 2.2 VAEs.

Parameter names follow the official Wan safetensors layout (``residual.0.gamma``,
``residual.2.weight``, ``resample.1.weight``, ``time_conv.weight``, ``to_qkv.weight`` ...), which
is why some containers hold parameter-free placeholders at fixed indices.

Every layer that looks at more than one frame takes a :class:`~vae.cache.FeatureCache` and reads
and writes its slot(s) in a fixed order, so a clip can be processed chunk by chunk (frame 0
alone, then any number of causal groups) with the same result as processing it at once.
Tensors are ``[B, C, T, H, W]`` unless stated otherwise.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from .cache import CACHE_T, REP, FeatureCache


class CausalConv3d(nn.Conv3d):
    """3D convolution padded only on the past side in time (all ``2 * pad_t`` frames before).

    ``forward(x, past)``: ``past`` (``[B, C_in, t, H, W]``, t <= 2) replaces as many of the zero
    frames of the temporal padding. Spatial padding is symmetric zeros.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        pt, ph, pw = self.padding
        self._pad = [pw, pw, ph, ph, 2 * pt, 0]
        self.padding = (0, 0, 0)

    def forward(self, x: torch.Tensor, past: torch.Tensor | None = None) -> torch.Tensor:
        n = 0
        if past is not None and self._pad[4] > 0:
            x, n = torch.cat([past.to(x.device), x], dim=2), past.shape[2]
        x = self.pad_past(x, n)
        return self.conv_padded(x)

    def pad_past(self, x: torch.Tensor, past_frames: int) -> torch.Tensor:
        """Zero-pad ``x`` whose first ``past_frames`` frames are cached past frames (they replace as
        many zero frames of the temporal padding)."""
        pad = list(self._pad)
        pad[4] -= past_frames
        return F.pad(x, pad)

    def conv_padded(self, x: torch.Tensor) -> torch.Tensor:
        """The plain convolution of an already padded input."""
        return super().forward(x)


def cached_causal_conv(conv: CausalConv3d, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
    """Apply ``conv`` to the chunk ``x`` continuing the previous chunks held in ``cache``.

    The slot keeps the last ``CACHE_T`` input frames; a 1-frame chunk keeps the previous chunk's
    last frame in front of it (the upstream rule, kept so results match the official VAE). The
    previous value leaves the cache before the convolution runs, so it is freed as soon as it has
    been concatenated in front of the chunk.
    """
    idx = cache.next_slot()
    past = cache.take(idx)
    keep = x[:, :, -CACHE_T:]
    if keep.shape[2] < CACHE_T and isinstance(past, torch.Tensor):
        keep = torch.cat([past[:, :, -1:].to(keep.device), keep], dim=2)
    else:
        keep = keep.clone()
    n = 0
    if isinstance(past, torch.Tensor) and conv._pad[4] > 0:
        x, n = torch.cat([past.to(x.device), x], dim=2), past.shape[2]
    del past
    x = conv.pad_past(x, n)  # drops the concatenated copy before the convolution runs
    out = conv.conv_padded(x)
    cache.put(idx, keep)
    return out


class RMSNorm(nn.Module):
    """``F.normalize`` over channels times ``sqrt(dim) * gamma`` (Wan's RMS_norm).

    Args:
        dim: channels.
        images: True for ``[N, C, H, W]`` input (gamma ``[C, 1, 1]``), False for 5D (``[C, 1, 1, 1]``).
    """

    def __init__(self, dim: int, images: bool = False, bias: bool = False):
        super().__init__()
        shape = (dim, 1, 1) if images else (dim, 1, 1, 1)
        self.scale = dim ** 0.5
        self.gamma = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.normalize(x, dim=1) * self.scale * self.gamma.to(x)
        return out + self.bias.to(x) if self.bias is not None else out + 0


class ResidualBlock(nn.Module):
    """norm-SiLU-conv3x3x3-norm-SiLU-conv3x3x3 plus a 1x1x1 shortcut when the width changes.

    ``residual`` indices 0..6 match the official keys (1, 4, 5 are SiLU/SiLU/dropout).
    Shape: ``[B, in_dim, T, H, W] -> [B, out_dim, T, H, W]``.
    """

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.residual = nn.ModuleList([
            RMSNorm(in_dim), nn.SiLU(), CausalConv3d(in_dim, out_dim, 3, padding=1),
            RMSNorm(out_dim), nn.SiLU(), nn.Identity(), CausalConv3d(out_dim, out_dim, 3, padding=1),
        ])
        self.shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        r = self.residual
        h = r[1](r[0](x))
        h = cached_causal_conv(r[2], h, cache)
        h = r[4](r[3](h))
        h = cached_causal_conv(r[6], h, cache)
        return h + self.shortcut(x)


class AttentionBlock(nn.Module):
    """Single-head self-attention inside each frame (no mixing across time).

    Shape: ``[B, C, T, H, W] -> [B, C, T, H, W]``.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.norm = RMSNorm(dim, images=True)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[2]
        h, w = x.shape[-2:]
        y = self.norm(rearrange(x, "b c t h w -> (b t) c h w"))
        q, k, v = self.to_qkv(y).chunk(3, dim=1)
        q, k, v = (rearrange(a, "n c h w -> n 1 (h w) c").contiguous() for a in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v)
        y = self.proj(rearrange(y, "n 1 (h w) c -> n c h w", h=h, w=w))
        return rearrange(y, "(b t) c h w -> b c t h w", t=t) + x


class Resample(nn.Module):
    """Spatial x2 up/down sampling, optionally also x2 in time (causal).

    Modes:
        ``upsample2d`` / ``upsample3d``: nearest-exact x2 then conv3x3 to ``up_out`` channels; 3d first
        doubles the frames with ``time_conv`` (kernel 3, 2x channels interleaved into time), skipped on
        the first chunk so frame 0 stays one frame.
        ``downsample2d`` / ``downsample3d``: pad right/bottom, stride-2 conv3x3; 3d then halves the
        frames with a stride-2 ``time_conv`` over (previous chunk's last frame, this chunk); the first
        chunk is only remembered, so frame 0 stays one frame.

    ``resample`` indices match the official keys (the conv is ``resample.1``).
    """

    def __init__(self, dim: int, mode: str, up_out: int | None = None):
        super().__init__()
        if mode not in ("upsample2d", "upsample3d", "downsample2d", "downsample3d"):
            raise ValueError(f"unknown Resample mode {mode!r}")
        self.mode = mode
        if mode.startswith("upsample"):
            self.resample = nn.ModuleList([nn.Identity(), nn.Conv2d(dim, up_out or dim, 3, padding=1)])
            if mode == "upsample3d":
                self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        else:
            self.resample = nn.ModuleList([nn.Identity(), nn.Conv2d(dim, dim, 3, stride=(2, 2))])
            if mode == "downsample3d":
                self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1), padding=(0, 0, 0))

    def forward(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        if self.mode == "upsample3d":
            x = self._time_up(x, cache)
        t = x.shape[2]
        y = rearrange(x, "b c t h w -> (b t) c h w")
        if self.mode.startswith("upsample"):
            y = F.interpolate(y, scale_factor=(2.0, 2.0), mode="nearest-exact")
        else:
            y = F.pad(y, (0, 1, 0, 1))
        y = rearrange(self.resample[1](y), "(b t) c h w -> b c t h w", t=t)
        if self.mode == "downsample3d":
            y = self._time_down(y, cache)
        return y

    def _time_up(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        idx = cache.next_slot()
        past = cache.get(idx)
        if past is None:  # first chunk: frame 0 is not doubled
            cache.put(idx, REP)
            return x
        keep = x[:, :, -CACHE_T:]
        if keep.shape[2] < CACHE_T:
            front = past[:, :, -1:].to(keep.device) if past is not REP else torch.zeros_like(keep)
            keep = torch.cat([front, keep], dim=2)
        else:
            keep = keep.clone()
        y = self.time_conv(x) if past is REP else self.time_conv(x, past)
        cache.put(idx, keep)
        return rearrange(y, "b (two c) t h w -> b c (t two) h w", two=2)

    def _time_down(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        idx = cache.next_slot()
        past = cache.get(idx)
        if past is None:  # first chunk: frame 0 passes through and is remembered
            cache.put(idx, x.clone())
            return x
        keep = x[:, :, -1:].clone()
        y = self.time_conv(torch.cat([past[:, :, -1:].to(x.device), x], dim=2))
        cache.put(idx, keep)
        return y


def head(dim: int, out_channels: int) -> nn.ModuleList:
    """Output head ``[norm, SiLU, conv3x3x3]`` (keys ``head.0.gamma``, ``head.2.weight``)."""
    return nn.ModuleList([RMSNorm(dim), nn.SiLU(), CausalConv3d(dim, out_channels, 3, padding=1)])


def run_head(layers: nn.ModuleList, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
    return cached_causal_conv(layers[2], layers[1](layers[0](x)), cache)


def middle(dim: int) -> nn.ModuleList:
    """Middle blocks ``[ResidualBlock, AttentionBlock, ResidualBlock]`` (keys ``middle.0..2``)."""
    return nn.ModuleList([ResidualBlock(dim, dim), AttentionBlock(dim), ResidualBlock(dim, dim)])


def run_middle(layers: nn.ModuleList, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
    x = layers[0](x, cache)
    x = layers[1](x)
    return layers[2](x, cache)
