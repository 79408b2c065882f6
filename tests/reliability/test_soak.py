"""A soak of sequential headless runs of the I2V example through the runner's Python API: every run
succeeds and the server's memory stays flat after warm-up."""
from __future__ import annotations

import pytest

from comfyui_wanmasking.tests.integration.examples import write_tiny_example
from comfyui_wanmasking.wanmask_runner import run_workflow

RUNS, WARMUP = 20, 5   # 15 runs after warm-up: a steady leak above 0.33% per run fails (50 runs cost CI 9 min)


def test_repeated_i2v_runs_keep_server_memory_flat(server, tmp_path):
    psutil = pytest.importorskip("psutil", reason="psutil is not installed")
    workflow = write_tiny_example("i2v_first_last_keyframes", server, tmp_path)
    proc = psutil.Process(server.proc.pid)
    rss = []
    for i in range(RUNS):
        # A new seed each run, as a batch would: the sampler, decode and save run again every time.
        result = run_workflow(workflow, server=server.url, overrides=[f"KSampler.seed={i}"], out_dir=tmp_path / "out")
        assert result.ok and result.files, f"run {i}: {result.describe()}"
        rss.append(proc.memory_info().rss)
    growth = rss[-1] / rss[WARMUP - 1] - 1
    assert growth < 0.05, f"RSS grew {100 * growth:.1f}% from run {WARMUP} to run {RUNS}: {[r >> 20 for r in rss]} MiB"
