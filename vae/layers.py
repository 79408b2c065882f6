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
    frames of the temporal padding. Spatial padding is symmetric zeros, done by the convolution
    itself (no padded copy of the input). Zero frames in front are never materialised when a
    single output frame is computed: the kernel's taps that would only see zeros are dropped
    (``x [B, C, 1, H, W]`` -> the last temporal tap only), which gives the same numbers.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        pt, ph, pw = self.padding
        self._pad = [pw, pw, ph, ph, 2 * pt, 0]
        self.padding = (0, ph, pw)

    @property
    def causal_frames(self) -> int:
        """Past frames the temporal padding asks for (0 for 1x1x1 and unpadded convolutions)."""
        return self._pad[4]

    def forward(self, x: torch.Tensor, past: torch.Tensor | None = None) -> torch.Tensor:
        n = 0
        if past is not None and self._pad[4] > 0:
            x, n = torch.cat([past.to(x.device), x], dim=2), past.shape[2]
        return self.conv_past(x, n)

    def conv_past(self, x: torch.Tensor, past_frames: int) -> torch.Tensor:
        """Convolve ``x`` whose first ``past_frames`` frames are cached past frames (they replace as
        many zero frames of the temporal padding).

        Shape: ``[B, C_in, past_frames + t, H, W] -> [B, C_out, t', H', W']``.
        """
        zeros = self._pad[4] - past_frames
        if zeros <= 0:
            return super().forward(x)
        kt = self.kernel_size[0]
        if x.shape[2] + zeros == kt and self.stride[0] == 1:
            # one output frame: the first `zeros` taps would multiply zero frames only
            return F.conv3d(x, self.weight[:, :, zeros:].contiguous(), self.bias, self.stride, self.padding,
                            self.dilation, self.groups)
        return super().forward(F.pad(x, (0, 0, 0, 0, zeros, 0)))


