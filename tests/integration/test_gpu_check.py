"""The GPU check's CPU dry run: ``python benchmarks/run.py gpu_check`` without a CUDA device runs every
stage at a tiny size on the CPU against the ComfyUI at COMFYUI_PATH, records the CUDA-only
measurements as skipped with the reason and exits 0, so the one command a GPU loan gets cannot rot."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from comfyui_wanmasking.tests.integration.comfy_server import make_tiny_models

REPO = Path(__file__).resolve().parents[2]
STAGES = ("env", "vae", "sampler", "mask", "tests")


@pytest.fixture(scope="module")
def dry_run(comfyui_path, models_cache, tmp_path_factory):
    make_tiny_models(comfyui_path, models_cache)
    out = tmp_path_factory.mktemp("gpu_check")
    env = {**os.environ, "COMFYUI_PATH": str(comfyui_path), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "benchmarks/run.py", "gpu_check", "--device", "cpu", "--out", str(out),
                           "--models", str(models_cache)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, json.loads((out / "gpu_check.json").read_text()), (out / "gpu_check.md").read_text()


def numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from numbers(v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def test_dry_run_prints_the_per_stage_estimate_for_one_h100_within_8_minutes(dry_run):
    stdout, data, _ = dry_run
    assert "Estimate for the full plan on NVIDIA H100" in stdout
    for stage in ("startup", "vae", "sampler", "mask", "tests", "total"):
        assert f"  {stage} " in stdout
    full, quick = data["estimate_h100"]["full"], data["estimate_h100"]["quick"]
    assert full["total"] <= 8 * 60 and quick["total"] < full["total"]
    assert set(full["stages"]) == {"startup", "vae", "sampler", "mask", "tests"}


def test_every_stage_runs_on_the_cpu_and_every_number_is_finite(dry_run):
    _, data, _ = dry_run
    assert data["finished"] and data["cut"] is None and data["plan"] == "tiny"
    assert {s: data["stages"][s]["status"] for s in STAGES} == {s: "done" for s in STAGES}
    assert all(math.isfinite(x) for x in numbers(data))
    rows = data["vae"]["rows"]
    assert {(r["dtype"], r["case"]) for r in rows} >= {("fp32", c) for c in (
        "native", "ours", "offload", "tiled", "tiled_offload", "native_tiled")} | {("bf16", "native"), ("bf16", "ours")}
    assert all(r["status"] == "measured" and r["time_s"] > 0 for r in rows)
    fp32 = {r["case"]: r for r in rows if r["dtype"] == "fp32"}
    assert fp32["ours"]["max_abs_diff"] < 1e-4 and fp32["offload"]["max_abs_diff"] < 1e-4  # equal to native
    assert fp32["ours"]["traced_bytes"] > 0 and data["vae"]["bf16_vs_fp32"]
    assert data["sampler"]["measured"] and data["sampler"]["cpu_spy_syncs_per_step"] == {"ours": 0.0, "native": 1.0}
    assert "bit-exact" in data["sampler"]["kept"]
    assert {r["case"] for r in data["mask"]["rows"]} >= {"mask.amax() (one read)", "pixel_mask_to_latent max/max"}


def test_cuda_only_measurements_are_skipped_with_the_reason(dry_run):
    _, data, _ = dry_run
    skipped = {(s["stage"], s["what"]): s["reason"] for s in data["skipped"]}
    for stage, what in (("env", "GPU, driver and host-link bandwidth"), ("vae", "peak VRAM of every case"),
                        ("sampler", "host syncs per step (set_sync_debug_mode)")):
        assert "CUDA" in skipped[(stage, what)]
    assert all(r["peak_bytes"] is None and "CUDA only" in r["peak_reason"] for r in data["vae"]["rows"])
    tests = data["tests"]
    assert tests["counts"]["failed"] == tests["counts"]["error"] == 0
    cuda_only = [c for c in tests["cases"] if "test_cuda_paths" in c["name"]]
    assert cuda_only and all(c["outcome"] == "skipped" and "CUDA" in c["message"] for c in cuda_only)
    assert all(t["verdict"] == "not measured" and t["note"] for t in data["targets"])


def test_markdown_holds_the_tables_to_paste_into_benchmarks(dry_run):
    _, data, md = dry_run
    assert md.startswith("### GPU figures")
    assert "| size | dtype | case | time | x native | peak VRAM |" in md
    assert md.count("| 5x16x24 |") == len(data["vae"]["rows"])
    for heading in ("#### Sampler patch", "#### Mask conversion", "#### CUDA-marked tests", "#### Against the targets",
                    "#### Not measured in this run"):
        assert heading in md
