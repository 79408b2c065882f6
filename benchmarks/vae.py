"""Benchmark: this pack's streaming Wan VAE against ComfyUI's native Wan VAE, same weights, same inputs.

One run, under ``torch.inference_mode()``, side by side: time ratio (ours / native), peak memory
(CPU: process RSS sampled every 2 ms above the pre-run level, minus the float32 output buffer;
CUDA: ``max_memory_allocated`` above the pre-run level), our traced estimate (:mod:`vae.memory`,
what ComfyUI's memory manager is told) against our measured peak, and max abs difference.
Random weights (fan-in scaled), real Wan 2.1 width, fp32 on the CPU.

    COMFYUI_PATH=/work/ComfyUI python benchmarks/run.py vae [--sizes 17x256x256:160/32 9x480x832:512/64]
        [--sweep-size 128] [--repeats 1] [--out FILE.md] [--png FILE.png]

CPU: for every size, decode and encode untiled and tiled (``:tile/overlap`` in pixels; native
runs what VAEDecodeTiled/VAEEncodeTiled run, all frames per tile); a decode length sweep over
5, 9, 17 and 33 pixel frames; ``--png`` draws peak memory against resolution (Pillow). The CUDA
suite (81 frames at 832x480 and 1280x720, bf16 and fp32 decode, untiled, cache offload, tiled and
tiled + offload) is ``benchmarks/gpu_check.py``, which uses this module's helpers.
"""
from __future__ import annotations

import argparse
import os
import platform
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
from .measure.chart import draw_chart  # noqa: E402
# PeakMemory is imported from here by benchmarks/training_set.py and gpu/vae_stage.py (after ComfyUI is set up)
from .measure.peaks import PeakMemory, measure, mib, out_bytes  # noqa: E402,F401
from ..vae import memory  # noqa: E402
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


