"""A UI-format workflow with a subgraph (nested, with a promoted widget and a bypassed node inside)
runs through the runner, server and embedded modes: ComfyUI accepts the converted prompt, runs the
nodes inside the subgraph, and the outputs land under --out in their subfolder; --set reaches a
node inside the subgraph by its id path."""
from __future__ import annotations

import json

import pytest

from comfyui_wanmasking.tests.integration.built_workflows import built
from comfyui_wanmasking.tests.integration.comfy_server import run_cli


def latents(out):
    """The saved latents under out: path relative to out -> shape."""
    from safetensors.torch import load_file

    return {str(p.relative_to(out)): tuple(load_file(p)["latent_tensor"].shape) for p in sorted(out.rglob("*.latent"))}


@pytest.mark.parametrize("mode", ["server", "embedded"])
def test_a_subgraph_workflow_runs_through_the_runner(server, tmp_path, mode):
    workflow = tmp_path / "subgraph.json"
    workflow.write_text(json.dumps(built("subgraph")))
    out = tmp_path / "out"
    where = ["--server", server.url] if mode == "server" else server.embedded_args(tmp_path / "temp")
    # node 21 inside the instance 10: the promoted width (640 on the instance) and, by id path, its height
    r = run_cli(workflow, *where, "--out", out, "--set", "10:21.height=128", "--quiet", timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    shapes = latents(out)
    # SaveLatent's prefixes latents/a and latents/b: the server's subfolder "latents" is kept
    assert [name.split("_")[0] for name in shapes] == ["latents/a", "latents/b"], shapes
    a, b = shapes.values()
    assert a[0] == 2 and a[2:] == (128 // 8, 640 // 8)  # EmptyLatentImage inside, width promoted
    assert b[0] == 1 and b[2:] == (256 // 8 * 2, 256 // 8 * 2)  # the root latent, upscaled x2 inside


def test_a_bypassed_node_inside_a_subgraph_passes_its_input_through(server, tmp_path):
    from comfyui_wanmasking.wanmask_runner.api import run_workflow

    result = run_workflow(built("bypassed_node_inside"), server=server.url, out_dir=tmp_path, timeout=300)
    assert result.ok
    b = next(shape for name, shape in latents(tmp_path).items() if name.startswith("latents/b_"))
    assert b[0] == 1 and b[2:] == (256 // 8, 256 // 8)  # the upscale inside is bypassed


@pytest.mark.parametrize("mode", ["server", "embedded"])
def test_a_retired_node_is_replaced_as_the_server_registers_and_runs(server, tmp_path, mode):
    """A saved node whose type this ComfyUI lacks (the test helpers' WanMaskTestRetiredLatent),
    with a replacement the server registers (EmptyLatentImage, w -> width, h -> height): the runner
    replaces it, as the frontend's "Replace All" does, says so, and the prompt runs."""
    from comfyui_wanmasking.tests.integration.built_workflows import retired_latent
    from comfyui_wanmasking.wanmask_runner.server_backend import ServerBackend

    if not ServerBackend(server.url).node_replacements():
        pytest.skip("this ComfyUI registers no node replacements (/node_replacements is new in ComfyUI 0.33)")
    workflow = tmp_path / "retired.json"
    workflow.write_text(json.dumps(retired_latent()))
    out = tmp_path / "out"
    where = ["--server", server.url] if mode == "server" else server.embedded_args(tmp_path / "temp")
    r = run_cli(workflow, *where, "--out", out, "--quiet", timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "node 1 'Old latent': type 'WanMaskTestRetiredLatent' is not on this ComfyUI; replaced by " \
           "'EmptyLatentImage'" in r.stderr, r.stderr[-2000:]
    (shape,) = latents(out).values()
    assert shape[2:] == (192 // 8, 320 // 8)  # the old widgets w, h became width, height
