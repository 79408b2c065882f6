"""GPU check, VAE stage: this pack's streaming Wan 2.1 VAE against ComfyUI's native one, same random
weights (real layout), same latents, one process, under ``torch.inference_mode()``.

For every size and precision of the plan: native decode, ours untiled, with cache offload, tiled,
tiled + offload and native tiled (what VAEDecodeTiled runs). On CUDA each case reports the peak
VRAM above the level before the call (``torch.cuda.max_memory_allocated``), its time (CUDA events),
its traced working set (:mod:`vae.memory`, what ComfyUI's memory manager is told) and its max abs
difference from native's decode. Each case is skipped when the time left in the stage is less
than its estimate (calibrated on the native decodes measured so far), and recorded as it ends.
"""
from __future__ import annotations

import time

import torch

from ...vae import memory
from ...vae.cache import FeatureCache
from ...vae.loading import build_wan_vae
from .plan import CASES, Calibration, case_seconds

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
CUDA_ONLY_PEAK = "CUDA only: torch.cuda.max_memory_allocated needs a CUDA device (none here)"


class TrafficCache(FeatureCache):
    """A meta-device cache in offload mode that counts the bytes every put sends to the host."""

    def __init__(self):
        super().__init__(offload=True)
        self.sent = 0

    def put(self, idx, value):
        if isinstance(value, torch.Tensor):
            self.sent += value.numel() * value.element_size()
        self.slots[idx] = value

    def get(self, idx):
        return self.slots[idx]

    def take(self, idx):
        return self.slots[idx]


def offload_traffic(model, latent_shape, dtype: torch.dtype) -> dict:
    """Bytes the cache offload moves each way per latent frame in the steady state (the third latent
    frame, traced on the meta twin), and the traced cache size."""
    twin = memory.meta_twin(model, decode_dtype=dtype)
    _, c, t, h, w = latent_shape
    cache = TrafficCache()
    sent = []
    with torch.no_grad():
        for t0 in range(min(3, t)):
            before = cache.sent
            twin.decode_chunk(torch.empty(1, c, 1, h, w, device="meta", dtype=dtype), cache, t0 == 0,
                              lambda y: None, 1)
            sent.append(cache.sent - before)
    cache_bytes = memory.decode_bytes(model, latent_shape, dtype=dtype).cache
    return {"bytes_per_latent_frame": sent[-1], "latent_frames": t, "cache_bytes": cache_bytes}


def timed(fn, device: torch.device, peak_memory):
    """``(result, seconds, wall seconds, peak bytes or None)`` of one call of ``fn``: CUDA events and
    the allocator's peak on CUDA; the wall clock (and no peak) on the CPU."""
    if device.type != "cuda":
        t = time.perf_counter()
        out = fn()
        wall = time.perf_counter() - t
        return out, wall, wall, None
    with peak_memory(device) as pm:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t = time.perf_counter()
        start.record()
        out = fn()
        end.record()
        end.synchronize()
        wall = time.perf_counter() - t
    return out, start.elapsed_time(end) / 1e3, wall, pm.peak


