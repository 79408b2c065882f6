"""The GPU check's results: one JSON (``gpu_check.json``) and one markdown page (``gpu_check.md``)
in the output folder, both rewritten (atomically) every time a figure is added, so a run cut short
still leaves everything it measured. The markdown is written to be pasted into BENCHMARKS.md."""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from . import targets

JSON_NAME, MD_NAME = "gpu_check.json", "gpu_check.md"
STAGES = ("env", "vae", "sampler", "mask", "tests")


def gib(n) -> str:
    """Bytes as GiB (MiB below 1 GiB)."""
    if n is None:
        return "-"
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def secs(t) -> str:
    return "-" if t is None else f"{t:.2f} s" if t >= 0.1 else f"{t * 1e3:.2f} ms"


def finite(value):
    """``value`` with every non-finite float replaced by None (the JSON stays strict)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


class Report:
    """The results of one run. Stages write into ``data[stage]`` and call :meth:`save`."""

    def __init__(self, out_dir: Path, command: str, plan: str, estimate: dict, budgets: dict):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.data = {"schema": 1, "command": command, "plan": plan,
                     "started_utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                     "finished": False, "cut": None, "estimate": estimate, "budgets": budgets,
                     "stages": {s: {"status": "pending"} for s in STAGES}, "skipped": [], "targets": [],
                     "env": {}, "vae": {"rows": [], "traffic": {}, "bf16_vs_fp32": []}, "sampler": {},
                     "mask": {}, "tests": {}}

    def skip(self, stage: str, what: str, reason: str) -> None:
        """Record a measurement this run did not make, with the reason (printed, and in both files)."""
        self.data["skipped"].append({"stage": stage, "what": what, "reason": reason})
        print(f"  [{stage}] skipped {what}: {reason}", flush=True)

    def stage_status(self, stage: str, status: str, **info) -> None:
        self.data["stages"][stage].update(status=status, **info)
        self.save()

    def save(self) -> None:
        self.data["updated_utc"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        clean = finite(self.data)
        clean["targets"] = self.data["targets"] = targets.evaluate(clean)
        write_atomic(self.out / JSON_NAME, json.dumps(clean, indent=1, allow_nan=False, default=str) + "\n")
        write_atomic(self.out / MD_NAME, markdown(clean))


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ---- markdown ----------------------------------------------------------------------------------------
def env_lines(d: dict) -> list[str]:
    e = d.get("env", {})
    dev = e.get("cuda_device") or f"no CUDA device (CPU dry run on {e.get('cpu', 'the CPU')})"
    lines = [f"Run {d['started_utc']}: {dev}; driver {e.get('driver', '-')}, torch {e.get('torch', '-')}, "
             f"CUDA {e.get('cuda', '-')}, cuDNN {e.get('cudnn', '-')}, ComfyUI {e.get('comfyui', '-')} (native), "
             f"Python {e.get('python', '-')}."]
    if e.get("cuda_device"):
        lines.append(f"TF32: cuDNN {e.get('tf32_cudnn')}, matmul {e.get('tf32_matmul')}; host link (pinned, "
                     f"256 MiB): {e.get('link_h2d_gbs', 0):.1f} GB/s to the device, {e.get('link_d2h_gbs', 0):.1f} "
                     "GB/s back.")
    est = d.get("estimate", {})
    ran = sum(s.get("seconds", 0) for s in d["stages"].values())
    lines.append(f"Command: `{d['command']}` ({d['plan']} plan). Stages took {ran:.0f} s; estimated "
                 f"{est.get('total', 0):.0f} s on {est.get('profile', '-')}."
                 + (f" **Cut short**: {d['cut']}." if d.get("cut") else ""))
    return lines


def vae_table(d: dict) -> list[str]:
    rows = d["vae"]["rows"]
    if not rows:
        return []
    out = ["#### VAE decode: ours against native in the same process (random weights, real layout)", "",
           "Peak VRAM: `torch.cuda.max_memory_allocated` above the level before the call (weights and the latent "
           "excluded; native keeps its output on the device, ours streams it to pinned memory). Time: CUDA events.", "",
           "| size | dtype | case | time | x native | peak VRAM | x native | traced / measured "
           "| max abs diff vs native | vs own untiled |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "measured":
            out.append(f"| {r['size']} | {r['dtype']} | {r['label']} | {r['status']}: {r.get('reason', '')} "
                       "| | | | | | |")
            continue
        tr = (f"{gib(r['traced_bytes'])} / {gib(r['peak_bytes'])}" if r.get("traced_bytes") and r.get("peak_bytes")
              else gib(r.get("traced_bytes")) if r.get("traced_bytes") else "-")
        diff = "-" if r.get("max_abs_diff") is None else f"{r['max_abs_diff']:.2e}"
        vs = "-" if r.get("vs_untiled_max") is None else f"{r['vs_untiled_max']:.3g}"
        out.append(f"| {r['size']} | {r['dtype']} | {r['label']} | {secs(r.get('time_s'))} | "
                   f"{targets.fmt_ratio(r.get('time_ratio'))} | {gib(r.get('peak_bytes'))} | "
                   f"{targets.fmt_ratio(r.get('peak_ratio'))} | {tr} | {diff} | {vs} |")
    for key, t in d["vae"]["traffic"].items():
        out.append("")
        out.append(f"Cache offload traffic, {key} (traced): {gib(t['bytes_per_latent_frame'])} each way per "
                   f"latent frame; the cache itself holds {gib(t['cache_bytes'])}.")
    return out + [""]


def sampler_table(d: dict) -> list[str]:
    s = d.get("sampler") or {}
    if not s.get("measured"):
        return []
    sp = s.get("syncs_per_step", {})
    row = lambda name, key, fmt: (f"| {name} | {fmt(s[key]['ours'])} | {fmt(s[key]['native'])} |"  # noqa: E731
                                  if key in s else "")
    lines = [f"#### Sampler patch vs native differential diffusion (tiny Wan T2V, latent {s['latent']}, "
             f"{s['steps']} steps, {s['repeats']} interleaved pairs)", "",
             "| per sampling step | ours (WanMaskSamplerPatch) | native DifferentialDiffusion |", "|---|---|---|",
             row("time (median)", "step_s", secs)]
    for where, label in (("mask_function", "host syncs, mask function"), ("whole_call", "host syncs, whole step")):
        if where in sp:
            lines.append(f"| {label} | {sp[where]['ours']:g} | {sp[where]['native']:g} |")
    lines += ["", f"Step time ours / native: paired median {targets.fmt_ratio(s.get('ratio_paired_median'))}, "
              f"min-based {targets.fmt_ratio(s.get('ratio_min'))}. Kept region after sampling: "
              f"{s.get('kept', '-')}.", ""]
    return [x for x in lines if x is not None]


def mask_table(d: dict) -> list[str]:
    m = d.get("mask") or {}
    if not m.get("rows"):
        return []
    lines = [f"#### Mask conversion on the device: {m['shape']} float32 mask, latent {m['latent']}", "",
             f"Median of {m['repeats']} interleaved repeats of {m['inner']} calls each.", "",
             "| case | time per call | x amax |", "|---|---|---|"]
    lines += [f"| {r['case']} | {secs(r['time_s'])} | {r['x_amax']:.2f}x |" for r in m["rows"]]
    return lines + [""]


def tests_lines(d: dict) -> list[str]:
    t = d.get("tests") or {}
    if "counts" not in t:
        return []
    c = ", ".join(f"{v} {k}" for k, v in t["counts"].items() if v) or "none collected"
    lines = [f"#### CUDA-marked tests (`pytest -m cuda`, {t.get('files', 0)} files): {c}", ""]
    lines += [f"- {x['name']}: {x['outcome']}: {x.get('message', '')}" for x in t.get("cases", [])
              if x["outcome"] in ("failed", "error")]
    return lines + ([""] if len(lines) > 2 else [])


def markdown(d: dict) -> str:
    """The whole report as markdown: header, tables, targets, what was not measured."""
    lines = ["### GPU figures (`benchmarks/run.py gpu_check`)", ""] + env_lines(d) + [""]
    lines += vae_table(d) + sampler_table(d) + mask_table(d) + tests_lines(d)
    if d["targets"]:
        lines += ["#### Against the targets", "", "| target | case | measured | verdict | note |",
                  "|---|---|---|---|---|"]
        lines += [f"| {t['target']} | {t['case']} | {t['measured']} | {t['verdict']} | {t['note']} |"
                  for t in d["targets"]]
        lines.append("")
    lines += ["#### Stages", "", "| stage | status | time | CPU time (this process) | budget | estimate |",
              "|---|---|---|---|---|---|"]
    for name, s in d["stages"].items():
        lines.append(f"| {name} | {s['status']}{': ' + s['reason'] if s.get('reason') else ''} | "
                     f"{secs(s.get('seconds'))} | {secs(s.get('cpu_s'))} | {secs(s.get('budget_s'))} | "
                     f"{secs(s.get('estimate_s'))} |")
    lines.append("")
    if d["skipped"]:
        lines += ["#### Not measured in this run", ""]
        lines += [f"- {s['stage']}: {s['what']}: {s['reason']}" for s in d["skipped"]]
        lines.append("")
    return "\n".join(lines)
