"""The frontend is the oracle: workflows load in this ComfyUI's own frontend (headless Chromium),
and the runner's UI -> API conversion (``ui_to_api``) gives the prompt ``app.graphToPrompt()``
gives, node for node (ids, class types and the inputs the nodes declare).

The workflows: every UI-format template of ComfyUI's published templates (package
``comfyui-workflow-templates-json``, the version pinned in pyproject.toml's ``oracle`` extra; none
whose file name holds "video", "wan" or "vace", which are kept for acceptance): subgraphs (nested,
bypassed, with promoted widgets, with node ids the frontend renumbers), PrimitiveNodes, reroutes,
V3 dynamic inputs, the frontend's own widgets; this pack's UI examples; and the small workflows of built_workflows.py for the corners
the templates miss (a PrimitiveNode linked to an instance, muted and bypassed instances, nested
ones, colliding ids, reroutes inside a subgraph). The test server loads ComfyUI's API nodes, as a stock
ComfyUI does; a template that uses nodes it lacks (nodes newer than this ComfyUI, custom nodes) is
skipped with their names, and so is one the frontend itself fails on. The few differences that are
the frontend's own misreading of a workflow are listed in frontend_misreadings.KNOWN with the reason
and the frontend versions, and asserted to be exactly those.

Every test runs twice: against the frontend this ComfyUI pins, and against the newest frontend
(pyproject.toml's ``oracle-frontend`` extra, $WANMASK_NEWEST_FRONTEND, served with --front-end-root;
ComfyUI 0.33 only). Each run has its own server and browser.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path

import pytest

from comfyui_wanmasking.tests.integration.built_workflows import BUILT, built, replaced
from comfyui_wanmasking.tests.integration.frontend_misreadings import KNOWN
from comfyui_wanmasking.tests.integration.test_frontend import LOAD_AND_INSPECT, UI_EXAMPLES, browser, dialogs  # noqa: F401
from comfyui_wanmasking.wanmask_runner.node_replacements import replace_then_convert
from comfyui_wanmasking.wanmask_runner.server_backend import ServerBackend
from comfyui_wanmasking.wanmask_runner.workflow.convert import ui_to_api
from comfyui_wanmasking.wanmask_runner.workflow.versions import parse_version
from comfyui_wanmasking.wanmask_runner.workflow.widgets import VIEWPORT, declared_input_names, input_specs

HELD_BACK = ("video", "wan", "vace")  # templates kept out of this test (the acceptance set)


class OracleSummary(UserWarning):
    """The counts of this test: converted identically, differing (known), skipped."""


def templates_dir() -> Path | None:
    """The templates of comfyui-workflow-templates-json: $WANMASK_TEMPLATES (``.ci/run`` installs the
    version pinned in pyproject.toml's ``oracle`` extra there), this venv's, or a sibling venv's."""
    if os.environ.get("WANMASK_TEMPLATES"):
        return Path(os.environ["WANMASK_TEMPLATES"])
    spec = importlib.util.find_spec("comfyui_workflow_templates_json")
    if spec and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0]) / "templates"
    found = sorted(Path(sys.prefix).parent.glob("*/lib/python*/site-packages/comfyui_workflow_templates_json/templates"))
    return found[0] if found else None


def corpus() -> list[str]:
    """Every UI-format template (a graph with ``nodes``) whose file name holds none of HELD_BACK."""
    folder = templates_dir()
    if folder is None:
        return []
    names = []
    for path in sorted(folder.glob("*.json")):
        if any(h in path.name.lower() for h in HELD_BACK):
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("nodes"), list):
            names.append(path.name)
    return names


TEMPLATES = corpus()
CASES = ([f"template:{n}" for n in TEMPLATES] or ["template:<none installed>"]) + [
    f"example:{p.name}" for p in UI_EXAMPLES] + [f"built:{n}" for n in BUILT]


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


