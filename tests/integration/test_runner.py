"""The headless runner and the example workflows against a real ComfyUI (server and embedded)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from comfyui_wanmasking.tests.integration.comfy_server import run_cli
from comfyui_wanmasking.tests.unit.stub_comfyui import loop_workflow
from comfyui_wanmasking.tests.integration.examples import (
    API_EXAMPLES, REPO, applies, for_this_comfyui, provide_media, tiny_example, write_tiny_example,
)
from comfyui_wanmasking.wanmask_runner.demo_data import write_clip
from comfyui_wanmasking.wanmask_runner.demo_data import fast_motion_clip
from comfyui_wanmasking.wanmask_runner.example_names import ui_example
from comfyui_wanmasking.wanmask_runner.workflow.convert import ui_to_api
from comfyui_wanmasking.wanmask_runner.workflow.validate import check_against_object_info

@pytest.fixture(scope="module")
def demo_inputs(server):
    """The synthetic fast-motion clip and mask, in the server's input folder."""
    provide_media(tiny_example("t2v_fast_motion_inpaint"), server.base / "input")
    return server.base / "input"


def tiny_t2v_file(tmp_path) -> Path:
    path = tmp_path / "t2v_tiny.json"
    path.write_text(json.dumps(tiny_example("t2v_fast_motion_inpaint")))
    return path


def skip_unless_for_this_comfyui(api_file, object_info):
    if not applies(api_file, object_info):
        pytest.skip(f"{api_file.name} is made for the other tested ComfyUI version (nodes missing here)")


def test_every_comfyui_gets_every_example_scenario(object_info):
    """Only the two LoRA training examples exist per version (their save node was renamed in 0.33)."""
    ours = [p.stem for p in API_EXAMPLES if applies(p, object_info)]
    assert len(ours) == len(API_EXAMPLES) - 2, ours
    assert sorted(name for name in ours if name.startswith("masked_lora_training")) in (
        ["masked_lora_training", "masked_lora_training_dataset"],
        ["masked_lora_training_comfyui_0_3", "masked_lora_training_dataset_comfyui_0_3"])


@pytest.mark.parametrize("api_file", API_EXAMPLES, ids=lambda p: p.stem)
def test_example_validates_against_object_info(api_file, object_info):
    skip_unless_for_this_comfyui(api_file, object_info)
    api = json.loads(api_file.read_text())
    assert check_against_object_info(api, object_info, check_choices=False) == []
    mine = for_this_comfyui(api, object_info)
    for nid, node in mine.items():   # every input present, none this ComfyUI lacks
        spec = object_info[node["class_type"]]["input"]
        assert set(spec.get("required", {})) <= set(node["inputs"]) or node["class_type"] == "SaveVideo", nid
    ui_file = ui_example(api_file.stem)
    assert ui_file.exists(), f"no UI-format twin for {api_file.name}: run python -m wanmask_runner.write_ui_examples"
    ui = json.loads(ui_file.read_text())
    def essentials(prompt):
        return {nid: (n["class_type"], n["inputs"]) for nid, n in prompt.items()}
    assert essentials(ui_to_api(ui, object_info)) == essentials(mine), "UI twin out of date"
    loaders = [n for n in ui["nodes"] if any(isinstance(v, str) and v.endswith(".safetensors")
                                             for v in n.get("widgets_values") or [])]
    assert loaders, "the example loads no model"
    for n in loaders:   # download links, as the official templates carry them
        models = n.get("properties", {}).get("models")
        assert models and all(m["url"].startswith("https://") and m["directory"] and m["name"] in n["widgets_values"]
                              for m in models), (n["id"], n["type"])


def test_loop_nodes_name_the_comfyui_that_has_them(server, object_info, tmp_path):
    """ComfyUI's StartLoop / EndLoop came after 0.33: a workflow saved with them, run on a tested ComfyUI,
    is refused before anything is queued, by a message that names the ComfyUI that has them (their
    conversion where a server has them: tests/unit/test_workflow_loop_nodes.py)."""
    if "StartLoop" in object_info or "EndLoop" in object_info:
        pytest.skip("this ComfyUI has the loop nodes: tests/unit/test_workflow_loop_nodes.py covers their conversion")
    workflow = tmp_path / "loop.json"
    workflow.write_text(json.dumps(loop_workflow("For", loop_first=True)))
    r = run_cli(workflow, "--server", server.url, "--out", tmp_path / "out", timeout=300)
    assert r.returncode == 2, (r.stdout + r.stderr)[-3000:]
    assert "node 2: type 'StartLoop' is ComfyUI's own loop node (Start Loop / End Loop" in r.stderr, r.stderr[-3000:]
    assert "added after ComfyUI 0.33.0: ComfyUI 0.36.0 and newer have it" in r.stderr
    assert "custom node pack" not in r.stderr and not (tmp_path / "out").exists()
    api = {"1": {"class_type": "StartLoop", "inputs": {"mode": "simple", "mode.num_iterations": 2}},
           "2": {"class_type": "EndLoop", "inputs": {"accumulate": False}}}
    problems = check_against_object_info(api, object_info)
    assert len(problems) == 2 and all("ComfyUI 0.36.0 and newer have it" in p for p in problems), problems
    api["3"] = {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}  # an API prompt: the server refuses it
    (tmp_path / "loop_api.json").write_text(json.dumps(api))
    r = run_cli(tmp_path / "loop_api.json", "--server", server.url, timeout=300)
    assert r.returncode == 2, (r.stdout + r.stderr)[-3000:]
    assert "is ComfyUI's own loop node" in r.stderr and "ComfyUI 0.36.0 and newer have it" in r.stderr, r.stderr[-3000:]


