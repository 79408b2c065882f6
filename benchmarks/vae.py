"""Benchmark: this pack's streaming Wan VAE against ComfyUI's native Wan VAE, same weights, same inputs.

One run, under ``torch.inference_mode()``, side by side: time ratio (ours / native), peak memory
(CPU: RSS sampled every 2 ms above the pre-run level; CUDA: ``max_memory_allocated`` above the
pre-run level) and max abs difference. Random weights (fan-in scaled), real Wan 2.1 width.

    COMFYUI_PATH=/work/ComfyUI python benchmarks/run.py vae [--frames 17 --size 256] [--out FILE]

CPU: decode and encode at the given size (default 17 frames 256x256, fp32), tiled vs untiled,
offload vs none, and peak memory against clip length. With CUDA (not run where no GPU is
present): 81 frames at 832x480 and 1280x720, bf16 decode, with and without offload and tiling,
and decode peak memory for 21/81/161 latent-frame-equivalents.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

# benchmarks/run.py starts this with a fixed glibc mmap threshold (MALLOC_MMAP_THRESHOLD_), so process
# RSS measures what each run allocates; ComfyUI comes from COMFYUI_PATH.
COMFY = os.environ.get("COMFYUI_PATH", "")

import comfy.cli_args  # noqa: E402
import comfy.utils  # noqa: E402

if not torch.cuda.is_available():
    comfy.cli_args.args.cpu = True
from comfy.ldm.wan.vae import WanVAE as NativeWanVAE  # noqa: E402

from ..masking.geometry import WAN21  # noqa: E402
from ..vae.loading import build_wan_vae  # noqa: E402


def comfyui_version() -> str:
    """The version of the ComfyUI at COMFYUI_PATH (its comfyui_version.py), or 'unknown'."""
    try:
        text = (Path(COMFY) / "comfyui_version.py").read_text()
    except OSError:
        return "unknown"
    return next((ln.split("=")[1].strip().strip('"') for ln in text.splitlines() if ln.startswith("__version__")),
                "unknown")


def random_state_dict(model: torch.nn.Module, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in model.state_dict().items():
        if k.endswith("gamma"):
            sd[k] = 1 + 0.1 * torch.randn(v.shape, generator=g)
        elif v.dim() <= 1:
            sd[k] = 0.02 * torch.randn(v.shape, generator=g)
        else:
            sd[k] = torch.randn(v.shape, generator=g) * v[0].numel() ** -0.5
    return sd


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


def row(name, t_ours, t_native, m_ours, m_native, diff):
    ratio_t = f"{t_ours / t_native:.2f}x" if t_native else "-"
    ratio_c = f"{t_ours.cpu / t_native.cpu:.2f}x" if t_native.cpu else "-"
    ratio_m = f"{m_ours / m_native:.2f}x" if m_native else "-"
    return (f"| {name} | {t_native:.2f} s | {t_ours:.2f} s | {ratio_t} | {ratio_c} | "
            f"{mib(m_native) if m_native else '-'} | {mib(m_ours)} | {ratio_m} | {diff} |")


HEADER = ("| case | native wall | ours wall | wall ratio | CPU-time ratio | native peak | ours peak | peak ratio "
          "| max abs diff |\n|---|---|---|---|---|---|---|---|---|")


def cpu_suite(native, ours, frames, size, repeats, lines):
    dev = torch.device("cpu")
    t = WAN21.latent_frames(frames)
    h = w = size // WAN21.spatial_stride
    g = torch.Generator().manual_seed(1)
    z = torch.randn(1, 16, t, h, w, generator=g)
    x = torch.rand(1, 3, frames, size, size, generator=g) * 2 - 1
    lines += [f"### CPU, fp32, {frames} frames {size}x{size} (latent {t}x{h}x{w}), median of {repeats} "
              "(tiled and temporal_chunk rows: 1 run)", "", HEADER]

    n_out, n_t, n_m = measure(lambda: native.decode(z), dev, repeats)
    o_out, o_t, o_m = measure(lambda: ours.decode(z), dev, repeats)
    lines.append(row("decode", o_t, n_t, o_m, n_m, f"{(o_out - n_out).abs().max().item():.2e}"))
    off, f_t, f_m = measure(lambda: ours.decode(z, offload=True), dev, repeats)
    lines.append(row("decode, cache offload", f_t, n_t, f_m, n_m,
                     f"{(off - n_out).abs().max().item():.2e} (bit-identical to ours: {torch.equal(off, o_out)})"))
    tile, overlap = size // 2, size // 8
    til, ti_t, ti_m = measure(lambda: ours.decode(z, tile=tile, overlap=overlap), dev, 1)
    d = (til - o_out).abs()
    lines.append(row(f"decode, tiled {tile}px overlap {overlap}px", ti_t, n_t, ti_m, n_m,
                     f"{d.max().item():.2e} vs untiled (mean {d.mean().item():.1e})"))
    ntile = lambda: comfy.utils.tiled_scale_multidim(  # what native VAEDecodeTiled runs (decode_tiled_3d)
        z, native.decode, tile=(999, tile // 8, tile // 8), overlap=(1, overlap // 8, overlap // 8),
        upscale_amount=(lambda a: max(0, a * 4 - 3), 8, 8), out_channels=3, index_formulas=(4, 8, 8),
        output_device="cpu")
    ntil, nt_t, nt_m = measure(ntile, dev, 1)
    d = (ntil - n_out).abs()
    lines.append(row(f"native tiled {tile}px overlap {overlap}px (reference)", nt_t, n_t, nt_m, n_m,
                     f"{d.max().item():.2e} vs native untiled (mean {d.mean().item():.1e})"))
    ch, c_t, c_m = measure(lambda: ours.decode(z, temporal_chunk=4), dev, 1)
    lines.append(row("decode, temporal_chunk 4", c_t, n_t, c_m, n_m, f"{(ch - n_out).abs().max().item():.2e}"))

    n_lat, n_t, n_m = measure(lambda: native.encode(x), dev, repeats)
    o_lat, o_t, o_m = measure(lambda: ours.encode(x), dev, repeats)
    lines.append(row("encode", o_t, n_t, o_m, n_m, f"{(o_lat - n_lat).abs().max().item():.2e}"))
    lines.append("")
    lines.append(f"Output magnitudes: decoded max |x| {n_out.abs().max().item():.2f}, latent max |z| "
                 f"{n_lat.abs().max().item():.2f}.")
    lines.append("")

    # peak memory against clip length (decode), output buffer excluded
    lines += ["Decode peak RSS above baseline, minus the float32 output itself, against clip length "
              f"({size}x{size}):", "", "| latent frames | pixel frames | native | ours |", "|---|---|---|---|"]
    for tl in (2, 3, 5):
        zz = torch.randn(1, 16, tl, h, w, generator=g)
        out_bytes = 3 * WAN21.pixel_frames(tl) * size * size * 4
        _, _, nm = measure(lambda: native.decode(zz), dev, 1)
        _, _, om = measure(lambda: ours.decode(zz), dev, 1)
        lines.append(f"| {tl} | {WAN21.pixel_frames(tl)} | {mib(max(0, nm - out_bytes))} | {mib(max(0, om - out_bytes))} |")
    lines.append("")


def cuda_suite(native_sd, repeats, lines):
    """81 frames at 832x480 and 1280x720, bf16 decode; offload and tiling; flatness. Needs CUDA."""
    dev = torch.device("cuda")
    dtype = torch.bfloat16
    native = make_native(native_sd).to(dev, dtype)
    ours = build_wan_vae(native_sd).set_precision(torch.float32, dtype).to(dev)
    for (wpx, hpx) in ((832, 480), (1280, 720)):
        t, h, w = 21, hpx // 8, wpx // 8
        z = torch.randn(1, 16, t, h, w, device=dev)
        lines += [f"### CUDA ({torch.cuda.get_device_name()}), bf16 decode, 81 frames {wpx}x{hpx}, median of {repeats}",
                  "", HEADER]
        n_out, n_t, n_m = measure(lambda: native.decode(z.to(dtype)).float().cpu(), dev, repeats)
        for name, kw in (("decode", {}), ("decode, cache offload", {"offload": True}),
                         ("decode, tiled 512/64", {"tile": 512, "overlap": 64}),
                         ("decode, tiled 512/64 + offload", {"tile": 512, "overlap": 64, "offload": True})):
            o_out, o_t, o_m = measure(lambda: ours.decode(z, **kw), dev, repeats)
            lines.append(row(name, o_t, n_t, o_m, n_m, f"{(o_out - n_out).abs().max().item():.2e}"))
            del o_out
        torch.cuda.empty_cache()
        lines.append("")
    lines += ["Decode peak CUDA memory against clip length (832x480, bf16):", "",
              "| latent frames | native | ours | ours + offload |", "|---|---|---|---|"]
    for tl in (21, 81, 161):
        z = torch.randn(1, 16, tl, 60, 104, device=dev)
        try:
            _, _, nm = measure(lambda: native.decode(z.to(dtype)).float().cpu(), dev, 1)
        except torch.OutOfMemoryError:
            nm = float("nan")
        _, _, om = measure(lambda: ours.decode(z), dev, 1)
        _, _, fm = measure(lambda: ours.decode(z, offload=True), dev, 1)
        lines.append(f"| {tl} | {mib(nm) if nm == nm else 'OOM'} | {mib(om)} | {mib(fm)} |")
    lines.append("")


def make_native(sd):
    m = NativeWanVAE(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                     temperal_downsample=[False, True, True])
    m.load_state_dict(sd)
    return m.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=str, default="")
    args = ap.parse_args()
    torch.manual_seed(0)
    skeleton = NativeWanVAE(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                            temperal_downsample=[False, True, True])
    sd = random_state_dict(skeleton)
    native = make_native(sd)
    ours = build_wan_vae(sd)
    cpu = platform.processor() or platform.machine()
    lines = [f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()} ({cpu}, "
             f"{os.cpu_count()} CPU threads, torch {torch.__version__}, "
             f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}), "
             f"ComfyUI {comfyui_version()} native Wan VAE vs ours, same random weights (Wan 2.1 real width 96).", ""]
    with torch.inference_mode():
        cpu_suite(native, ours, args.frames, args.size, args.repeats, lines)
        if torch.cuda.is_available():
            cuda_suite(sd, args.repeats, lines)
        else:
            lines.append("CUDA suite (81 frames at 832x480 and 1280x720, offload, tiling, flatness) not run: "
                         "no CUDA device on this machine.")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
