"""ComfyUI's loop nodes (StartLoop / EndLoop, after 0.33): converted as ordinary nodes where the server has
them, as the frontend does (comfyui-frontend-package 1.58.1's graphToPrompt has no loop-specific code; see
wanmask_runner/workflow/newer_core_nodes.py); where it lacks them, the error says which ComfyUI has them.
The servers without them (0.3.64, 0.33.0) are tested in tests/integration/test_runner.py."""
from __future__ import annotations

import copy
import re

import pytest

from comfyui_wanmasking.tests.unit.stub_comfyui import LOOP_NODES_INFO, loop_workflow
from comfyui_wanmasking.wanmask_runner.workflow.convert import ui_to_api
from comfyui_wanmasking.wanmask_runner.workflow.errors import WorkflowFormatError
from comfyui_wanmasking.wanmask_runner.workflow.newer_core_nodes import refusal_hint
from comfyui_wanmasking.wanmask_runner.workflow.validate import check_against_object_info

WITHOUT_LOOPS = {k: v for k, v in LOOP_NODES_INFO.items() if k not in ("StartLoop", "EndLoop")}


def inputs(prompt: dict) -> dict:
    return {nid: (n["class_type"], n["inputs"]) for nid, n in prompt.items()}


def test_loop_nodes_convert_as_ordinary_nodes_with_their_dynamic_inputs():
    prompt = ui_to_api(loop_workflow("For"), LOOP_NODES_INFO)
    assert inputs(prompt) == {
        "1": ("Const", {"value": 5}),
        # the dynamic combo's chosen option brings its widgets, named mode.<input>; cache_iterations follows
        "2": ("StartLoop", {"mode": "For", "mode.start_iteration_index": 2, "mode.max_iteration": 14, "mode.step": 3,
                            "cache_iterations": False, "initial_iteration_value": ["1", 0]}),
        "3": ("Mul", {"b": 10, "a": ["2", 0]}),
        "4": ("Check", {"value": ["2", 4]}),
        # the autogrow sockets go by the names the frontend saved; the unlinked termination1 is left out
        "5": ("EndLoop", {"accumulate": True, "output_value": ["3", 0], "next_iteration_value": ["3", 0],
                          "terminations.termination0": ["4", 0]}),
        "6": ("Show", {"value": ["5", 0]}),
    }
    assert prompt["2"]["_meta"] == {"title": "Start Loop"} and prompt["5"]["_meta"] == {"title": "End Loop"}
    assert not any(k.startswith("_loop") for n in prompt.values() for k in n)  # the server works the loop out
    assert check_against_object_info(prompt, LOOP_NODES_INFO) == []


def test_a_promoted_loop_widget_takes_its_link():
    """The official templates link a value into StartLoop's num_iterations (a widget with a socket)."""
    prompt = ui_to_api(loop_workflow("simple"), LOOP_NODES_INFO)
    assert prompt["2"]["inputs"] == {"mode": "simple", "mode.num_iterations": ["1", 0], "cache_iterations": False,
                                     "initial_iteration_value": ["1", 0]}


def test_the_offline_check_still_sees_wrong_links_into_loop_nodes():
    info = copy.deepcopy(LOOP_NODES_INFO)
    info["EndLoop"]["input"]["optional"]["output_value"][1]["template"]["allowed_types"] = "IMAGE,MASK"
    prompt = ui_to_api(loop_workflow("For"), info)
    assert check_against_object_info(prompt, info) == [
        "node 5: input 'output_value' wants COMFY_MATCHTYPE_V3, node 3 gives INT"]


@pytest.mark.parametrize("loop_first", [True, False])
def test_a_server_without_loop_nodes_is_told_which_comfyui_has_them(loop_first):
    with pytest.raises(WorkflowFormatError) as err:
        ui_to_api(loop_workflow("For", loop_first=loop_first), WITHOUT_LOOPS)
    msg = str(err.value)
    assert re.match(r"node (2: type 'StartLoop'|5: type 'EndLoop') is ComfyUI's own loop node \(Start Loop / End Loop", msg)
    assert "added after ComfyUI 0.33.0: ComfyUI 0.36.0 and newer have it" in msg and "update ComfyUI" in msg
    assert "custom node pack" not in msg


def test_an_api_prompt_with_loop_nodes_is_checked_against_a_server_without_them():
    prompt = ui_to_api(loop_workflow("For"), LOOP_NODES_INFO)
    unknown = [p for p in check_against_object_info(prompt, WITHOUT_LOOPS) if "unknown type" in p]
    assert [p.split(":")[0] for p in unknown] == ["node 2", "node 5"]
    assert all("ComfyUI 0.36.0 and newer have it" in p for p in unknown)
    assert "unknown type 'Gone'" in check_against_object_info({"7": {"class_type": "Gone", "inputs": {}}}, {})[0]


@pytest.mark.parametrize("error", [
    {"type": "missing_node_type", "message": "Node 'Start Loop' not found. The custom node may not be installed.",
     "details": "Node ID '#2'", "extra_info": {"node_id": "2", "class_type": "StartLoop", "node_title": "Start Loop"}},
    {"type": "invalid_prompt", "message": "Cannot execute because node EndLoop does not exist.",
     "details": "Node ID '#5'", "extra_info": {}},
], ids=["0.33", "0.3.64"])
def test_the_servers_refusal_of_a_loop_node_gets_a_hint_naming_the_comfyui_that_has_it(error):
    hint = refusal_hint(error)
    assert hint.startswith(f"  type '{error['extra_info'].get('class_type', 'EndLoop')}' is ComfyUI's own loop node")
    assert "ComfyUI 0.36.0 and newer have it" in hint


def test_other_refusals_get_no_loop_hint():
    assert refusal_hint({"type": "missing_node_type", "message": "Node 'X' not found.",
                         "extra_info": {"class_type": "SomePackNode"}}) is None
    assert refusal_hint({"type": "invalid_prompt", "message": "Cannot execute because node StartLoopX does not exist."}) is None
    assert refusal_hint({"type": "prompt_outputs_failed_validation", "message": "StartLoop"}) is None
    assert refusal_hint(None) is None