def _without_live_camera(a, b, kind):
    """A 3D viewer's value is its live state when the frontend queues: scene captures its WebGL
    viewer renders and uploads (Load3D), and the live camera, which holds what the node saved
    (``properties["Camera Config"]``, what the runner sends; None when nothing was saved) plus what
    the viewer adds (aspect, frustum, ...). Compared: the saved camera's keys, and the rest but the
    captures."""
    if kind != VIEWPORT or not (isinstance(a, dict) and isinstance(b, dict)):
        return a, b
    captures = {"image", "mask", "normal", "recording"}
    a_cam, b_cam = a.get("camera_info"), b.get("camera_info")
    b_cam = {k: b_cam.get(k) for k in a_cam} if isinstance(a_cam, dict) and isinstance(b_cam, dict) else \
        (None if a_cam is None else b_cam)
    strip = lambda v, cam: {**{k: x for k, x in v.items() if k not in captures}, "camera_info": cam}  # noqa: E731
    return strip(a, a_cam), strip(b, b_cam)


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
            kinds = {name: kind for name, kind, _ in input_specs(object_info.get(a[nid][0]) or {})}
            for k in set(a[nid][1]) | set(b[nid][1]):
                va, vb = _without_live_camera(a[nid][1].get(k, "<absent>"), b[nid][1].get(k, "<absent>"), kinds.get(k))
                if va != vb:
                    diffs.add((nid, k))
    return diffs


# Each test runs against two frontends: the one this ComfyUI pins (its requirements), and the newest
# frontend (the comfyui-frontend-package pinned in pyproject.toml's ``oracle-frontend`` extra; .ci/run
# installs it apart and names it in $WANMASK_NEWEST_FRONTEND), served by the same ComfyUI with
# --front-end-root. The newest frontend targets today's ComfyUI: it runs on 0.33 only.
NEWEST_FRONTEND = "WANMASK_NEWEST_FRONTEND"
# What the newest frontend needs of its server, detected in the tree (never by its version number): the
# node-replacement API (app/node_replace_manager.py, GET /node_replacements) that its missing-node
# dialog and the replacement test use. 0.3.64 (its own frontend 1.27) lacks it.
NEWEST_FRONTEND_NEEDS = Path("app") / "node_replace_manager.py"


def newest_frontend_args(comfy: Path) -> list[str]:
    """``--front-end-root`` for the newest frontend; skips (one line) where it is not installed or
    this ComfyUI lacks what that frontend needs of its server."""
    root = os.environ.get(NEWEST_FRONTEND)
    if not root:
        pytest.skip(f"${NEWEST_FRONTEND} is not set: the newest frontend (comfyui-frontend-package, pyproject's "
                    "oracle-frontend extra) is not installed; .ci/run installs it")
    if not (comfy / NEWEST_FRONTEND_NEEDS).is_file():
        pytest.skip(f"the newest frontend needs the server's node-replacement API ({NEWEST_FRONTEND_NEEDS}), "
                    f"which this ComfyUI ({comfy.name}) lacks: checked against its own frontend only")
    assert (Path(root) / "index.html").is_file(), f"${NEWEST_FRONTEND}={root} holds no frontend (index.html)"
    return ["--front-end-root", root]


@pytest.fixture(scope="module", params=["own", "newest"], ids=["own-frontend", "newest-frontend"])
def server(request, comfyui_path, models_cache, tmp_path_factory):
    """This module's own ComfyUI, with its API nodes loaded as a stock ComfyUI has them (the rest of
    the suite disables them), so the templates built on API nodes convert in the frontend too; once
    with the frontend it pins, once with the newest. Nothing here runs them: the oracle only loads
    and converts."""
    from comfyui_wanmasking.tests.integration.comfy_server import ComfyServer

    extra = newest_frontend_args(comfyui_path) if request.param == "newest" else []
    srv = ComfyServer(comfyui_path, tmp_path_factory.mktemp("comfy_oracle"), models_cache, api_nodes=True,
                      extra_args=extra).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def frontend_version(server, oracle_browser):
    """The version of the frontend the browser runs (the server names the one it pins, also when
    --front-end-root serves another)."""
    version = oracle_browser.execute_script("return window.__COMFYUI_FRONTEND_VERSION__ || null") \
        or ServerBackend(server.url).frontend_version()
    assert version, "neither the frontend nor the server says which frontend this is"
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


