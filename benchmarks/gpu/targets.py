"""The issue's targets, judged from the GPU check's results (:mod:`.report` holds them).

Each target is a dict: ``target`` (the rule), ``case`` (size and precision, where it applies),
``measured`` (what the run saw), ``verdict`` (``met``, ``missed`` or ``not measured``) and ``note``
(why, by how much, or why not measured). On the CPU dry run every verdict is ``not measured``: the
CPU's numbers are shown, but they are not the GPU figures the targets are about.
"""
from __future__ import annotations

UNTILED_PEAK = 0.85
OFFLOAD_PEAK, OFFLOAD_TIME = 0.3, 1.15
TILED_OFFLOAD_PEAK = 0.1
BF16_SLACK = 1.5  # ours' bf16 error against native fp32 may be at most this times native bf16's
FP32_EQUAL = 1e-4
PATCH_STEP_TIME = 1.02
MASK_X_AMAX = 3.0

TEXT = {
    "untiled": f"untiled decode peak VRAM <= {UNTILED_PEAK}x native",
    "offload": f"cache offload peak <= {OFFLOAD_PEAK}x native at <= {OFFLOAD_TIME}x native's time",
    "tiled_offload": f"tiled + offload peak <= {TILED_OFFLOAD_PEAK}x native",
    "tiled": "tiled decode peak <= native tiled's peak, no seams (difference from its own untiled decode "
             "no larger than native tiled's)",
    "bf16": f"bf16 equal to native bf16 within its precision (error against native fp32 <= {BF16_SLACK}x "
            "native bf16's)",
    "fp32": f"fp32 equal to native fp32 within {FP32_EQUAL:g} (max abs)",
    "syncs": "0 host syncs per sampling step (the patch's per-step path, set_sync_debug_mode)",
    "step": f"patch step time <= {PATCH_STEP_TIME}x native differential diffusion",
    "mask": f"mask conversion on the device <= {MASK_X_AMAX}x one mask.amax() read",
    "tests": "the CUDA-marked tests pass on the device",
}


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt_ratio(r) -> str:
    return "-" if r is None else f"{r:.2f}x"


def judge(ok: bool | None) -> str:
    return "not measured" if ok is None else "met" if ok else "missed"


def entry(key: str, case: str, measured: str, ok: bool | None, note: str = "") -> dict:
    return {"target": TEXT[key], "case": case, "measured": measured, "verdict": judge(ok), "note": note}


def offload_note(data: dict, size: str, dtype: str, t_off: float | None, t_native: float | None) -> str:
    """How far the offload's time is from the target and what the link explains of it."""
    traffic = data.get("vae", {}).get("traffic", {}).get(f"{size} {dtype}")
    link = data.get("env", {}).get("link_h2d_gbs")
    if not traffic or not t_native:
        return ""
    per_frame = traffic["bytes_per_latent_frame"]
    frames = traffic["latent_frames"] - 1
    note = (f"moves {per_frame / 2**30:.2f} GiB each way per latent frame "
            f"({per_frame * frames / 2**30:.0f} GiB per clip)")
    if link:
        link_s = per_frame * frames / (link * 1e9)
        note += (f"; at the measured {link:.1f} GB/s that is {link_s:.2f} s, {100 * link_s / t_native:.0f} % of "
                 f"native's {t_native:.2f} s decode (prefetch 3 slots ahead hides it only behind compute)")
    if t_off and t_native and t_off > OFFLOAD_TIME * t_native:
        note = f"over by {100 * (t_off / t_native / OFFLOAD_TIME - 1):.0f} %: " + note
    return note


