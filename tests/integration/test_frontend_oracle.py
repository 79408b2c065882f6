"""The frontend is the oracle: workflows load in this ComfyUI's own frontend (headless Chromium),
and the runner's UI -> API conversion (``ui_to_api``) gives the prompt ``app.graphToPrompt()``
gives, node for node (ids, class types and the inputs the nodes declare).

The workflows: a fixed sample of ComfyUI's published templates (package
``comfyui-workflow-templates-json``; none whose file name holds "video", "wan" or "vace", which are
kept for acceptance), chosen for subgraphs (nested, bypassed, with promoted widgets, with node ids
the frontend renumbers), PrimitiveNodes, reroutes, V3 dynamic inputs and the frontend's own
widgets; this pack's UI examples; and the small workflows of built_workflows.py for the corners
the templates miss (a PrimitiveNode linked to an instance, muted and bypassed instances, nested
ones, colliding ids, reroutes inside a subgraph). A template that uses nodes this test server lacks (API
nodes, nodes newer than this ComfyUI) is skipped with their names. The few differences that are
the frontend's own misreading of a workflow saved by a newer frontend are listed in KNOWN with the
reason, and asserted to be exactly those.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path

import pytest

from comfyui_wanmasking.tests.integration.built_workflows import BUILT, built
from comfyui_wanmasking.tests.integration.test_frontend import LOAD_AND_INSPECT, UI_EXAMPLES, browser, dialogs  # noqa: F401
from comfyui_wanmasking.wanmask_runner.server_backend import ServerBackend
from comfyui_wanmasking.wanmask_runner.workflow_format import _version, declared_input_names, ui_to_api

HELD_BACK = ("video", "wan", "vace")  # templates kept out of this test (the acceptance set)
SAMPLE = [
    # subgraphs: nested, bypassed instances in the root graph and inside subgraphs
    "flux1_dev_uso_reference_image_gen.json", "flux_depth_lora_example.json",
    "templates-1_click_multiple_scene_angles-v1.0.json", "image_netayume_lumina_t2i.json",
    "image_qwen_image_instantx_inpainting_controlnet.json", "image_flux.1_fill_dev_OneReward.json",
    "flux_kontext_dev_basic.json", "image_z_image_turbo_fun_union_controlnet.json",
    "image_qwen_image_instantx_controlnet.json", "image_qwen_image_edit_2509_relight.json",
    "sd3.5_large_depth.json", "flux_dev_checkpoint_example.json", "image_lotus_depth_v1_1.json",
    "image_kandinsky5_t2i.json", "templates-image_to_real.json",
    # node ids inside a subgraph that collide with root ids (renumbered by today's frontend)
    "image_newbieimage_exp0_1-t2i.json", "image_flux2_klein_text_to_image.json",
    # promoted widgets: instance widgets_values, proxyWidgets, subgraph inputs unlinked on the instance
    "template_qwen_image_illustration_lora.json", "image_ovis_text_to_image.json",
    "3d_moge_panorama_to_mesh.json", "basic_switch_node.json",
    "templates-1_click_multiple_character_angles-v1.0.json", "image_flux2_klein_image_edit_4b_distilled.json",
    # PrimitiveNode, legacy Reroute nodes, bypassed nodes
    "hidream_e1_1.json", "hidream_e1_full.json", "flux_redux_model_example.json",
    "sdxl_refiner_prompt_example.json", "audio_ace_step1_5_xl_turbo.json",
    "image_qwen_image_controlnet_patch.json", "3d_hunyuan3d_multiview_to_model.json",
    # V3 dynamic combos (a combo's seed has no control value), widgetType, the frontend's own widgets
    "llm_gemma4_text_gen.json", "template_ltx2_3_ic_lora_ingredients.json",
    "3d_triposplat_image_to_gaussian_splat.json", "basic_image_color_adjustment.json",
    "image_anima_lllite_image_inpainting.json", "utility_interpolation_image_upscale.json",
    # plain graphs
    "audio_stable_audio_example.json", "audio_ace_step_1_t2a_song.json",
    "basic_mask_operations_and_compositing.json", "sdxl_revision_text_prompts.json",
]
# Differences that are the frontend's, per template: (up to this frontend version, the inputs
# {(node id, input)} that differ, why). The runner keeps the values saved in the workflow.
_NEWER_SAVE = ("frontend 1.27 misreads this workflow saved by a newer frontend: the KSampler inside the "
               "subgraph (its steps and cfg promoted) gets its seed as steps and its steps as cfg")
KNOWN = {
    "image_ovis_text_to_image.json": ((1, 27, 10), {("57:44", "steps"), ("57:44", "cfg")}, _NEWER_SAVE),
    "template_qwen_image_illustration_lora.json": ((1, 27, 10), {("76:3", "steps"), ("76:3", "cfg")}, _NEWER_SAVE),
}


class OracleSummary(UserWarning):
    """The counts of this test: converted identically, differing (known), skipped."""


def templates_dir() -> Path | None:
    """The templates of comfyui-workflow-templates-json: this venv's, $WANMASK_TEMPLATES, or a
    sibling venv's (the CI's venvs differ per ComfyUI version)."""
    spec = importlib.util.find_spec("comfyui_workflow_templates_json")
    if spec and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0]) / "templates"
    if os.environ.get("WANMASK_TEMPLATES"):
        return Path(os.environ["WANMASK_TEMPLATES"])
    found = sorted(Path(sys.prefix).parent.glob("*/lib/python*/site-packages/comfyui_workflow_templates_json/templates"))
    return found[0] if found else None


CASES = [f"template:{n}" for n in SAMPLE] + [f"example:{p.name}" for p in UI_EXAMPLES] + [f"built:{n}" for n in BUILT]
assert not any(h in n.lower() for n in SAMPLE for h in HELD_BACK)
assert len(set(SAMPLE)) == len(SAMPLE) <= 40


def load_case(case: str) -> dict:
    kind, name = case.split(":", 1)
    if kind == "built":
        return built(name)
    if kind == "example":
        return json.loads(next(p for p in UI_EXAMPLES if p.name == name).read_text())
    folder = templates_dir()
    if folder is None or not (folder / name).is_file():
        pytest.skip("the templates are not installed (pip install comfyui-workflow-templates-json)")
    return json.loads((folder / name).read_text())


def essentials(prompt: dict, reference: dict, object_info: dict) -> dict:
    """node id -> (class type, inputs the node declares here, chosen by the frontend's values)."""
    out = {}
    for nid, node in prompt.items():
        info = object_info.get(node.get("class_type"))
        names = declared_input_names(info, (reference.get(nid) or node)["inputs"]) if info else set(node["inputs"])
        out[nid] = (node.get("class_type"), {k: v for k, v in node["inputs"].items() if k in names})
    return out


# Widgets only for the frontend's previews, which it sends too though no node declares them (the
# server ignores them); any other input the frontend sends and the runner does not is a difference.
PREVIEW_WIDGETS = {"video-preview", "audioUI"}
PREVIEW_WIDGETS_OF = {"SaveGLB": {"image"}, "Preview3D": {"image"}, "PreviewAny": {"preview"}}


def differences(mine: dict, frontend: dict, object_info: dict) -> set:
    """{(node id, input or '<node>' or '<class_type>')} where the runner and the frontend disagree:
    on the inputs the nodes declare, and on undeclared ones the frontend sends (other than its
    preview widgets; CustomCombo takes any input and reads its index from one)."""
    a, b = essentials(mine, frontend, object_info), essentials(frontend, frontend, object_info)
    diffs = set()
    for nid, node in frontend.items():
        extra = set(node["inputs"]) - set(b[nid][1]) - PREVIEW_WIDGETS - PREVIEW_WIDGETS_OF.get(node.get("class_type"), set())
        diffs |= {(nid, k) for k in extra if mine.get(nid, {}).get("inputs", {}).get(k, "<absent>") != node["inputs"][k]}
    for nid in set(a) | set(b):
        if nid not in a or nid not in b:
            diffs.add((nid, "<node>"))
        elif a[nid][0] != b[nid][0]:
            diffs.add((nid, "<class_type>"))
        else:
            diffs |= {(nid, k) for k in set(a[nid][1]) | set(b[nid][1])
                      if a[nid][1].get(k, "<absent>") != b[nid][1].get(k, "<absent>")}
    return diffs


@pytest.fixture(scope="module")
def object_info(server):
    return server.get("/object_info")


@pytest.fixture(scope="module")
def frontend_version(server):
    version = ServerBackend(server.url).frontend_version()
    assert version, "the server does not say which frontend it serves (/system_stats)"
    return version


@pytest.fixture(scope="module")
def oracle_browser(server, request):
    for setting in ("Comfy.Workflow.ShowMissingNodesWarning", "Comfy.Workflow.ShowMissingModelsWarning"):
        server.post(f"/settings/{setting}", False)  # no dialogs piling up over 50 loads
    return request.getfixturevalue("browser")


@pytest.fixture(scope="module")
def tally(frontend_version):
    counts = {"identical": [], "differ": [], "skipped": []}
    yield counts
    lines = [f"frontend oracle ({frontend_version}): {len(counts['identical'])} converted identically, "
             f"{len(counts['differ'])} differ (known, with reasons), {len(counts['skipped'])} skipped"]
    lines += [f"  differs: {name}: {why}" for name, why in counts["differ"]]
    lines += [f"  skipped: {name}: {why}" for name, why in counts["skipped"]]
    warnings.warn(OracleSummary("\n".join(lines)))  # shown in pytest's warnings summary


@pytest.mark.parametrize("case", CASES)
def test_runner_converts_like_the_frontend(oracle_browser, object_info, frontend_version, tally, case):
    workflow = load_case(case)
    result = oracle_browser.execute_async_script(LOAD_AND_INSPECT, workflow)
    assert "error" not in result, result.get("error")
    if dialogs(oracle_browser):
        from selenium.webdriver.common.keys import Keys
        oracle_browser.find_element("tag name", "body").send_keys(Keys.ESCAPE)
    frontend = result["output"]
    missing = sorted({str(n.get("class_type")) for n in frontend.values() if n.get("class_type") not in object_info})
    if missing:  # the frontend cannot convert these either (class_type null): nothing to compare
        ui_types = {n.get("type") for n in workflow["nodes"]} | {
            n.get("type") for d in (workflow.get("definitions") or {}).get("subgraphs", []) for n in d["nodes"]}
        lacking = sorted(t for t in ui_types if isinstance(t, str) and t not in object_info and ":" not in t
                         and t not in ("Note", "MarkdownNote", "Reroute", "PrimitiveNode") and len(t) != 36)
        tally["skipped"].append((case, f"nodes this server lacks: {', '.join(lacking[:5]) or missing}"))
        pytest.skip(f"{case}: nodes this server lacks: {', '.join(lacking[:5]) or missing}")
    mine = ui_to_api(workflow, object_info, frontend_version)
    diffs = differences(mine, frontend, object_info)
    upto, known, why = KNOWN.get(case.split(":", 1)[1], (None, set(), ""))
    expected = known if upto is not None and _version(frontend_version) <= upto else set()
    (tally["differ"] if expected else tally["identical"]).append((case, why) if expected else case)
    detail = {nid: (mine.get(nid, {}).get("inputs"), frontend.get(nid, {}).get("inputs"))
              for nid in sorted({d[0] for d in diffs ^ expected})[:3]}
    assert diffs == expected, f"runner vs frontend {frontend_version}: {sorted(diffs)[:10]}\n{detail}"
