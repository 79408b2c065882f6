"""Every UI-format example loads in the real ComfyUI frontend (headless Chromium) without
missing-node or missing-input warnings, and the frontend turns it into our API-format twin."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UI_EXAMPLES = sorted((REPO / "example_workflows").glob("*.json"))
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")

LOAD_AND_INSPECT = """
const [workflow, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  try {
    await window.app.loadGraphData(workflow);
    const nodes = window.app.graph._nodes || window.app.graph.nodes;
    const prompt = await window.app.graphToPrompt();
    done({
      broken: nodes.filter(n => n.has_errors || !n.constructor || !n.constructor.nodeData).map(n => `${n.id} ${n.type}`),
      unlinked: nodes.flatMap(n => (n.inputs || []).filter(i => i.link == null && !i.widget &&
                  !(n.constructor.nodeData?.input?.optional || {})[i.name]).map(i => `${n.id}.${i.name}`)),
      output: prompt.output,
    });
  } catch (e) { done({error: String(e) + "\\n" + e.stack}); }
})();
"""


@pytest.fixture(scope="module")
def browser(server, tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    server.post("/settings/Comfy.TutorialCompleted", True)  # no first-run template dialog
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1600,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_script_timeout(120)
    driver.get(server.url)
    deadline = time.time() + 90
    while not driver.execute_script("return !!(window.app && window.app.graph && window.app.vueAppReady)"):
        assert time.time() < deadline, "the ComfyUI frontend did not start"
        time.sleep(0.5)
    yield driver
    driver.quit()


def dialogs(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.p-dialog, [role=dialog]')).map(e => e.innerText)")


@pytest.mark.parametrize("ui_file", UI_EXAMPLES, ids=lambda p: p.stem)
def test_ui_example_loads_in_the_frontend(browser, ui_file, tmp_path):
    from PIL import Image, ImageStat

    result = browser.execute_async_script(LOAD_AND_INSPECT, json.loads(ui_file.read_text()))
    assert "error" not in result, result.get("error")
    assert result["broken"] == [], f"missing or broken nodes: {result['broken']}"
    assert result["unlinked"] == [], f"required inputs without a link: {result['unlinked']}"
    warnings = [d for d in dialogs(browser) if "missing" in d.lower()]
    assert warnings == [], warnings
    # the frontend's own UI -> API conversion gives our API-format twin
    api = json.loads((ui_file.parent / "api" / ui_file.name).read_text())
    frontend = {nid: {"class_type": n["class_type"], "inputs": n["inputs"]} for nid, n in result["output"].items()}
    assert frontend == {nid: {"class_type": n["class_type"], "inputs": n["inputs"]} for nid, n in api.items()}
    browser.execute_script("const c = window.app.canvas; c.ds.scale = 0.65; c.ds.offset = [20, 20]; "
                           "c.setDirty(true, true); c.draw(true, true);")
    time.sleep(0.5)
    shot = tmp_path / f"{ui_file.stem}.png"
    browser.save_screenshot(str(shot))
    stat = ImageStat.Stat(Image.open(shot).convert("L"))
    assert stat.stddev[0] > 10, "the screenshot is blank"