def vae_targets(data: dict, on_gpu: bool) -> list[dict]:
    rows = [r for r in data.get("vae", {}).get("rows", []) if r.get("status") == "measured"]
    groups: dict[tuple, dict] = {}
    for r in rows:
        groups.setdefault((r["size"], r["dtype"]), {})[r["case"]] = r
    out = []
    for (size, dtype), g in groups.items():
        case = f"{size} {dtype}"
        nat = g.get("native", {})
        pk = lambda name: ratio(g.get(name, {}).get("peak_bytes"), nat.get("peak_bytes"))  # noqa: E731
        tm = lambda name: ratio(g.get(name, {}).get("time_s"), nat.get("time_s"))  # noqa: E731
        gate = (lambda ok: ok) if on_gpu else (lambda ok: None)  # noqa: E731
        cpu_note = "" if on_gpu else "CPU dry run: peak VRAM is CUDA only, CPU times are not the GPU figures"
        if "ours" in g:
            r = pk("ours")
            out.append(entry("untiled", case, f"{fmt_ratio(r)} (time {fmt_ratio(tm('ours'))})",
                             gate(None if r is None else r <= UNTILED_PEAK), cpu_note))
        if "offload" in g:
            r, t = pk("offload"), tm("offload")
            ok = None if r is None or t is None else (r <= OFFLOAD_PEAK and t <= OFFLOAD_TIME)
            note = (offload_note(data, size, dtype, g["offload"].get("time_s"), nat.get("time_s")) if on_gpu
                    else cpu_note)
            out.append(entry("offload", case, f"peak {fmt_ratio(r)}, time {fmt_ratio(t)}", gate(ok), note))
        if "tiled_offload" in g:
            r = pk("tiled_offload")
            out.append(entry("tiled_offload", case, fmt_ratio(r),
                             gate(None if r is None else r <= TILED_OFFLOAD_PEAK), cpu_note))
        if "tiled" in g and "native_tiled" in g:
            r = ratio(g["tiled"].get("peak_bytes"), g["native_tiled"].get("peak_bytes"))
            so, sn = g["tiled"].get("vs_untiled_max"), g["native_tiled"].get("vs_untiled_max")
            seams = f"; vs own untiled: ours {so:.3g}, native {sn:.3g}" if so is not None and sn is not None else ""
            ok = None if r is None else r <= 1.0 and (so is None or sn is None or so <= sn)
            out.append(entry("tiled", case, f"{fmt_ratio(r)} of native tiled{seams}", gate(ok), cpu_note))
        if dtype == "fp32":
            worst = max((g[c]["max_abs_diff"] for c in ("ours", "offload") if c in g
                         and g[c].get("max_abs_diff") is not None), default=None)
            if worst is not None:
                tf32 = data.get("env", {}).get("tf32_cudnn")
                note = ("cuDNN TF32 is on (PyTorch's default): fp32 convolutions round to TF32, so the two "
                        "implementations differ by TF32's precision" if tf32 else "")
                out.append(entry("fp32", case, f"{worst:.2e}", gate(worst <= FP32_EQUAL) if not tf32 else None,
                                 note or ("" if on_gpu else "CPU dry run")))
    for p in data.get("vae", {}).get("bf16_vs_fp32", []):
        ok = p["ours_max"] <= BF16_SLACK * p["native_max"]
        out.append(entry("bf16", f"{p['size']} bf16", f"against native fp32: ours {p['ours_max']:.3g}, native bf16 "
                         f"{p['native_max']:.3g} (max abs); ours vs native bf16 {p['ours_vs_native']:.3g}",
                         ok if on_gpu else None, "" if on_gpu else "CPU dry run"))
    return out


def sampler_targets(data: dict, on_gpu: bool) -> list[dict]:
    s = data.get("sampler") or {}
    if not s.get("measured"):
        return []
    out = []
    syncs = s.get("syncs_per_step", {}).get("mask_function", {}).get("ours")
    out.append(entry("syncs", s["latent"], "-" if syncs is None else f"{syncs:g} per step (native "
                     f"{s['syncs_per_step']['mask_function'].get('native', '-')})",
                     None if syncs is None else syncs == 0,
                     "" if on_gpu else "CPU dry run: set_sync_debug_mode needs CUDA; the CPU spy counted "
                     + ", ".join(f"{k} {v:g}" for k, v in (s.get("cpu_spy_syncs_per_step") or {}).items())
                     + " per step"))
    r = s.get("ratio_paired_median")
    out.append(entry("step", s["latent"], f"{fmt_ratio(r)} (min-based {fmt_ratio(s.get('ratio_min'))})",
                     (r <= PATCH_STEP_TIME if r is not None else None) if on_gpu else None,
                     "" if on_gpu else "CPU dry run"))
    return out


def mask_targets(data: dict, on_gpu: bool) -> list[dict]:
    rows = [r for r in (data.get("mask") or {}).get("rows", []) if r["case"].startswith("pixel_mask_to_latent")]
    if not rows:
        return []
    worst = max(rows, key=lambda r: r["x_amax"])
    return [entry("mask", data["mask"]["shape"], f"{worst['x_amax']:.2f}x ({worst['case']}, the slowest pair)",
                  worst["x_amax"] <= MASK_X_AMAX if on_gpu else None, "" if on_gpu else "CPU dry run")]


def tests_target(data: dict, on_gpu: bool) -> list[dict]:
    t = data.get("tests") or {}
    if "counts" not in t:
        return []
    c = t["counts"]
    measured = ", ".join(f"{v} {k}" for k, v in c.items() if v)
    ok = (c.get("failed", 0) + c.get("error", 0) == 0 and c.get("passed", 0) > 0) if on_gpu else None
    return [entry("tests", "", measured or "none collected", ok,
                  "" if on_gpu else "CPU dry run: the CUDA-only tests skip")]


def evaluate(data: dict) -> list[dict]:
    """Every target the results so far can judge, in the order of the issue."""
    on_gpu = bool(data.get("env", {}).get("cuda_device"))
    return vae_targets(data, on_gpu) + sampler_targets(data, on_gpu) + mask_targets(data, on_gpu) + \
        tests_target(data, on_gpu)