# Every example runs through the server; the embedded runner (a ComfyUI started in-process for each
# run, ~25 s on the CI machine) runs the examples whose graphs differ in kind: sampling with masks,
# a subgraph, and the two training examples (a folder set; a single clip), so CI stays within its time.
EMBEDDED_EXAMPLES = {"t2v_fast_motion_inpaint", "t2v_inpaint_mask_subgraph", "masked_lora_training_dataset",
                     "masked_lora_training_dataset_comfyui_0_3", "masked_lora_training",
                     "masked_lora_training_comfyui_0_3"}
EXAMPLE_RUNS = [(api_file, mode) for api_file in API_EXAMPLES for mode in ("server", "embedded")
                if mode == "server" or api_file.stem in EMBEDDED_EXAMPLES]


@pytest.mark.parametrize("api_file, mode", EXAMPLE_RUNS, ids=lambda v: v.stem if isinstance(v, Path) else v)
def test_example_runs_end_to_end_through_the_runner(api_file, mode, server, tmp_path, object_info):
    skip_unless_for_this_comfyui(api_file, object_info)
    workflow = write_tiny_example(api_file.stem, server, tmp_path)
    out = tmp_path / "out"
    where = ["--server", server.url] if mode == "server" else server.embedded_args(tmp_path / "temp")
    # --set by class name needs exactly one node of that class (two chunks have two KSamplers)
    seed = ["--set", "KSampler.seed=3"] if workflow.read_text().count('"KSampler"') == 1 else []
    previews, local = [], []
    if api_file.stem == "t2v_fast_motion_inpaint":  # previews asked for; the mask clip given as a local file
        previews = ["--previews"]
        shutil.copy(server.base / "input" / "wanmask_fast_motion_mask.mp4", tmp_path / f"my_mask_{mode}.mp4")
        local = ["--set", f"9.file={tmp_path / f'my_mask_{mode}.mp4'}"]
    r = run_cli(workflow, *where, "--out", out, *seed, *previews, *local)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "done: prompt" in r.stdout
    files = sorted(p.name for p in out.rglob("*") if p.is_file()) if out.exists() else []
    temp = [p.relative_to(out).parts[0] for p in out.rglob("*_temp_*")] if out.exists() else []
    assert temp == ["previews"] * len(temp) and (temp or not previews)  # previews only when asked, apart
    if api_file.stem == "t2v_fast_motion_inpaint":
        sent = list((server.base / "input" / "wanmask-run").glob(f"*-my_mask_{mode}.mp4"))
        assert len(sent) == 1 and f"as wanmask-run/{sent[0].name}" in r.stderr, r.stderr[-2000:]
        assert any(f.endswith(".mp4") for f in files) and sum("_temp_" in f and f.endswith(".png") for f in files) == 17
        if mode == "server":
            assert "3/3" in r.stderr  # the progress bar saw the sampler's steps over the websocket
    elif api_file.stem == "animate_long_video_chunks":
        from PIL import Image
        webp = [f for f in files if f.endswith(".webp")]
        assert len(webp) == 1, files
        with Image.open(out / webp[0]) as video:  # chunk 1 (9 frames) + chunk 2 minus its 5 motion frames
            assert video.n_frames == 9 + 9 - 5
    else:  # a saved file, or previews only (0.3.x's SaveLoRANode lists no file; its loss graph is a preview)
        assert files or "preview image(s) not written (--previews" in r.stdout, "the example gave no output file"


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


DEAD_WORKER_SCRIPT = r"""
import sys, time
from wanmask_runner.embedded_backend import EmbeddedBackend, WorkerDied  # as run from a checkout
from wanmask_runner.api import run_workflow
backend = EmbeddedBackend.get(sys.argv[1], sys.argv[2:])
assert backend.worker is not None and backend.worker.is_alive(), "the worker thread was not found"
backend.server.prompt_queue.put(("not", "a queue item"))   # the worker dies on it (IndexError)
backend.worker.join(30)
start = time.monotonic()
prompt = {"1": {"class_type": "WanMaskTemporal", "inputs": {"length": 5, "width": 8, "height": 8, "keep": "0-0"}},
          "2": {"class_type": "MaskToImage", "inputs": {"mask": ["1", 0]}},
          "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
try:
    run_workflow(prompt, backend=backend, timeout=600)
except WorkerDied as e:
    print("WORKER_DIED", round(time.monotonic() - start, 1), e)
"""


def test_embedded_runner_reports_a_dead_worker_instead_of_hanging(server, tmp_path):
    """ComfyUI's prompt worker thread can die (0.33's worker raised IndexError on the 5-tuple the runner
    used to queue, and the runner then waited forever). The backend now notices, within seconds."""
    args = [str(a).replace("--comfy-arg=", "") for a in server.embedded_args(tmp_path / "temp")[2:]]
    r = subprocess.run([sys.executable, "-c", DEAD_WORKER_SCRIPT, str(server.comfy), *args], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("WORKER_DIED")), None)
    assert line, (r.stdout + r.stderr)[-3000:]
    assert float(line.split()[1]) < 10 and "prompt worker thread died" in line


def test_embedded_runner_bounds_its_wait(server, demo_inputs, tmp_path):
    """A run that outlasts --timeout ends with exit 1 and says so (the sampler takes longer than 1 s here)."""
    r = run_cli(tiny_t2v_file(tmp_path), *server.embedded_args(tmp_path / "temp"), "--out", tmp_path / "o",
                "--timeout", "1",
                "--set", "KSampler.steps=50", timeout=600)
    assert r.returncode == 1, (r.stdout + r.stderr)[-3000:]
    assert "did not finish in 1s" in r.stderr
