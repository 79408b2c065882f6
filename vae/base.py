"""What the Wan 2.1 and 2.2 VAE modules share: per-part precision and the ``encode``/``decode``
entry points that run the streaming drivers of :mod:`vae.stream`.

``encode``/``decode`` have the signatures ComfyUI's ``comfy.sd.VAE`` calls on its
``first_stage_model`` (pixels ``[B, 3, F, H, W]`` in [-1, 1] -> latents, and back), so a module
of this class can stand in for ComfyUI's own Wan VAE while every call streams.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from . import memory
from .stream import StreamOptions, decode_video, encode_video

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

WORKING_SET_MARGIN = 1.2
"""Factor on the traced working set for what the trace cannot see: convolution workspaces and
weight reorders of the backend, allocator rounding and fragmentation (see BENCHMARKS.md, issue 15,
for traced against measured peaks)."""


class WanVAEBase(nn.Module):
    """Base class: subclasses define ``geometry``, ``z_dim``, ``encode_chunk``, ``decode_chunk``,
    ``encoder_modules`` and ``decoder_modules``."""

    geometry = None
    z_dim: int

    def __init__(self):
        super().__init__()
        self.options = StreamOptions()
        """Options used by :meth:`encode`/:meth:`decode` (ComfyUI's native nodes call these)."""

    # ---- precision ----------------------------------------------------------------------
    def set_precision(self, encode_dtype: torch.dtype, decode_dtype: torch.dtype) -> "WanVAEBase":
        """Cast the encoder half (``encoder``, ``conv1``) and the decoder half (``decoder``, ``conv2``)
        to separate dtypes; device moves (``.to(device)``) keep them."""
        for m in self.encoder_modules():
            m.to(dtype=encode_dtype)
        for m in self.decoder_modules():
            m.to(dtype=decode_dtype)
        return self

    @property
    def encode_dtype(self) -> torch.dtype:
        return next(self.encoder_modules()[0].parameters()).dtype

    @property
    def decode_dtype(self) -> torch.dtype:
        return next(self.decoder_modules()[0].parameters()).dtype

    # ---- whole-clip entry points ---------------------------------------------------------
    def encode(self, x: torch.Tensor, **overrides) -> torch.Tensor:
        """Pixels ``[B, 3, F, H, W]`` in [-1, 1] -> latent means ``[B, z, T, h, w]`` (float32, on
        ``options.output_device``), streamed with :attr:`options` (``overrides`` replace fields)."""
        return encode_video(self, x, self._opts(overrides))

    def decode(self, z: torch.Tensor, **overrides) -> torch.Tensor:
        """Latents ``[B, z, T, h, w]`` -> pixels ``[B, 3, 1+4(T-1), H, W]`` (float32, about [-1, 1])."""
        return decode_video(self, z, self._opts(overrides))

    # ---- memory the device needs (ComfyUI's memory_used_decode / memory_used_encode) --------
    def decode_working_set(self, shape, **overrides) -> int:
        """Device bytes one sample of latents ``shape`` (``[B, C, T, h, w]``) needs to decode with
        :attr:`options` (``overrides`` replace fields), traced on the model itself (:mod:`vae.memory`):
        the causal cache (unless offloaded) plus the largest one-frame working set, with
        :data:`WORKING_SET_MARGIN`. Weights and the off-device output are not included."""
        return self._working_set(memory.decode_bytes, shape, overrides)

    def encode_working_set(self, shape, **overrides) -> int:
        """Like :meth:`decode_working_set`, for encoding one sample of pixels ``shape`` (``[B, 3, F, H, W]``)."""
        return self._working_set(memory.encode_bytes, shape, overrides)

    def _working_set(self, trace_fn, shape, overrides: dict) -> int:
        o = self._opts(overrides)
        key = (trace_fn.__name__, tuple(shape[1:]), o.tile, o.temporal_chunk, o.frame_stream, o.offload,
               self.encode_dtype, self.decode_dtype)
        memo = self.__dict__.setdefault("_working_sets", {})  # traced once per shape and options
        if key not in memo:
            trace = trace_fn(self, tuple(shape), tile=o.tile, temporal_chunk=o.temporal_chunk,
                             frame_stream=o.frame_stream, offload=o.offload)
            memo[key] = int(trace.peak * WORKING_SET_MARGIN)
        return memo[key]

    def _opts(self, overrides: dict) -> StreamOptions:
        if not overrides:
            return self.options
        opts = copy.copy(self.options)
        for k, v in overrides.items():
            if not hasattr(opts, k):
                raise TypeError(f"unknown VAE option {k!r}")
            setattr(opts, k, v)
        return opts
