"""The headless runner and the example workflows against a real ComfyUI (server and embedded)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wanmask_runner.demo import CLIP_FILE, MASK_FILE, write_clip
from wanmask_runner.demo_data import fast_motion_clip
from wanmask_runner.tiny import tiny_graph
from wanmask_runner.workflow_format import check_against_object_info, ui_to_api

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "example_workflows"
API_EXAMPLES = sorted((EXAMPLES / "api").glob("*.json"))
ZERO_COND = ("WanMaskTestZeroConditioning", {"tokens": 8})


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "wanmask_runner", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def object_info(server):
    return server.get("/object_info")


@pytest.fixture(scope="module")
def demo_inputs(server):
    """The synthetic fast-motion clip and mask, in the server's input folder."""
    inputs = server.base / "input"
    inputs.mkdir(exist_ok=True)
    images, mask = fast_motion_clip(17, 64, 64)
    write_clip(inputs / CLIP_FILE, images)
    write_clip(inputs / MASK_FILE, mask.unsqueeze(-1).expand(-1, -1, -1, 3))
    return inputs


def tiny_t2v_file(tmp_path) -> Path:
    prompt = tiny_graph(json.loads((EXAMPLES / "api" / "t2v_fast_motion_inpaint.json").read_text()), ZERO_COND)
    path = tmp_path / "t2v_tiny.json"
    path.write_text(json.dumps(prompt))
    return path


@pytest.mark.parametrize("api_file", API_EXAMPLES, ids=lambda p: p.stem)
def test_example_validates_against_object_info(api_file, object_info):
    api = json.loads(api_file.read_text())
    assert check_against_object_info(api, object_info, check_choices=False) == []
    ui_file = EXAMPLES / api_file.name
    assert ui_file.exists(), f"no UI-format twin for {api_file.name}: run python -m wanmask_runner.ui_twins"
    assert ui_to_api(json.loads(ui_file.read_text()), object_info) == api, "UI twin out of date"


def test_t2v_example_runs_through_the_runner_on_a_server(server, demo_inputs, tmp_path):
    out = tmp_path / "out"
    r = run_cli(tiny_t2v_file(tmp_path), "--server", server.url, "--out", out, "--set", "KSampler.seed=3")
    assert r.returncode == 0, r.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert any(f.endswith(".mp4") for f in files), files
    assert sum(f.startswith("WanMaskPreview") for f in files) == 17
    assert "done: prompt" in r.stdout and "/4" not in r.stderr  # 3 steps in the tiny graph
    assert "[" in r.stderr and "3/3" in r.stderr  # the progress bar saw the sampler steps


def test_t2v_example_runs_embedded(server, demo_inputs, tmp_path):
    out = tmp_path / "out"
    r = run_cli(tiny_t2v_file(tmp_path), "--comfyui", server.comfy, "--out", out, "--quiet",
                "--comfy-arg=--cpu", f"--comfy-arg=--base-directory={server.base}",
                "--comfy-arg=--database-url=sqlite:///:memory:", "--comfy-arg=--disable-api-nodes")
    assert r.returncode == 0, r.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert any(f.endswith(".mp4") for f in files) and sum(f.startswith("WanMaskPreview") for f in files) == 17


def test_invalid_workflow_exits_2_with_readable_node_errors(server, demo_inputs, tmp_path):
    r = run_cli(tiny_t2v_file(tmp_path), "--server", server.url, "--out", tmp_path / "o",
                "--set", "15.temporal=median")
    assert r.returncode == 2
    assert "node 15 (WanMaskToLatent) input temporal" in r.stderr and "median" in r.stderr


def test_failing_workflow_exits_1_and_names_the_node(server, demo_inputs, tmp_path):
    # a 9-frame mask for a 17-frame clip: WanMaskToLatent refuses it before sampling
    _, short = fast_motion_clip(9, 64, 64)
    write_clip(demo_inputs / "wanmask_short_mask.mp4", short.unsqueeze(-1).expand(-1, -1, -1, 3))
    r = run_cli(tiny_t2v_file(tmp_path), "--server", server.url, "--out", tmp_path / "o",
                "--set", "9.file=wanmask_short_mask.mp4")
    assert r.returncode == 1, r.stderr[-2000:]
    assert "(WanMaskToLatent) failed" in r.stderr and "mask: 9 frames" in r.stderr


def test_bad_set_syntax_exits_2(tmp_path, server):
    r = run_cli(tiny_t2v_file(tmp_path), "--server", server.url, "--set", "steps=4")
    assert r.returncode == 2 and "expected NODE.INPUT=VALUE" in r.stderr