def test_runner_replaces_retired_nodes_like_the_frontend(oracle_browser, server, object_info, frontend_version, caplog):
    """Node types this ComfyUI lacks, with replacements the server registers (/node_replacements):
    the runner's prompt equals the frontend's after the user clicks "Replace All", including a
    replaced node inside a subgraph, an explicit mapping (widget by old_widget_ids, set_value,
    output 1 -> 0, a link the mapping drops) and core's mapping by name.

    It runs first, on a fresh page: after the corpus's ~500 loads the errors panel did not open in time."""
    import logging
    import time

    replacements = ServerBackend(server.url).node_replacements()
    if not replacements:
        pytest.skip("this ComfyUI registers no node replacements (/node_replacements is new in ComfyUI 0.33)")
    assert "WanMaskTestRetiredScale" in replacements, "the test helpers' replacements are not registered"
    workflow = replaced()
    show_missing_nodes(oracle_browser, server, True)
    try:
        loaded = oracle_browser.execute_async_script(LOAD_AND_INSPECT, workflow)
        assert "error" not in loaded, loaded.get("error")
        before = loaded["output"]
        assert before["6"]["class_type"] != "ImageScaleBy"  # not replaced until the user says so
        click_replace_all(oracle_browser)
        time.sleep(1.0)
        result = oracle_browser.execute_async_script(GRAPH_TO_PROMPT)
    finally:
        show_missing_nodes(oracle_browser, server, False)
        from selenium.webdriver.common.keys import Keys
        oracle_browser.find_element("tag name", "body").send_keys(Keys.ESCAPE)
    assert "error" not in result, result.get("error")
    frontend = result["output"]
    with caplog.at_level(logging.WARNING, logger="wanmask_runner"):
        mine = replace_then_convert(workflow, object_info, frontend_version, replacements)
    assert differences(mine, frontend, object_info) == set(), (mine, frontend)
    assert {nid: mine[nid]["class_type"] for nid in ("2", "5", "6", "10:21")} == {
        "2": "ControlNetLoader", "5": "SVD_img2vid_Conditioning", "6": "ImageScaleBy", "10:21": "EmptyLatentImage"}
    assert mine["6"]["inputs"] == {"image": ["1", 0], "upscale_method": "bicubic", "scale_by": 1.5}
    assert mine["7"]["inputs"]["images"] == ["6", 0]  # old output 1 is the new output 0
    assert (mine["10:21"]["inputs"]["width"], mine["10:21"]["inputs"]["height"]) == (320, 192)
    notes = [r.getMessage() for r in caplog.records if "replaced by" in r.getMessage()]
    assert len(notes) == 4, notes
    assert any(n.startswith("node 6 'Old scale'") and "'mask'" in n for n in notes), notes
    assert any("'T2IAdapterLoader'" in n and "value 0" in n for n in notes), notes  # no old_widget_ids: lost


FRONTEND_ONLY = ("Note", "MarkdownNote", "Reroute", "PrimitiveNode")
MUTED, BYPASSED = 2, 4  # LiteGraph node modes the frontend leaves out of the prompt


def lacking_types(workflow: dict, object_info: dict, active_only: bool) -> list[str]:
    """The node types of ``workflow`` this server lacks (not the frontend's own nodes, subgraph
    instances or group nodes); with ``active_only``, only those of nodes the frontend would send:
    neither muted nor bypassed, and inside subgraph instances that are neither."""
    defs = {d["id"]: d for d in (workflow.get("definitions") or {}).get("subgraphs", [])}
    types, walked = set(), set()

    def walk(nodes):
        for n in nodes:
            if active_only and n.get("mode") in (MUTED, BYPASSED):
                continue
            t = n.get("type")
            if t in defs:
                if t not in walked:
                    walked.add(t)
                    walk(defs[t]["nodes"])
            else:
                types.add(t)

    walk(workflow["nodes"])
    if not active_only:
        walk([n for d in defs.values() for n in d["nodes"]])
    return sorted(t for t in types if isinstance(t, str) and t not in object_info and ":" not in t
                  and t not in FRONTEND_ONLY and len(t) != 36)


