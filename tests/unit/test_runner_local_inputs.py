"""``--set NODE.INPUT=./local/file``: a local file given to an upload input is sent to the ComfyUI that
runs the workflow and the input names the sent copy; other values are passed on as they are."""
from __future__ import annotations

import hashlib
import json

import pytest

from comfyui_wanmasking.tests.unit.stub_comfyui import MASK_INFO, MASK_WORKFLOW, Stub, mask_outputs
from comfyui_wanmasking.wanmask_runner import cli
from comfyui_wanmasking.wanmask_runner.api import run_workflow
from comfyui_wanmasking.wanmask_runner.workflow.errors import WorkflowFormatError


def test_a_local_file_is_sent_and_the_input_names_the_copy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shots").mkdir()
    (tmp_path / "shots" / "mask.png").write_bytes(b"my mask")
    name = f"wanmask-run/{hashlib.sha256(b'my mask').hexdigest()[:12]}-mask.png"
    with Stub(mask_outputs, object_info=MASK_INFO) as stub:
        run_workflow(MASK_WORKFLOW, server=stub.url, overrides=["Mask.image=./shots/mask.png", "2.prefix=a/b"],
                     out_dir=tmp_path / "out", timeout=20)
        sent = stub.bodies[stub.prompts[0]]
    assert stub.uploads == {name: b"my mask"}
    assert sent["1"]["inputs"]["image"] == name
    assert sent["2"]["inputs"]["prefix"] == "a/b"  # a text input with a slash: not a file, passed on


def test_a_bare_name_stays_a_name_of_comfyuis_input_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Stub(mask_outputs, object_info=MASK_INFO) as stub:
        run_workflow(MASK_WORKFLOW, server=stub.url, overrides=["Mask.image=on_server.png"], timeout=20)
        assert stub.uploads == {} and stub.bodies[stub.prompts[0]]["1"]["inputs"]["image"] == "on_server.png"


def test_a_path_to_no_file_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with Stub(mask_outputs, object_info=MASK_INFO) as stub:
        with pytest.raises(WorkflowFormatError, match=r"no file at .*missing\.png"):
            run_workflow(MASK_WORKFLOW, server=stub.url, overrides=["1.image=shots/missing.png"], timeout=20)
        wf = tmp_path / "wf.json"
        wf.write_text(json.dumps(MASK_WORKFLOW))
        code = cli.main([str(wf), "--server", stub.url, "--quiet", "--set", "1.image=shots/missing.png"])
        assert code == 2 and "no file at" in capsys.readouterr().err
        assert stub.prompts == [] and stub.uploads == {}