def diff(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    d = (a.float() - b.float()).abs()
    return d.max().item(), d.mean().item()


def decode_fns(bench, native, ours, z, run, dtype):
    """The decode of every case, as ComfyUI runs it: native's output leaves the device as VAEDecode
    moves it (``.to(cpu)``, then float), ours streams into pinned host memory."""
    zd = z.to(dtype)
    tiled = {"tile": run.tile, "overlap": run.overlap}
    return {
        "native": lambda: native.decode(zd).to("cpu").float(),
        "ours": lambda: ours.decode(z),
        "offload": lambda: ours.decode(z, offload=True),
        "tiled": lambda: ours.decode(z, **tiled),
        "tiled_offload": lambda: ours.decode(z, offload=True, **tiled),
        "native_tiled": lambda: bench.native_tiled_decode(native, zd, run.tile, run.overlap).float(),
    }


def case_options(run, case: str) -> dict:
    """The StreamOptions fields of one of our cases (for the trace)."""
    kw = {"offload": case in ("offload", "tiled_offload")}
    if case in ("tiled", "tiled_offload"):
        kw["tile"] = run.tile
    return kw


def warm_up(native, ours, device, dtype) -> None:
    """One small decode of each (CUDA context, cuDNN handles, lazy module loading)."""
    z = torch.randn(1, 16, 2, 8, 8, device=device)
    native.decode(z.to(dtype))
    ours.decode(z)
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_vae_stage(ctx, report) -> str:
    """Run the plan's VAE suite; returns the stage status (``done`` or ``partial``)."""
    from .. import vae as bench  # ComfyUI's native VAE (needs COMFYUI_PATH)

    device, plan, profile = ctx.device, ctx.plan, ctx.profile
    data = report.data["vae"]
    sd = bench.random_state_dict(bench.native_wan_vae(plan.vae_width))
    calib, kept, partial = Calibration(), {}, False
    for run in plan.vae:
        dtype = DTYPES[run.dtype]
        shape = run.latent_shape
        native = bench.make_native(sd).to(device, dtype)
        ours = build_wan_vae(sd).set_precision(torch.float32, dtype).to(device)
        warm_up(native, ours, device, dtype)
        z = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(device)
        if any(c in run.cases for c in ("offload", "tiled_offload")):
            data["traffic"][f"{run.label} {run.dtype}"] = offload_traffic(ours, shape, dtype)
        fns = decode_fns(bench, native, ours, z, run, dtype)
        outs = {}
        print(f"  [vae] {run.label} {run.dtype}: latent {list(shape)}", flush=True)
        for case in run.cases:
            row = {"size": run.label, "dtype": run.dtype, "case": case, "label": CASES[case]}
            est = case_seconds(run, case, profile, plan.vae_width) if plan.name != "tiny" else 0.0
            predicted = calib.predict(run.dtype, est)
            row["estimate_s"] = predicted
            if ctx.time_left("vae") < predicted:
                partial = True
                row.update(status="skipped",
                           reason=f"budget: {ctx.time_left('vae'):.0f} s left, needs ~{predicted:.0f} s")
                report.skip("vae", f"{run.label} {run.dtype} {CASES[case]}", row["reason"])
                data["rows"].append(row)
                report.save()
                continue
            try:
                out, seconds, wall, peak = timed(fns[case], device, bench.PeakMemory)
            except torch.OutOfMemoryError as e:
                row.update(status="failed", reason=f"out of memory: {str(e).splitlines()[0][:160]}")
                data["rows"].append(row)
                report.save()
                torch.cuda.empty_cache()
                continue
            row.update(status="measured", time_s=seconds, wall_s=wall, peak_bytes=peak)
            if peak is None:
                row["peak_reason"] = CUDA_ONLY_PEAK
            if case == "native":
                calib.update(run.dtype, seconds, est)
            nat = outs.get("native")
            native_row = next((r for r in data["rows"] if r["size"] == run.label and r["dtype"] == run.dtype
                               and r["case"] == "native" and r["status"] == "measured"), None)
            if native_row and case != "native":
                row["time_ratio"] = seconds / native_row["time_s"]
                if peak is not None and native_row.get("peak_bytes"):
                    row["peak_ratio"] = peak / native_row["peak_bytes"]
            if nat is not None and case != "native":
                row["max_abs_diff"], row["mean_abs_diff"] = diff(out, nat)
            own = outs.get("native" if case == "native_tiled" else "ours")
            if case in ("tiled", "tiled_offload", "native_tiled") and own is not None:
                row["vs_untiled_max"], row["vs_untiled_mean"] = diff(out, own)
            if not case.startswith("native"):
                row["traced_bytes"] = memory.decode_bytes(ours, shape, dtype=dtype, **case_options(run, case)).peak
            if case in ("native", "ours"):
                outs[case] = out
            del out
            data["rows"].append(row)
            print(f"  [vae] {run.label} {run.dtype} {CASES[case]}: {seconds:.2f} s"
                  + (f", peak {peak / 2**30:.2f} GiB" if peak is not None else ""), flush=True)
            report.save()
        precision_check(run, outs, kept, data)
        del native, ours, fns, outs, z
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if device.type != "cuda":
        report.skip("vae", "peak VRAM of every case", CUDA_ONLY_PEAK)
        report.skip("vae", "CUDA event timing", "CUDA only: timed with the wall clock on the CPU")
    return "partial" if partial else "done"


def precision_check(run, outs: dict, kept: dict, data: dict) -> None:
    """bf16 against native fp32 at the same size: keep native's and our bf16 outputs, or native's fp32
    output, until the other precision of that size has run, then record both bf16 errors against fp32."""
    if "native" not in outs:
        return
    entry = kept.setdefault(run.label, {})
    if run.dtype == "bf16" and "ours" in outs:
        entry["bf16"] = (outs["native"], outs["ours"])
    elif run.dtype == "fp32":
        entry["fp32"] = outs["native"]
    if "bf16" in entry and "fp32" in entry:
        (nat16, ours16), ref = entry.pop("bf16"), entry.pop("fp32")
        data["bf16_vs_fp32"].append({"size": run.label, "ours_max": diff(ours16, ref)[0],
                                     "native_max": diff(nat16, ref)[0], "ours_vs_native": diff(ours16, nat16)[0]})
