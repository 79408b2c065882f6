"""GPU check: every CUDA figure of the pack in one command, sized for a short loan of one GPU.

    COMFYUI_PATH=~/.cache/wanmask-ci/trees/ComfyUI-0.33.0 python benchmarks/run.py gpu_check --out DIR
        [--quick] [--tiny] [--device auto|cuda|cpu] [--budget total=480 vae=... sampler=... mask=... tests=...]
        [--stages vae sampler mask tests] [--models DIR] [--profile H100|H200] [--estimate-only]

Stages, by value (each with a time budget; each writes its figures as it goes, so a cut run still
brings back what it did):

1. env: device, driver, torch, CUDA, cuDNN and ComfyUI versions; host-link bandwidth (pinned).
2. vae: the VAE suite at 81x480x832 and 81x720x1280, bf16 and fp32, against native's decode in the
   same process: peak VRAM (``torch.cuda.max_memory_allocated``) and time (CUDA events) of native,
   ours untiled, with cache offload, tiled, tiled + offload and native tiled; max abs difference.
3. sampler: WanMaskSamplerPatch against native differential diffusion on the tiny Wan T2V: step
   time ratio and host syncs per step (``torch.cuda.set_sync_debug_mode``).
4. mask: ``pixel_mask_to_latent`` on the device against one ``mask.amax()`` read.
5. tests: the test suite's CUDA-marked tests (``pytest -m cuda``) on the device.

Results: ``gpu_check.json`` and ``gpu_check.md`` (ready to paste into BENCHMARKS.md) under
``--out`` (default: ``$OUT``, else ``./gpu_check_out``). The estimate for the chosen plan is printed
before anything runs (``--estimate-only`` prints it and stops). Plans: the default ``full``;
``--quick`` (81x480x832 bf16 only); ``--tiny`` (every stage at a tiny size, a VAE of width 8 in the
real layout), which is what runs without a CUDA device: the same code on ``device=cpu``, the
CUDA-only measurements recorded as skipped with the reason. No weights are downloaded: random weights
in the real layouts. Needs only ``.ci/run``'s venv and a ComfyUI tree (``COMFYUI_PATH``).

Exit status: 0 done (misses of targets included: they are figures), 1 a stage failed or a CUDA
test failed, 2 something missing (one line each), 3 stopped at the total budget.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .gpu import plan as plans
from .gpu.report import JSON_NAME, MD_NAME, Report, markdown

STAGES = ("vae", "sampler", "mask", "tests")
"""Stage order by value: the VAE suite first."""
TOTAL_BUDGET_S = 480.0
GRACE_S = 20.0
"""After the total budget, the stage in flight gets this long before the watchdog stops the run."""


@dataclass
class Context:
    """What every stage gets: where to run, the plan, the clock."""

    device: torch.device
    plan: plans.Plan
    profile: plans.DeviceProfile
    out: Path
    models_dir: Path
    comfy_path: str
    end: float  # monotonic time of the total budget's end
    deadlines: dict = field(default_factory=dict)
    models_job: object = None  # the tiny checkpoints being generated in the background, if they were missing

    def time_left(self, stage: str) -> float:
        return min(self.deadlines.get(stage, self.end), self.end) - time.monotonic()


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="benchmarks/run.py gpu_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT") or "gpu_check_out", help="folder for the JSON and markdown")
    ap.add_argument("--quick", action="store_true", help="the VAE suite at 81x480x832 bf16 only")
    ap.add_argument("--tiny", action="store_true", help="every stage at a tiny size (the CPU dry run's plan)")
    ap.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    ap.add_argument("--budget", nargs="*", default=[], metavar="STAGE=SECONDS",
                    help=f"time budgets: total (default {TOTAL_BUDGET_S:.0f}) or a stage ({', '.join(STAGES)})")
    ap.add_argument("--stages", nargs="*", default=list(STAGES), choices=STAGES, help="stages to run (order: by value)")
    ap.add_argument("--models", default=os.environ.get("WANMASK_TEST_MODELS", ""),
                    help="tiny Wan checkpoints (default: $WANMASK_TEST_MODELS, else generated in the temp folder)")
    ap.add_argument("--profile", choices=sorted(plans.PROFILES), help="device profile of the estimate")
    ap.add_argument("--estimate-only", action="store_true", help="print the plan's estimate and stop")
    return ap.parse_args(argv)


def parse_budgets(items) -> dict:
    budgets = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in ("total", *STAGES) or not value:
            sys.exit(f"--budget {item}: expected STAGE=SECONDS with STAGE one of total, {', '.join(STAGES)}")
        budgets[key] = float(value)
    return budgets


def allocate(est: dict, given: dict, stages) -> dict:
    """Seconds per stage: each cheap stage 1.3x its estimate (at least 15 s; on the CPU dry run 4x,
    whose shared 2-core machines swing that much); the VAE suite, which runs first, what the total
    leaves after the estimates of start-up and the other stages (every stage also ends at the end of
    the total); ``given`` overrides any of them."""
    total = given.get("total", TOTAL_BUDGET_S)
    slack = 4.0 if est.get("plan") == "tiny" else 1.3
    others = [s for s in stages if s != "vae"]
    out = {s: given.get(s, max(15.0, slack * est["stages"][s])) for s in others}
    if "vae" in stages:
        rest = total - est["stages"]["startup"] - sum(est["stages"][s] for s in others)
        out["vae"] = given.get("vae", max(30.0, rest))
    return {"total": total, **out}


def missing_prerequisites(device: torch.device) -> list[str]:
    """One line per missing thing (none: an empty list)."""
    lines = []
    comfy = os.environ.get("COMFYUI_PATH", "")
    if not comfy or not (Path(comfy) / "comfy" / "sd.py").exists():
        lines.append("missing: ComfyUI: set COMFYUI_PATH to a tree unpacked by .ci/run "
                     "(e.g. ~/.cache/wanmask-ci/trees/ComfyUI-0.33.0) and use that version's venv")
    for module in ("pytest", "safetensors", "einops"):
        if importlib.util.find_spec(module) is None:
            lines.append(f"missing: the Python module {module} "
                         "(run with .ci/run's venv, ~/.cache/wanmask-ci/venv-VERSION)")
    if device.type == "cuda" and not torch.cuda.is_available():
        lines.append("missing: a CUDA device (--device cuda was asked for; torch sees none)")
    return lines


def estimate_json(est: dict) -> dict:
    return {**est, "cases": {" ".join(k): v for k, v in est["cases"].items()}}


def run_stage(name: str, fn, ctx: Context, report: Report, budget: float, estimate: float) -> None:
    start, cpu = time.monotonic(), time.process_time()
    ctx.deadlines[name] = start + budget
    print(f"== [{name}] budget {budget:.0f} s, estimate {estimate:.0f} s, {ctx.end - start:.0f} s left in total",
          flush=True)
    if ctx.time_left(name) <= 0:
        report.skip(name, "the whole stage", "no time left in the total budget")
        report.stage_status(name, "skipped", reason="no time left in the total budget", budget_s=budget)
        return
    report.stage_status(name, "running", budget_s=budget, estimate_s=estimate)
    reason, error = None, None
    try:
        status = fn(ctx, report)
    except Exception as e:  # one stage's failure must not cost the others' figures
        status, reason = "failed", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
        error = traceback.format_exc()[-3000:]
        print(error, file=sys.stderr, flush=True)
    report.stage_status(name, status, seconds=time.monotonic() - start, cpu_s=time.process_time() - cpu,
                        reason=reason, error=error)
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()


def stage_functions():
    from .gpu.mask_stage import run_mask_stage
    from .gpu.sampler_stage import run_sampler_stage
    from .gpu.tests_stage import run_tests_stage
    from .gpu.vae_stage import run_vae_stage
    return {"vae": run_vae_stage, "sampler": run_sampler_stage, "mask": run_mask_stage, "tests": run_tests_stage}


def start_watchdog(report: Report, seconds: float) -> threading.Timer:
    def stop():
        report.data["cut"] = f"the total budget ran out ({seconds:.0f} s with the grace period)"
        try:
            report.save()
        finally:
            print(f"gpu_check: {report.data['cut']}; partial results in {report.out}", flush=True)
            os._exit(3)
    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()
    return timer


def main(argv=None) -> int:
    t0 = time.monotonic()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    budgets_given = parse_budgets(args.budget)
    want = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(want)
    dry = args.tiny or (device.type == "cpu" and not args.estimate_only)  # --estimate-only: the GPU plans
    name = "tiny" if dry else "quick" if args.quick else "full"
    plan = plans.make_plan(name)
    key, profile = (args.profile, plans.PROFILES[args.profile]) if args.profile else \
        plans.profile_for(torch.cuda.get_device_name(device) if device.type == "cuda" else "")
    est = plans.estimate(plan, profile)
    if device.type == "cpu" and not args.estimate_only:
        torch.set_num_threads(1)  # tiny tensors: a second OpenMP thread only spin-waits on a shared machine
        print("No CUDA device: the CPU dry run (the same stages at a tiny size on device=cpu, 1 torch thread; "
              "CUDA-only measurements are recorded as skipped with the reason).")
    print(plans.format_estimate(plan, est))
    reference = {n: plans.estimate(plans.make_plan(n), plans.PROFILES["H100"]) for n in ("full", "quick")}
    if plan.name == "tiny":
        print(plans.format_estimate(plans.make_plan("full"), reference["full"]))
    budgets = allocate(est, budgets_given, [s for s in STAGES if s in args.stages])
    print("Budgets: " + ", ".join(f"{k} {v:.0f} s" for k, v in budgets.items()), flush=True)
    if args.estimate_only:
        return 0
    missing = missing_prerequisites(device)
    if missing:
        print("\n".join(missing))
        return 2

    out = Path(args.out).resolve()
    command = "python benchmarks/run.py gpu_check " + " ".join(sys.argv[1:] if argv is None else argv)
    report = Report(out, command.strip(), plan.name, estimate_json(est), budgets)
    report.data["estimate_h100"] = {n: {"stages": e["stages"], "total": e["total"]} for n, e in reference.items()}
    models = Path(args.models).resolve() if args.models else Path(tempfile.gettempdir()) / "wanmask_tiny_models"
    ctx = Context(device, plan, profile, out, models, os.environ["COMFYUI_PATH"], t0 + budgets["total"])
    start_watchdog(report, budgets["total"] - (time.monotonic() - t0) + GRACE_S)
    if "sampler" in args.stages:
        from .gpu.sampler_stage import start_tiny_models
        ctx.models_job = start_tiny_models(ctx.models_dir, ctx.comfy_path, out / "tiny_models.log")
    from .gpu.env_stage import run_env_stage
    with torch.inference_mode():
        run_stage("env", run_env_stage, ctx, report, est["stages"]["startup"] + 60.0, est["stages"]["startup"])
        functions = stage_functions()
        for stage in STAGES:
            if stage not in args.stages:
                report.skip(stage, "the whole stage", "not asked for (--stages)")
                report.stage_status(stage, "skipped", reason="not asked for (--stages)")
                continue
            run_stage(stage, functions[stage], ctx, report, budgets[stage], est["stages"][stage])
    report.data["finished"] = True
    report.save()
    print(markdown(report.data))
    print(f"gpu_check: wrote {out / JSON_NAME} and {out / MD_NAME} ({time.monotonic() - t0:.0f} s)")
    failed = [s for s, v in report.data["stages"].items() if v["status"] == "failed"]
    counts = report.data["tests"].get("counts", {})
    return 1 if failed or counts.get("failed") or counts.get("error") else 0


if __name__ == "__main__":
    sys.exit(main())