def cached_causal_conv(conv: CausalConv3d, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
    """Apply ``conv`` to the chunk ``x`` continuing the previous chunks held in ``cache``.

    The slot keeps the last ``CACHE_T`` input frames; a 1-frame chunk keeps the previous chunk's
    last frame in front of it (the upstream rule, kept so results match the official VAE, and what
    lets the decoder stream single frames). While frames stream one at a time the slot holds them
    as a tuple of 1-frame tensors, so keeping the new frame copies nothing (with offload, and for
    longer chunks, it is one 2-frame tensor). The previous value leaves the cache before the
    convolution runs, so it is freed as soon as it has been concatenated in front of the chunk.
    """
    idx = cache.next_slot()
    past = cache.take(idx)
    frames = list(past) if isinstance(past, tuple) else [past] if isinstance(past, torch.Tensor) else []
    n = sum(f.shape[2] for f in frames)
    t = x.shape[2]
    if t >= CACHE_T:
        if isinstance(past, torch.Tensor) and past.shape == x[:, :, -CACHE_T:].shape and past.device == x.device:
            keep = past.copy_(x[:, :, -CACHE_T:]) if conv._pad[4] == 0 else x[:, :, -CACHE_T:].clone()
        else:
            keep = x[:, :, -CACHE_T:].clone()
    elif not frames:
        keep = x[:, :, -CACHE_T:].clone() if cache.offload else (x,)
    elif cache.offload:
        keep = torch.cat([frames[-1][:, :, -1:].to(x.device), x], dim=2)
    else:
        last = frames[-1] if frames[-1].shape[2] == 1 else frames[-1][:, :, -1:].clone()
        keep = (last, x)
    inp = torch.cat([f.to(x.device) for f in frames] + [x], dim=2) if frames and conv._pad[4] > 0 else x
    if conv._pad[4] == 0:
        n = 0
    del past, frames, x  # the chunk lives on in ``inp`` (or is ``inp``); the caller handed it over
    cache.put(idx, keep)
    del keep
    return conv.conv_past(inp, n)


def framewise(fn, x: torch.Tensor, cache: FeatureCache, frames: int) -> torch.Tensor:
    """``fn(x)`` computed ``frames`` frames at a time, every slice from the same cache cursor.

    Exact for any ``fn`` that is causal in time with ``cache`` (cached causal convolutions,
    per-position norms and activations, per-frame spatial layers): the slices see the same past
    as the whole chunk would. ``frames <= 0`` or a chunk of at most ``frames`` frames runs at once.
    The outputs are concatenated along time.
    """
    if frames <= 0 or x.shape[2] <= frames:
        return fn(x)
    start = cache.cursor
    outs = []
    for f in range(0, x.shape[2], frames):
        cache.cursor = start
        outs.append(fn(x[:, :, f:f + frames]))
    return torch.cat(outs, dim=2)


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
        return out + self.bias.to(x) if self.bias is not None else out

    def norm_silu(self, x: torch.Tensor) -> torch.Tensor:
        """``silu(self(x))`` with one output-sized allocation (in place after the normalisation;
        the products are the same as :meth:`forward`'s)."""
        return self._scale_silu_(F.normalize(x, dim=1))

    def norm_silu_(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`norm_silu` computed in place in ``x`` (which the caller owns and gives up)."""
        return self._scale_silu_(x.div_(x.norm(2, dim=1, keepdim=True).clamp_min_(1e-12)))

    def _scale_silu_(self, out: torch.Tensor) -> torch.Tensor:
        out.mul_(self.scale).mul_(self.gamma.to(out))
        if self.bias is not None:
            out.add_(self.bias.to(out))
        return F.silu(out, inplace=True)


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
        # nested calls hand each intermediate over without a local name, so cached_causal_conv can
        # free it as soon as it has been concatenated behind the cached frames (CPython passes the
        # reference on); only the block input stays alive for the shortcut
        return cached_causal_conv(
            r[6], r[3].norm_silu_(cached_causal_conv(r[2], r[0].norm_silu(x), cache)), cache,
        ).add_(self.shortcut(x))


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
        y = self.attend(q, k, v)
        y = self.proj(rearrange(y, "n 1 (h w) c -> n c h w", h=h, w=w))
        return rearrange(y, "(b t) c h w -> b c t h w", t=t) + x

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention ``[N, 1, L, C]`` x3 -> ``[N, 1, L, C]`` (torch's fused kernel, no ``L x L`` matrix
        on CUDA or CPU; :mod:`vae.memory` replaces it on its meta twin)."""
        return F.scaled_dot_product_attention(q, k, v)


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

    @property
    def temporal(self) -> bool:
        """True for the modes that also resample time (``upsample3d``, ``downsample3d``)."""
        return self.mode.endswith("3d")

    def forward(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        if self.mode == "upsample3d":
            x = self.time_up(x, cache)
        y = self.spatial(x)
        if self.mode == "downsample3d":
            y = self.time_down(y, cache)
        return y

    def spatial(self, x: torch.Tensor) -> torch.Tensor:
        """The per-frame spatial part: ``[B, C, t, H, W] -> [B, C', t, 2H, 2W]`` (up) or ``[.., H/2, W/2]`` (down).
        It looks at one frame at a time, so any slice of frames gives the same result."""
        t = x.shape[2]
        y = rearrange(x, "b c t h w -> (b t) c h w")
        if self.mode.startswith("upsample"):
            y = F.interpolate(y, scale_factor=(2.0, 2.0), mode="nearest-exact")
        else:
            y = F.pad(y, (0, 1, 0, 1))
        return rearrange(self.resample[1](y), "(b t) c h w -> b c t h w", t=t)

    def time_up(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        """``upsample3d``'s temporal part (one cache slot): ``[B, C, t, H, W] -> [B, C, 2t, H, W]``
        (``t`` frames unchanged on the first chunk)."""
        return self._time_up(x, cache)

    def time_down(self, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
        """``downsample3d``'s temporal part (one cache slot), on the spatially downsampled chunk:
        ``[B, C, t, H, W] -> [B, C, t/2, H, W]`` (frame 0 of the clip passes through)."""
        return self._time_down(x, cache)

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
    """Head on ``x`` (modified in place: the caller gives it up)."""
    return cached_causal_conv(layers[2], layers[0].norm_silu_(x), cache)


def middle(dim: int) -> nn.ModuleList:
    """Middle blocks ``[ResidualBlock, AttentionBlock, ResidualBlock]`` (keys ``middle.0..2``)."""
    return nn.ModuleList([ResidualBlock(dim, dim), AttentionBlock(dim), ResidualBlock(dim, dim)])


def run_middle(layers: nn.ModuleList, x: torch.Tensor, cache: FeatureCache) -> torch.Tensor:
    x = layers[0](x, cache)
    x = layers[1](x)
    return layers[2](x, cache)
