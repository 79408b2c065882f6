"""The working set of a streaming Wan VAE call, measured on the model itself.

:func:`decode_bytes` / :func:`encode_bytes` run the model's own chunk functions on a *meta* twin
(same classes and widths, no data) with the real input shape, and count every tensor storage
the model allocates while it is alive (a dispatch-level allocator model). The peak of that count
in the steady state of the stream is the activation memory one call needs on its device: the
causal cache (2 frames per cached convolution, or only the slots in flight with offload), plus
the largest single pass of one pixel frame through a layer. It grows with the tile (or frame)
area, not with the clip length, so three latent chunks are enough to reach it.

ComfyUI's ``memory_used_decode`` / ``memory_used_encode`` hooks take these numbers (see
``nodes/comfy_compat/vae.py``), so its memory manager frees what the VAE really needs.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch

from .cache import FeatureCache, tensors

try:  # the dispatch-mode base class (public since torch 2.0 under this path)
    from torch.utils._python_dispatch import TorchDispatchMode
except ImportError:  # pragma: no cover - very old torch
    TorchDispatchMode = None

AVAILABLE = TorchDispatchMode is not None
"""Whether this torch can trace working sets (else callers keep their own estimates)."""


@dataclass
class Trace:
    """Result of one traced run: ``peak`` bytes alive at once, ``cache`` bytes in the causal cache at
    the end (steady state), ``output`` bytes of the largest single output piece."""

    peak: int = 0
    cache: int = 0
    output: int = 0
    live: int = field(default=0, repr=False)


class _Counter(TorchDispatchMode):
    """Counts the bytes of every storage created under it while it is alive (by storage identity,
    so views and in-place results are not counted twice; views of tensors made outside, such as
    weights, are not counted at all)."""

    def __init__(self, trace: Trace):
        super().__init__()
        self.trace = trace
        self.seen: set[int] = set()

    def _freed(self, key: int, nbytes: int) -> None:
        self.seen.discard(key)
        self.trace.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {id(a.untyped_storage()) for a in args if isinstance(a, torch.Tensor)}
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.device.type == "meta":  # host copies are not counted
                st = t.untyped_storage()
                key = id(st)
                if key in self.seen or key in inputs:  # a view or in-place result: no new memory
                    continue
                n = st.nbytes()
                self.seen.add(key)
                self.trace.live += n
                self.trace.peak = max(self.trace.peak, self.trace.live)
                weakref.finalize(st, self._freed, key, n)
        return out


def _attend_like(q, k, v):
    """Stand-in for the fused attention on the meta twin: its output only (no ``L x L`` matrix),
    which is what the fused kernels allocate."""
    return torch.empty_like(q)


_TWINS: dict = {}


def meta_twin(model, encode_dtype: torch.dtype | None = None, decode_dtype: torch.dtype | None = None):
    """A data-free copy of ``model`` (same class and widths, parameters on the meta device, the
    model's per-half dtypes unless given), made once per class, config and dtypes."""
    enc, dec = encode_dtype or model.encode_dtype, decode_dtype or model.decode_dtype
    key = (type(model), tuple(sorted(model.config.items())), enc, dec)
    twin = _TWINS.get(key)
    if twin is None:
        with torch.device("meta"):
            twin = type(model)(**model.config).eval().requires_grad_(False)
        twin.set_precision(enc, dec)
        for m in twin.modules():
            if hasattr(m, "attend"):
                m.attend = _attend_like
        _TWINS[key] = twin
    return twin


class _MetaCache(FeatureCache):
    """A cache whose offload just drops the tensor (it lives in host memory then, not counted)."""

    def put(self, idx, value):
        if self.offload and isinstance(value, torch.Tensor):
            value = torch.empty(value.shape, dtype=value.dtype, device="cpu")  # not meta: not counted
        self.slots[idx] = value

    def get(self, idx):
        value = self.slots[idx]
        if self.offload and isinstance(value, torch.Tensor):
            return torch.empty(value.shape, dtype=value.dtype, device="meta")
        return value

    def take(self, idx):
        value = self.get(idx)
        if not self.offload:
            self.slots[idx] = None
        return value

    def meta_bytes(self) -> int:
        return sum(v.numel() * v.element_size() for v in tensors(self.slots) if v.device.type == "meta")


def _tile_hw(size: int, tile: int, unit: int) -> int:
    """The largest tile extent (in input cells) along one axis of ``size`` cells."""
    return size if tile <= 0 else min(size, tile // unit)


def decode_bytes(model, latent_shape, dtype: torch.dtype | None = None, tile: int = 0, temporal_chunk: int = 1,
                 frame_stream: int = 1, offload: bool = False, latent_frames: int = 3) -> Trace:
    """Traced working set of decoding one sample of ``latent_shape`` (``[B, C, T, h, w]``; B is
    ignored, as ComfyUI's estimates are per sample).

    Args:
        model: a :class:`~vae.base.WanVAEBase` (only its class, widths and dtypes are used).
        dtype: decoder precision (default: the model's).
        tile: tile size in pixels (0: untiled); the largest tile is traced.
        temporal_chunk, frame_stream, offload: as :class:`~vae.stream.StreamOptions`.
        latent_frames: chunks traced (the peak is reached from the third latent frame on).

    Returns:
        :class:`Trace` in bytes (activations only: weights and the off-device output excluded).
    """
    twin = meta_twin(model, decode_dtype=dtype)
    _, c, t, h, w = latent_shape
    s = model.geometry.spatial_stride
    th, tw = _tile_hw(h, tile, s), _tile_hw(w, tile, s)
    ddt = twin.decode_dtype

    def run(t0: int, t1: int, cache: FeatureCache, trace: Trace) -> None:
        def emit(y):
            trace.output = max(trace.output, y.numel() * 4)
            torch.isfinite(y.float()).all()  # the driver's cast and finite check on the device
        twin.decode_chunk(torch.empty(1, c, t1 - t0, th, tw, device="meta", dtype=ddt), cache, t0 == 0, emit,
                          frame_stream)

    return _trace(run, t, temporal_chunk, offload, latent_frames)


def encode_bytes(model, pixel_shape, dtype: torch.dtype | None = None, tile: int = 0, temporal_chunk: int = 1,
                 frame_stream: int = 1, offload: bool = False, latent_frames: int = 3) -> Trace:
    """Traced working set of encoding one sample of ``pixel_shape`` (``[B, 3, F, H, W]``); see
    :func:`decode_bytes`."""
    twin = meta_twin(model, encode_dtype=dtype)
    _, _, f, hp, wp = pixel_shape
    geometry = model.geometry
    s = geometry.spatial_stride
    th, tw = _tile_hw(hp // s, tile, s) * s, _tile_hw(wp // s, tile, s) * s
    edt = twin.encode_dtype

    def run(t0: int, t1: int, cache: FeatureCache, trace: Trace) -> None:
        g0, g1 = geometry.frame_group(t0).start, geometry.frame_group(t1 - 1).stop
        x = torch.empty(1, 3, g1 - g0, th, tw, device="meta", dtype=edt)
        torch.isfinite(twin.encode_chunk(x, cache, frame_stream).float()).all()

    return _trace(run, geometry.latent_frames(max(1, f)), temporal_chunk, offload, latent_frames)


def _trace(run, total_frames: int, temporal_chunk: int, offload: bool, latent_frames: int = 3) -> Trace:
    """Count the allocations of ``run(t0, t1, cache, trace)`` over the first chunks of a stream
    (enough to reach the steady state: frame 0, then two more chunks)."""
    frames = min(total_frames, max(latent_frames, 1 + 2 * temporal_chunk))
    chunks = [(0, 1)] + [(a, min(a + temporal_chunk, frames)) for a in range(1, frames, temporal_chunk)]
    trace = Trace()
    cache = _MetaCache(offload=offload)
    with torch.no_grad(), _Counter(trace):
        for t0, t1 in chunks:
            run(t0, t1, cache, trace)
        trace.cache = cache.meta_bytes()
    return trace
