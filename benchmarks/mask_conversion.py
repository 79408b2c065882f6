"""Benchmark: pixel MASK -> latent noise mask (``pixel_mask_to_latent``) against one read of the mask.

One run, under ``torch.inference_mode()``, on one 81x720x1280 float32 mask (Wan 2.1 latent
[1, 16, 21, 90, 160]), candidates interleaved each repeat so machine load hits all alike:
* ``mask.amax()``: one full read, the yardstick every ratio is taken against,
* the algorithm this pack used before issue 15 (four validation passes, frame 0 padded into 4
  slots with ``torch.cat``, ``einops.reduce`` over the slots, torch's adaptive pooling),
* ``pixel_mask_to_latent`` now, for max/max, mean/area, min/min and max/area,
* native: ``F.interpolate(mask[None, None], size=(21, 90, 160), mode="trilinear")``, what
  ComfyUI's ``reshape_mask`` does (it reads only the 8 neighbours of each output cell).
Reported: median wall time and median process CPU time (all threads; on a shared machine it counts
the work done, though threads spinning at a barrier count too), each as a ratio to ``amax``, and the
max abs difference of the new conversion from the old one.

    python benchmarks/run.py mask_conversion [--repeats 7] [--threads N] [--device cpu|cuda]

The CUDA path (mask on the GPU, synchronize around each call) has not been run: no GPU here.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone

import einops
import torch
import torch.nn.functional as F


from ..masking.geometry import WAN21
from ..masking.latent_mask import pixel_mask_to_latent, split_batch

FRAMES, HEIGHT, WIDTH = 81, 720, 1280
LATENT = (1, 16, 21, 90, 160)
PAIRS = (("max", "max"), ("mean", "area"), ("min", "min"), ("max", "area"))


def old_pixel_mask_to_latent(mask, latent_shape, geometry, temporal, spatial):
    """The code before issue 15, for the block reducers (grow 0)."""
    b, _, t, h, w = latent_shape
    if mask.is_floating_point() and torch.isnan(mask).any():
        raise ValueError("NaN")
    mask = mask.float()
    lo, hi = float(mask.min()), float(mask.max())
    if lo < 0.0 or hi > 1.0:
        mask = mask.clamp(0.0, 1.0)
    per_sample, _ = split_batch(mask, b, t, geometry)
    slots = geometry.frames_to_slots(per_sample, dim=1)  # torch.cat: a copy of the whole clip
    x = einops.reduce(slots, "b (t s) h w -> b t h w", temporal, s=geometry.time_stride)
    pool = {"max": F.adaptive_max_pool2d, "area": F.adaptive_avg_pool2d,
            "min": lambda v, size: -F.adaptive_max_pool2d(-v, size)}[spatial]
    out = pool(x, (h, w)).clamp(0.0, 1.0)
    return out.expand(b, -1, -1, -1).unsqueeze(1).contiguous()


def _timed(fn, device: str) -> tuple[float, float]:
    if device == "cuda":
        torch.cuda.synchronize()
    c, t = time.process_time(), time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t, time.process_time() - c


def interleaved_medians(fns: dict, repeats: int, device: str) -> dict:
    """(median wall, median CPU) of each candidate, running them in turn each repeat."""
    for fn in fns.values():
        fn()  # warm-up
    times = {name: ([], []) for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            wall, cpu = _timed(fn, device)
            times[name][0].append(wall)
            times[name][1].append(cpu)
    return {name: (statistics.median(w), statistics.median(c)) for name, (w, c) in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default, as ComfyUI runs)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    a = parser.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = a.device
    mask = torch.rand(FRAMES, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(0)).to(dev)
    _, _, t, h, w = LATENT

    fns = {"mask.amax() (one read)": lambda: mask.amax()}
    for tm, sp in PAIRS:
        fns[f"old {tm}/{sp}"] = lambda tm=tm, sp=sp: old_pixel_mask_to_latent(mask, LATENT, WAN21, tm, sp)
        fns[f"new {tm}/{sp}"] = lambda tm=tm, sp=sp: pixel_mask_to_latent(mask, LATENT, WAN21, tm, sp)
    fns["native trilinear (reshape_mask)"] = lambda: F.interpolate(mask[None, None], size=(t, h, w),
                                                                     mode="trilinear")
    with torch.inference_mode():
        diffs = {}
        for tm, sp in PAIRS:
            new = pixel_mask_to_latent(mask, LATENT, WAN21, tm, sp)
            old = old_pixel_mask_to_latent(mask, LATENT, WAN21, tm, sp)
            d = (new - old).abs().max().item()
            diffs[f"new {tm}/{sp}"] = "bit-identical" if torch.equal(new, old) else f"{d:.1e}"
        rows = interleaved_medians(fns, a.repeats, dev)

    base_wall, base_cpu = rows["mask.amax() (one read)"]
    load = ", load average %.2f %.2f %.2f" % os.getloadavg() if hasattr(os, "getloadavg") else ""
    print(f"# mask_conversion benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {dev}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}{load}")
    print(f"mask {FRAMES}x{HEIGHT}x{WIDTH} float32 -> latent {list(LATENT)}, {a.repeats} repeats interleaved, medians")
    print()
    print("| case | wall | x amax (wall) | CPU time | x amax (CPU) | new vs old |")
    print("|---|---|---|---|---|---|")
    for name, (wall, cpu) in rows.items():
        print(f"| {name} | {wall * 1e3:.1f} ms | {wall / base_wall:.2f}x | {cpu * 1e3:.1f} ms | "
              f"{cpu / base_cpu:.2f}x | {diffs.get(name, '')} |")
    for tm, sp in PAIRS:
        (ow, oc), (nw, nc) = rows[f"old {tm}/{sp}"], rows[f"new {tm}/{sp}"]
        print(f"speed-up {tm}/{sp}: {ow / nw:.1f}x wall, {oc / nc:.1f}x CPU time")


if __name__ == "__main__":
    main()
