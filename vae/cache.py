"""The causal feature cache of a Wan VAE, with optional offload to (pinned) CPU memory.

Every cached causal conv of the Wan VAE keeps the last ``CACHE_T = 2`` frames of its *input*
from the previous chunk, so that the next chunk can be convolved as if the whole clip had been
seen at once. The model asks for one *slot* per cached layer, in the same order every chunk
(:meth:`FeatureCache.begin_chunk` rewinds the cursor). A slot holds ``None`` (nothing seen yet),
:data:`REP` (the upstream marker of a temporal upsample that has seen only the first chunk), a
tensor ``[B, C, t<=2, h, w]``, or (without offload, while single frames stream) a tuple of such
1-frame tensors, oldest first.

Offload: with ``offload=True`` every tensor slot is copied to CPU memory as soon as it is written
(pinned memory and a side CUDA stream on CUDA, so the copy overlaps compute) and copied back
``prefetch`` slots ahead of its next use, again on the side stream. "Ahead" follows the order in
which the previous chunk visited the slots (with frame streaming the same slots are visited once
per pixel frame, so that order is not the slot order). Device memory then holds only
the few slots in flight instead of the whole cache. On the CPU the copies are exact, so results
are bit-identical with and without offload.
"""
from __future__ import annotations

import torch

CACHE_T = 2
"""Frames of layer input each cached causal conv keeps from the previous chunk."""


class _Rep:
    """Marker: a temporal upsample layer has seen only the first (single-frame) chunk."""

    def __repr__(self) -> str:
        return "REP"


REP = _Rep()


def tensors(slots) -> list[torch.Tensor]:
    """The tensors held by ``slots`` (tuples unpacked; ``None`` and :data:`REP` skipped)."""
    out = []
    for v in slots:
        out += [t for t in (v if isinstance(v, tuple) else (v,)) if isinstance(t, torch.Tensor)]
    return out


class FeatureCache:
    """Slots of cached layer inputs for one stream (one clip, or one spatial tile of a clip).

    Args:
        offload: keep the cached tensors in CPU memory between uses.
        prefetch: how many slots ahead to copy back to the device when offloading on CUDA.
        check: called before every cached layer (dozens of times per chunk), so that an interrupt
            stops a long chunk promptly; it may raise. No host-device synchronization happens here.
    """

    def __init__(self, offload: bool = False, prefetch: int = 3, check=None):
        self.offload = offload
        self.check = check
        self.prefetch = max(1, prefetch)
        self.slots: list = []
        self.cursor = 0
        self._copy_stream = None
        self._inflight: dict[int, tuple[torch.Tensor, object]] = {}
        self._device: torch.device | None = None
        self._order: list[int] = []  # slots in the order this chunk visits them
        self._last_order: list[int] = []  # ... and the previous chunk

    # ---- cursor -------------------------------------------------------------------------
    def begin_chunk(self) -> None:
        """Rewind to the first slot: call before every chunk the model processes."""
        self.cursor = 0
        if self._order:
            self._last_order, self._order = self._order, []

    def next_slot(self) -> int:
        """Index of the next cached layer's slot (created empty on the first chunk)."""
        if self.check is not None:
            self.check()
        idx = self.cursor
        self.cursor += 1
        if idx == len(self.slots):
            self.slots.append(None)
        self._order.append(idx)
        return idx

    def upcoming(self, count: int) -> list[int]:
        """The ``count`` slots expected next, from the previous chunk's visiting order (wrapping into
        the next chunk); slot order before a previous chunk exists."""
        order = self._last_order
        if not order:
            n = len(self.slots)
            return [(self._order[-1] + k) % n for k in range(1, count + 1)] if self._order and n else []
        pos = len(self._order)
        return [order[(pos + k) % len(order)] for k in range(count)]

    # ---- read / write -------------------------------------------------------------------
    def get(self, idx: int):
        """The value of slot ``idx``: ``None``, :data:`REP` or a tensor on the compute device."""
        value = self.slots[idx]
        if not self.offload or not isinstance(value, torch.Tensor):
            return value
        if self._cuda:
            tensor, event = self._inflight.pop(idx, None) or self._start_copy_back(idx)
            stream = torch.cuda.current_stream(self._device)
            stream.wait_event(event)
            tensor.record_stream(stream)
            self._prefetch_after(idx)
            return tensor
        return value.to(self._device)

    def take(self, idx: int):
        """Like :meth:`get`, but the cache lets go of the value (without offload the slot is emptied
        until the next :meth:`put`), so the caller can free it early."""
        value = self.get(idx)
        if not self.offload:
            self.slots[idx] = None
        return value

    def put(self, idx: int, value) -> None:
        """Store ``value`` (``REP`` or a tensor that the caller no longer modifies) in slot ``idx``."""
        if not self.offload or not isinstance(value, torch.Tensor):
            self.slots[idx] = value
            return
        self._device = value.device
        if not self._cuda:
            self.slots[idx] = value.detach().to("cpu", copy=True)
            return
        old = self.slots[idx]
        if isinstance(old, torch.Tensor) and old.shape == value.shape and old.dtype == value.dtype:
            host = old  # reuse the pinned buffer: the copy stream has already read it back
        else:
            host = torch.empty(value.shape, dtype=value.dtype, device="cpu", pin_memory=True)
        ready = torch.cuda.Event()
        ready.record(torch.cuda.current_stream(value.device))
        stream = self._stream()
        with torch.cuda.stream(stream):
            stream.wait_event(ready)
            host.copy_(value, non_blocking=True)
        value.record_stream(stream)
        self.slots[idx] = host

    def clear(self) -> None:
        """Forget everything (the next chunk is treated as the first of a new clip)."""
        if self._cuda and self._copy_stream is not None:
            self._copy_stream.synchronize()
        self.slots.clear()
        self._inflight.clear()
        self._order, self._last_order = [], []
        self.cursor = 0

    def device_bytes(self) -> int:
        """Bytes the cache holds on a non-CPU device now (0 when offloaded, apart from prefetches)."""
        total = 0
        for v in tensors(self.slots):
            if v.device.type != "cpu":
                total += v.numel() * v.element_size()
        for t, _ in self._inflight.values():
            total += t.numel() * t.element_size()
        return total

    # ---- CUDA offload internals ---------------------------------------------------------
    @property
    def _cuda(self) -> bool:
        return self._device is not None and self._device.type == "cuda"

    def _stream(self):
        if self._copy_stream is None:
            self._copy_stream = torch.cuda.Stream(self._device)
        return self._copy_stream

    def _start_copy_back(self, idx: int):
        stream = self._stream()
        with torch.cuda.stream(stream):
            tensor = self.slots[idx].to(self._device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(stream)
        return tensor, event

    def _prefetch_after(self, idx: int) -> None:
        for j in self.upcoming(self.prefetch):
            if j == idx or j in self._inflight or not isinstance(self.slots[j], torch.Tensor):
                continue
            self._inflight[j] = self._start_copy_back(j)