def skip_lacking(case: str, tally: dict, lacking) -> None:
    tally["skipped"].append((case, f"nodes this server lacks: {', '.join(lacking[:5])}"))
    pytest.skip(f"{case}: nodes this server lacks: {', '.join(lacking[:5])}")


@pytest.mark.parametrize("case", CASES)
def test_runner_converts_like_the_frontend(oracle_browser, object_info, frontend_version, tally, case):
    workflow = load_case(case)
    # A template with a node this server lacks, one the frontend sends, gives class_type null there too:
    # skipped before loading it (about 400 of the corpus; the browser's time goes to the ones compared).
    if case.startswith("template:") and (lacking := lacking_types(workflow, object_info, active_only=True)):
        skip_lacking(case, tally, lacking)
    result = oracle_browser.execute_async_script(LOAD_AND_INSPECT, workflow)
    if "error" in result and case.startswith("template:"):  # nothing to compare with
        why = f"the frontend itself fails on it: {result['error'].splitlines()[0]}"
        tally["skipped"].append((case, why))
        pytest.skip(f"{case}: {why}")
    assert "error" not in result, result.get("error")
    if dialogs(oracle_browser):
        from selenium.webdriver.common.keys import Keys
        oracle_browser.find_element("tag name", "body").send_keys(Keys.ESCAPE)
    frontend = result["output"]
    missing = sorted({str(n.get("class_type")) for n in frontend.values() if n.get("class_type") not in object_info})
    if missing:  # the frontend cannot convert these either (class_type null): nothing to compare
        skip_lacking(case, tally, lacking_types(workflow, object_info, active_only=False) or missing)
    mine = ui_to_api(workflow, object_info, frontend_version)
    diffs = differences(mine, frontend, object_info)
    seen, known, why = KNOWN.get(case.split(":", 1)[1], (None, set(), ""))
    expected = known if seen is not None and seen[0] <= parse_version(frontend_version) <= seen[1] else set()
    (tally["differ"] if expected else tally["identical"]).append((case, why) if expected else case)
    detail = {nid: (mine.get(nid, {}).get("inputs"), frontend.get(nid, {}).get("inputs"))
              for nid in sorted({d[0] for d in diffs ^ expected})[:3]}
    assert diffs == expected, f"runner vs frontend {frontend_version}: {sorted(diffs)[:10]}\n{detail}"


def show_missing_nodes(driver, server, on: bool) -> None:
    """The frontend's missing-nodes warning on or off, on the server and in the open page (which read
    the setting when it loaded; frontend 1.58 lists no replaceable nodes in its errors panel while it is off)."""
    server.post("/settings/Comfy.Workflow.ShowMissingNodesWarning", on)
    driver.execute_async_script("""
const [on, done] = [arguments[0], arguments[arguments.length - 1]];
Promise.resolve(window.app.extensionManager?.setting?.set('Comfy.Workflow.ShowMissingNodesWarning', on))
  .then(() => done(true), () => done(false));""", on)


GRAPH_TO_PROMPT = """
const done = arguments[arguments.length - 1];
(async () => {
  try { done({output: (await window.app.graphToPrompt()).output}); }
  catch (e) { done({error: String(e) + "\\n" + e.stack}); }
})();
"""


def click_replace_all(driver, timeout: float = 20.0) -> None:
    """What a user does with a workflow whose nodes the server can replace: open the errors panel
    (the overlay's "See errors", or the breadcrumb's missing-nodes icon) and click "Replace All"."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        buttons = [b for b in driver.find_elements("css selector", "button") if b.text.strip() == "Replace All"]
        if buttons:  # clicked from script: after many loads a toast may lie over the panel
            driver.execute_script("arguments[0].click()", buttons[0])
            return
        for selector in ("[data-testid=error-overlay-see-errors]", "[data-testid=subgraph-breadcrumb-missing-nodes-icon]"):
            found = driver.find_elements("css selector", selector)
            if found and found[0].is_displayed():
                driver.execute_script("arguments[0].click()", found[0])
                break
        time.sleep(0.5)
    raise AssertionError("the frontend offered no 'Replace All' for the replaceable nodes")


