"""Batch runs (issue 21): what the batch layer costs per job against ``run_workflow`` on the same server, the
throughput with 1, 2 and 3 loopback ComfyUI servers, and the time from the command's start to its first
finished job with the embedded LocalCluster.

    COMFYUI_PATH=~/.cache/wanmask-ci/trees/ComfyUI-0.33.0 python benchmarks/run.py batch \\
        --models ~/.cache/wanmask-ci/tiny-models-0.33.0

Servers are real ComfyUI processes on 127.0.0.1 with the tiny checkpoints (tests/integration/comfy_server.py).
* Overhead: a job that runs no model (mask file -> WanMaskToLatent -> SaveLatent, a few ms in ComfyUI), so
  that both sides wait the same one history poll of the server backend (0.25 s) and the difference is the
  batch layer's: Dask, the upload of the job's mask, reading and writing the output, its sha256, the record.
  Per-job cost is the slope between a short and a long batch (the cluster's start cancels out), both sides
  interleaved, median of the repeats.
* Throughput: the 1-step masked T2V job of the tests, 24 jobs, on 1, 2 and 3 servers.
* First job: ``python -m wanmask_runner batch`` with ``--comfyui`` (one embedded worker) against one
  embedded single run, both as new processes, to the first record / the exit.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from ..tests.integration.batch_jobs import MASK_NODE, SEED_NODE, read_records, tiny_masked_t2v, write_shots
from ..tests.integration.comfy_server import REPO, ComfyServer
from ..wanmask_runner.api import run_workflow
from ..wanmask_runner.backends import open_backend
from ..wanmask_runner.batch import run_batch


def start_servers(n: int, comfy: Path, models: Path, work: Path) -> list[ComfyServer]:
    servers = [ComfyServer(comfy, work / f"base{i}", models) for i in range(n)]
    threads = [threading.Thread(target=s.start) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in servers:
        s.get("/system_stats")
    return servers


def direct(server: ComfyServer, folder: Path, jobs: list[dict], out: Path) -> float:
    """run_workflow per job on one server (its masks copied into the server's input folder beforehand: the
    plain runner does not upload)."""
    workflow = json.loads((folder / "job.json").read_text())
    for job in jobs:
        shutil.copy(folder / job["set"][f"{MASK_NODE}.image"], server.base / "input" / f"{job['id']}_mask.png")
    backend = open_backend(server=server.url)
    start = time.perf_counter()
    for job in jobs:
        seed = job["set"][f"{SEED_NODE}.seed"]
        run_workflow(workflow, backend=backend, out_dir=out / job["id"],
                     overrides=[f"{MASK_NODE}.image={job['id']}_mask.png", f"{SEED_NODE}.seed={seed}"])
    return time.perf_counter() - start


def batched(servers: list[ComfyServer], jobs_file: Path, out: Path) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    records = run_batch(jobs_file, servers=[s.url for s in servers], out_dir=out, progress=False)
    assert all(r["status"] == "done" for r in records), [r["error"] for r in records if r["status"] != "done"]
    return time.perf_counter() - start, records


def overhead(server: ComfyServer, work: Path, small: int, big: int, repeats: int) -> dict:
    quick = tiny_masked_t2v(sample=False)
    jobs_file, jobs = write_shots(work / "warmup", 2, quick, seed0=1)  # first imports, first cluster, cached loads
    direct(server, work / "warmup", jobs, work / "warmup" / "direct_out")
    batched([server], jobs_file, work / "warmup" / "batch_out")
    times = {("direct", small): [], ("direct", big): [], ("batch", small): [], ("batch", big): []}
    for r in range(repeats):
        for n in ((small, big) if r % 2 == 0 else (big, small)):
            folder = work / f"overhead_{r}_{n}"
            jobs_file, jobs = write_shots(folder, n, quick, seed0=1000 * r + n)
            times[("direct", n)].append(direct(server, folder, jobs, folder / "direct_out"))
            times[("batch", n)].append(batched([server], jobs_file, folder / "batch_out")[0])
    med = {k: statistics.median(v) for k, v in times.items()}
    slope = {side: (med[(side, big)] - med[(side, small)]) / (big - small) for side in ("direct", "batch")}
    fixed = med[("batch", small)] - small * slope["batch"]
    return {"times": {f"{k[0]} {k[1]} jobs": [round(t, 3) for t in v] for k, v in times.items()},
            "per_job_ms": {k: round(v * 1000, 1) for k, v in slope.items()},
            "overhead_ms_per_job": round((slope["batch"] - slope["direct"]) * 1000, 1),
            "batch_fixed_s": round(fixed, 2)}


def throughput(servers: list[ComfyServer], work: Path, jobs: int) -> list[dict]:
    rows = []
    for k in range(1, len(servers) + 1):
        jobs_file, _ = write_shots(work / f"throughput_{k}", jobs, seed0=100 * k)
        wall, records = batched(servers[:k], jobs_file, work / f"throughput_{k}" / "out")
        starts = sorted(datetime.fromisoformat(r["start"]) for r in records)
        ends = sorted(datetime.fromisoformat(r["end"]) for r in records)
        span = (ends[-1] - starts[0]).total_seconds()
        rows.append({"servers": k, "wall_s": round(wall, 2), "jobs_per_s_wall": round(jobs / wall, 2),
                     "jobs_per_s_running": round(jobs / span, 2),
                     "jobs_per_server": sorted(sum(r["instance"] == s.url for r in records) for s in servers[:k])})
    return rows


def first_job(server: ComfyServer, work: Path) -> dict:
    """New processes: the batch command with one embedded worker (1 job) and one embedded single run."""
    folder = work / "first"
    jobs_file, jobs = write_shots(folder, 1, seed0=7)
    embedded = [a for a in server.embedded_args(work / "first_temp")]
    out = folder / "out"
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "wanmask_runner", "batch", str(jobs_file), "--workers", "1",
                             *embedded, "--out", str(out), "--quiet"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    first = None
    while proc.poll() is None:
        if first is None and read_records(out):
            first = time.perf_counter() - start
        time.sleep(0.05)
    total = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr.read()[-3000:]
    shutil.copy(folder / jobs[0]["set"][f"{MASK_NODE}.image"], server.base / "input" / "first_mask.png")
    start = time.perf_counter()
    single = subprocess.run([sys.executable, "-m", "wanmask_runner", str(folder / "job.json"), *embedded,
                             "--out", str(folder / "single"), "--quiet", "--set", f"{MASK_NODE}.image=first_mask.png"],
                            cwd=REPO, capture_output=True, text=True)
    single_s = time.perf_counter() - start
    assert single.returncode == 0, single.stderr[-3000:]
    return {"batch_first_record_s": round(first or total, 2), "batch_exit_s": round(total, 2),
            "single_run_exit_s": round(single_s, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, required=True, help="the tiny checkpoints folder (made when missing)")
    p.add_argument("--small", type=int, default=10, help="jobs of the short batch (overhead)")
    p.add_argument("--big", type=int, default=40, help="jobs of the long batch (overhead)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--throughput-jobs", type=int, default=24)
    p.add_argument("--skip-embedded", action="store_true")
    args = p.parse_args()
    comfy = Path(os.environ["COMFYUI_PATH"]).expanduser()
    work = Path(tempfile.mkdtemp(prefix="wanmask_bench_batch_"))
    load = os.getloadavg()
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPU(s), load {load[0]:.1f}, ComfyUI at {comfy.name}, python {platform.python_version()}")
    t = time.perf_counter()
    servers = start_servers(3, comfy, args.models.expanduser(), work)
    print(f"3 servers up in {time.perf_counter() - t:.1f} s")
    try:
        result = {"overhead": overhead(servers[0], work, args.small, args.big, args.repeats)}
        print(json.dumps(result["overhead"], indent=1))
        result["throughput"] = throughput(servers, work, args.throughput_jobs)
        print(json.dumps(result["throughput"], indent=1))
        if not args.skip_embedded:
            result["first_job"] = first_job(servers[0], work)
            print(json.dumps(result["first_job"], indent=1))
        print(f"load after: {os.getloadavg()[0]:.1f}")
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