def native_tiled_decode(native, z, tile, overlap):
    """What native VAEDecodeTiled runs for a Wan VAE (decode_tiled_3d: all frames per tile)."""
    return comfy.utils.tiled_scale_multidim(
        z, native.decode, tile=(999, tile // 8, tile // 8), overlap=(1, overlap // 8, overlap // 8),
        upscale_amount=(lambda a: max(0, a * 4 - 3), 8, 8), out_channels=3, index_formulas=(4, 8, 8),
        output_device="cpu")


def native_tiled_encode(native, x, tile, overlap):
    """What native VAEEncodeTiled runs for a Wan VAE (encode_tiled_3d: all frames per tile)."""
    return comfy.utils.tiled_scale_multidim(
        x, native.encode, tile=(9999, tile, tile), overlap=(1, overlap, overlap),
        upscale_amount=(lambda a: max(0, (a + 3) // 4), 8, 8), out_channels=16, downscale=True,
        index_formulas=(4, 8, 8), output_device="cpu")


HEADER = ("| case | native wall | ours wall | wall ratio | CPU-time ratio | native peak | ours peak | peak ratio "
          "| ours: traced estimate / measured | max abs diff |\n|---|---|---|---|---|---|---|---|---|---|")


def row(name, t_ours, t_native, m_ours, m_native, est, diff):
    ratio_t = f"{t_ours / t_native:.2f}x" if t_native else "-"
    ratio_c = f"{t_ours.cpu / t_native.cpu:.2f}x" if t_native.cpu else "-"
    ratio_m = f"{m_ours / m_native:.2f}x" if m_native else "-"
    est_s = f"{mib(est)} / {mib(m_ours)} = {est / max(1, m_ours):.2f}" if est else "-"
    return (f"| {name} | {t_native:.2f} s | {t_ours:.2f} s | {ratio_t} | {ratio_c} | "
            f"{mib(m_native) if m_native else '-'} | {mib(m_ours)} | {ratio_m} | {est_s} | {diff} |")


CASES = ("decode", "decode_tiled", "encode", "encode_tiled")


def seams(native_tiled, native, ours_tiled, ours) -> str:
    """How far each tiled result is from its own untiled one (ours only when it was measured)."""
    dn = (native_tiled - native).abs()
    text = f"vs own untiled: native {dn.max().item():.2f} (mean {dn.mean().item():.1e})"
    if ours is not None:
        do = (ours_tiled - ours).abs()
        text += f", ours {do.max().item():.2f} (mean {do.mean().item():.1e})"
    return text


def cpu_size(native, ours, frames, hpx, wpx, tile, overlap, repeats, lines, points, cases=CASES):
    """Decode and encode at one size, untiled and tiled (the ``cases`` asked for), native and ours,
    side by side in one run; each row is printed as soon as it is measured."""
    dev = torch.device("cpu")
    t = WAN21.latent_frames(frames)
    h, w = hpx // 8, wpx // 8
    g = torch.Generator().manual_seed(1)
    z = torch.randn(1, 16, t, h, w, generator=g)
    x = torch.rand(1, 3, frames, hpx, wpx, generator=g) * 2 - 1
    pix, lat = out_bytes((1, 3, frames, hpx, wpx)), out_bytes((1, 16, t, h, w))
    lines += [f"#### CPU, fp32, {frames} frames {wpx}x{hpx} (latent {t}x{h}x{w}), median of {repeats} "
              f"(tiled rows: 1 run); tiles {tile} px, overlap {overlap} px", "", HEADER]
    print("\n".join(lines[-3:]), flush=True)
    est = lambda **kw: memory.decode_bytes(ours, z.shape, **kw).peak  # noqa: E731

    def add(text):
        lines.append(text)
        print(text, flush=True)

    n_m = o_m = nt_m = ot_m = None
    n_out = o_out = None
    if "decode" in cases or "decode_tiled" in cases:
        n_out, n_t, n_m = measure(lambda: native.decode(z), dev, repeats)
        n_m -= pix
    if "decode" in cases:
        o_out, o_t, o_m = measure(lambda: ours.decode(z), dev, repeats)
        o_m -= pix
        add(row("decode", o_t, n_t, o_m, n_m, est(), f"{(o_out - n_out).abs().max().item():.2e}"))
    if "decode_tiled" in cases:
        nt_out, nt_t, nt_m = measure(lambda: native_tiled_decode(native, z, tile, overlap), dev, 1)
        ot_out, ot_t, ot_m = measure(lambda: ours.decode(z, tile=tile, overlap=overlap), dev, 1)
        nt_m, ot_m = nt_m - pix, ot_m - pix
        add(row("decode tiled: ours vs native tiled", ot_t, nt_t, ot_m, nt_m, est(tile=tile),
                seams(nt_out, n_out, ot_out, o_out)))
        del nt_out, ot_out
    off_est = memory.decode_bytes(ours, z.shape, offload=True).peak
    off_tiled_est = memory.decode_bytes(ours, z.shape, offload=True, tile=tile).peak
    del n_out, o_out

    n_lat = None
    if "encode" in cases or "encode_tiled" in cases:
        n_lat, ne_t, ne_m = measure(lambda: native.encode(x), dev, repeats)
        ne_m -= lat
    o_lat = None
    if "encode" in cases:
        o_lat, oe_t, oe_m = measure(lambda: ours.encode(x), dev, repeats)
        oe_m -= lat
        add(row("encode", oe_t, ne_t, oe_m, ne_m, memory.encode_bytes(ours, x.shape).peak,
                f"{(o_lat - n_lat).abs().max().item():.2e}"))
    if "encode_tiled" in cases:
        nte, nte_t, nte_m = measure(lambda: native_tiled_encode(native, x, tile, overlap), dev, 1)
        ote, ote_t, ote_m = measure(lambda: ours.encode(x, tile=tile, overlap=overlap), dev, 1)
        nte_m, ote_m = nte_m - lat, ote_m - lat
        add(row("encode tiled: ours vs native tiled", ote_t, nte_t, ote_m, nte_m,
                memory.encode_bytes(ours, x.shape, tile=tile).peak, seams(nte, n_lat, ote, o_lat)))
    lines.append("")
    if n_m and o_m:
        tiled = f", ours tiled {ot_m / n_m:.2f}x, native tiled {nt_m / n_m:.2f}x" if nt_m else ""
        add(f"Decode peak against native's untiled decode: ours {o_m / n_m:.2f}x{tiled}. Traced device working "
            f"set with cache offload (the cache leaves the device; on the CPU it stays in RSS, so this is not "
            f"measured here): untiled {mib(off_est)} = {off_est / n_m:.2f}x native, tiled {mib(off_tiled_est)}.")
        lines.append("")
    if n_m and o_m and nt_m and ot_m:
        points.append({"pixels": hpx * wpx, "label": f"{wpx}x{hpx}", "native": n_m, "native_tiled": nt_m,
                       "ours": o_m, "ours_tiled": ot_m, "ours_offload_traced": off_est})


def length_sweep(native, ours, size, lines):
    """Decode peak above the output buffer against clip length: 5 to 33 pixel frames."""
    dev = torch.device("cpu")
    g = torch.Generator().manual_seed(3)
    h = size // 8
    lines += [f"Decode peak RSS above the float32 output, against clip length ({size}x{size}, fp32, 1 run each):",
              "", "| latent frames | pixel frames | native | ours | ours / native | ours traced |", "|---|---|---|---|---|---|"]
    for tl in (2, 3, 5, 9):
        zz = torch.randn(1, 16, tl, h, h, generator=g)
        ob = out_bytes((1, 3, WAN21.pixel_frames(tl), size, size))
        _, _, nm = measure(lambda: native.decode(zz), dev, 1)
        _, _, om = measure(lambda: ours.decode(zz), dev, 1)
        nm, om = nm - ob, om - ob
        lines.append(f"| {tl} | {WAN21.pixel_frames(tl)} | {mib(nm)} | {mib(om)} | {om / nm:.2f}x | "
                     f"{mib(memory.decode_bytes(ours, zz.shape).peak)} |")
    lines.append("")
    return {"pixels": size * size, "label": f"{size}x{size}", "native": nm, "ours": om,
            "ours_offload_traced": memory.decode_bytes(ours, (1, 16, 9, h, h), offload=True).peak}


def traced_native_decode(dtype: torch.dtype, shape) -> int:
    """Peak activation bytes of native's Wan VAE decode, counted by :mod:`vae.memory`'s allocator
    model on a meta copy (fused attention stood in, as on a GPU; the output stays on the device,
    as native keeps it)."""
    with torch.device("meta"):
        m = native_wan_vae().to(dtype).eval()
    for mod in m.modules():
        if hasattr(mod, "optimized_attention"):
            mod.optimized_attention = lambda q, k, v: torch.empty_like(q)
    trace = memory.Trace()
    with torch.no_grad(), memory._Counter(trace):
        m.decode(torch.empty(shape, device="meta", dtype=dtype))
    return trace.peak


def traced_suite(ours, lines):
    """Device working sets of the GPU cases, traced (no GPU needed): native vs ours."""
    lines += ["#### Traced device working set, GPU cases (allocator model on meta tensors, not a measurement)", "",
              "| decode | native | ours | ours / native | ours + offload | / native | ours tiled 512/64 | "
              "tiled + offload |", "|---|---|---|---|---|---|---|---|"]
    for dtype in (torch.bfloat16, torch.float32):
        for wpx, hpx in ((832, 480), (1280, 720)):
            shape = (1, 16, 21, hpx // 8, wpx // 8)
            n = traced_native_decode(dtype, shape)
            tr = lambda **kw: memory.decode_bytes(ours, shape, dtype=dtype, **kw).peak  # noqa: E731
            o, f, t, tf = tr(), tr(offload=True), tr(tile=512), tr(tile=512, offload=True)
            lines.append(f"| 81x{wpx}x{hpx} {str(dtype).replace('torch.', '')} | {mib(n)} | {mib(o)} | {o / n:.2f}x | "
                         f"{mib(f)} | {f / n:.2f}x | {mib(t)} | {mib(tf)} |")
    lines.append("")


def native_wan_vae(dim: int = 96):
    """ComfyUI's native Wan 2.1 VAE module (the real layout; ``dim`` 96 is the real width)."""
    return NativeWanVAE(dim=dim, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                        temperal_downsample=[False, True, True])


def make_native(sd):
    """Native Wan VAE with the weights ``sd`` (its width read from them)."""
    m = native_wan_vae(sd["encoder.conv1.weight"].shape[0])
    m.load_state_dict(sd)
    return m.eval()


def parse_size(text: str) -> tuple[int, int, int, int, int]:
    """``FxHxW[:tile/overlap]``, e.g. ``17x256x256:160/32``."""
    dims, _, tiling = text.partition(":")
    f, h, w = (int(v) for v in dims.split("x"))
    tile, overlap = (int(v) for v in (tiling or f"{min(h, w) // 2}/{min(h, w) // 8}").split("/"))
    return f, h, w, tile, overlap


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="*", default=["17x256x256:160/32", "9x480x832:512/64"],
                    help="FxHxW[:tile/overlap] per size, decode and encode, untiled and tiled")
    ap.add_argument("--sweep-size", type=int, default=128, help="frame size of the 5..33-frame length sweep (0: skip)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=CASES,
                    help="which of decode, decode_tiled, encode, encode_tiled to measure at each size")
    ap.add_argument("--out", type=str, default="", help="markdown file for the tables")
    ap.add_argument("--png", type=str, default="", help="PNG of peak memory against resolution")
    ap.add_argument("--traced", action="store_true", help="only the traced device working sets of the GPU cases")
    args = ap.parse_args()
    torch.manual_seed(0)
    sd = random_state_dict(native_wan_vae())
    native = make_native(sd)
    ours = build_wan_vae(sd)
    cpu = platform.processor() or platform.machine()
    version = comfyui_version()
    lines = [f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.node()} ({cpu}, "
             f"{os.cpu_count()} CPU threads, torch {torch.__version__}, "
             f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}), "
             f"ComfyUI {version} native Wan VAE vs ours, same random weights (Wan 2.1 real width 96). "
             "CPU peaks: process RSS above the level before the call, minus the float32 output.", ""]
    points = []
    if args.traced:
        traced_suite(ours, lines)
        print("\n".join(lines))
        return
    with torch.inference_mode():
        if args.sweep_size:
            points.append(length_sweep(native, ours, args.sweep_size, lines))
            print("\n".join(lines), flush=True)
        for spec in args.sizes:
            f, h, w, tile, overlap = parse_size(spec)
            cpu_size(native, ours, f, h, w, tile, overlap, args.repeats, lines, points, set(args.cases))
        lines.append("The CUDA suite (81 frames at 832x480 and 1280x720, bf16 and fp32; untiled, cache offload, "
                     "tiled, tiled + offload; peak VRAM and time against native) is "
                     "`python benchmarks/run.py gpu_check`.")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.png:
        draw_chart(points, Path(args.png), f"Wan 2.1 VAE decode, fp32 CPU peak RSS, ComfyUI {version} native vs ours")


if __name__ == "__main__":
    main()
