"""Time and peak memory of one call, for the benchmarks: median wall and CPU seconds, and the peak
above the level at entry (the CUDA allocator's, or the process RSS sampled every 2 ms in a thread)."""
from __future__ import annotations

import statistics
import threading
import time

import torch


class PeakMemory:
    """Peak memory above the level at entry: CUDA allocator, or process RSS sampled in a thread."""

    def __init__(self, device: torch.device):
        self.device, self.peak = device, 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            import psutil
            self.proc = psutil.Process()
            self.base = self.proc.memory_info().rss
            self.top = self.base
            self.stop = False
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self):
        while not self.stop:
            self.top = max(self.top, self.proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.stop = True
            self.thread.join()
            self.peak = self.top - self.base


class Timing(float):
    """Median wall seconds, carrying the median process CPU seconds (all threads) as ``.cpu``.

    On a shared machine wall time swings with other load; CPU time counts the work actually done."""

    def __new__(cls, wall, cpu):
        obj = super().__new__(cls, wall)
        obj.cpu = cpu
        return obj


def measure(fn, device, repeats: int):
    """(result, Timing, peak bytes) of ``fn()`` over ``repeats`` runs (medians; peak = max)."""
    walls, cpus, peak, out = [], [], 0, None
    for _ in range(repeats):
        out = None
        with PeakMemory(device) as pm:
            c, t = time.process_time(), time.perf_counter()
            out = fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        peak = max(peak, pm.peak)
    return out, Timing(statistics.median(walls), statistics.median(cpus)), peak


def mib(b):
    return f"{b / 2**20:,.0f} MiB"


def out_bytes(shape) -> int:
    """Bytes of a float32 tensor of ``shape`` (the output buffer, subtracted from every CPU peak)."""
    n = 4
    for d in shape:
        n *= d
    return n
