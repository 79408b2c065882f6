"""Every UI-format example loads in the real ComfyUI frontend (headless Chromium) without
missing-node or missing-input warnings, and the frontend turns it into our API-format twin."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from comfyui_wanmasking.tests.integration.examples import UI_EXAMPLES, applies, for_this_comfyui, provide_media
from comfyui_wanmasking.wanmask_runner.example_names import api_twin
from comfyui_wanmasking.wanmask_runner.model_links import MODEL_DOWNLOADS

REPO = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")

LOAD_AND_INSPECT = """
const [workflow, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  try {
    await window.app.loadGraphData(workflow);
    const nodes = window.app.graph._nodes || window.app.graph.nodes;
    const prompt = await window.app.graphToPrompt();
    // A combo widget whose value is not among its choices names a file this server lacks (a model the
    // user has not downloaded yet); the frontend flags such loaders, which is what a user sees too.
    const missingFiles = n => (n.widgets || []).filter(w => Array.isArray(w.options?.values) &&
                                 !w.options.values.includes(w.value)).map(w => String(w.value));
    done({
      broken: nodes.filter(n => !n.constructor || !n.constructor.nodeData ||
                                (n.has_errors && missingFiles(n).length === 0)).map(n => `${n.id} ${n.type}`),
      missing_files: nodes.flatMap(n => missingFiles(n).map(f => [n.id, f])),
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
    for api_file in (REPO / "example_workflows" / "api").glob("*.json"):  # the clips and images a user brings
        provide_media(json.loads(api_file.read_text()), server.base / "input")
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


@pytest.mark.parametrize("ui_file", UI_EXAMPLES, ids=lambda p: api_twin(p).stem)
def test_ui_example_loads_in_the_frontend(browser, server, ui_file, tmp_path):
    from PIL import Image, ImageStat

    object_info = server.get("/object_info")
    api_file = api_twin(ui_file)
    if not applies(api_file, object_info):
        pytest.skip(f"{ui_file.name} is made for the other tested ComfyUI version (nodes missing here)")
    workflow = json.loads(ui_file.read_text())
    result = browser.execute_async_script(LOAD_AND_INSPECT, workflow)
    assert "error" not in result, result.get("error")
    assert result["broken"] == [], f"missing or broken nodes: {result['broken']}"
    # Only model files may be missing, and each has its download link on its node.
    links = {n["id"]: {m["name"] for m in n.get("properties", {}).get("models", [])} for n in workflow["nodes"]}
    for node_id, name in result["missing_files"]:
        assert name in MODEL_DOWNLOADS and name in links.get(int(node_id), set()), (node_id, name)
    assert result["unlinked"] == [], f"required inputs without a link: {result['unlinked']}"
    shown = dialogs(browser)
    # The frontend may list the models this server lacks, with their download links (what a user
    # without them sees); any other "missing" dialog (nodes, inputs) is a failure.
    for d in shown:
        if d.startswith("Missing Models"):
            assert "Download" in d and all(m.split("/")[-1].strip() in MODEL_DOWNLOADS
                                           for m in d.splitlines() if m.strip().endswith(".safetensors")), d
    warnings = [d for d in shown if "missing" in d.lower() and not d.startswith("Missing Models")]
    assert warnings == [], warnings
    if shown:
        from selenium.webdriver.common.keys import Keys
        browser.find_element("tag name", "body").send_keys(Keys.ESCAPE)
    # the frontend's own UI -> API conversion gives our API-format twin
    # (compared on the inputs the server reads: the frontend also sends its preview widgets, such as
    # LoadVideo's 'video-preview', which no node declares)
    api = for_this_comfyui(json.loads(api_file.read_text()), object_info)
    assert for_this_comfyui(result["output"], object_info) == api
    browser.execute_script("const c = window.app.canvas; c.ds.scale = 0.65; c.ds.offset = [20, 20]; "
                           "c.setDirty(true, true); c.draw(true, true);")
    time.sleep(0.5)
    shot = tmp_path / f"{ui_file.stem}.png"
    browser.save_screenshot(str(shot))
    stat = ImageStat.Stat(Image.open(shot).convert("L"))
    assert stat.stddev[0] > 10, "the screenshot is blank"


OPEN_TEMPLATE_BROWSER = """
const done = arguments[arguments.length - 1];
// the page's own loading filled the browser's record of requests (250 by default): start a new one
performance.clearResourceTimings();
performance.setResourceTimingBufferSize(5000);
window.app.extensionManager.command.execute('Comfy.BrowseTemplates').then(() => done(true), e => done(String(e)));
"""
# Per card: its title as shown, and its picture once the browser has loaded one (the frontend's own
# fallback picture when the request failed: not 256 px wide).
TEMPLATE_CARDS = """
const cards = Array.from(document.querySelectorAll('[data-testid^="template-workflow-"]')).map(c => {
  const img = c.querySelector('img');
  return {card: c, name: c.dataset.testid.slice('template-workflow-'.length), title: c.querySelector('h3')?.innerText,
          src: img?.src, loaded: !!img?.src && img.complete && img.naturalWidth > 0, width: img?.naturalWidth}; });
// a card's picture loads while the card is in view (and is dropped when it leaves): show the first card
// whose picture has not been seen loaded (their names are the argument)
cards.find(c => !arguments[0].includes(c.name))?.card.scrollIntoView({block: 'center'});
return cards.map(({card, ...rest}) => rest);
"""
THUMBNAIL_REQUESTS = """
return performance.getEntriesByType('resource').filter(e => e.name.includes('/api/workflow_templates/'))
  .map(e => [decodeURIComponent(e.name), e.responseStatus]);
"""


def test_template_browser_shows_every_example_by_title_and_picture(browser, server, tmp_path):
    """The template browser, as a user opens it: the pack's category (our folder name, as ComfyUI
    lists custom-node templates), every UI example under its readable title, and each thumbnail
    requested and loaded (HTTP 200, the 256 px JPEG)."""
    from PIL import Image, ImageStat
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    pack = server.get("/workflow_templates")
    assert sorted(pack["ComfyUI-WanMasking"]) == sorted(p.stem for p in UI_EXAMPLES)
    assert browser.execute_async_script(OPEN_TEMPLATE_BROWSER) is True
    category = ("//*[@role='dialog']//*[normalize-space(.)='ComfyUI-WanMasking' and "
                "not(*[normalize-space(.)='ComfyUI-WanMasking'])]")  # the innermost element with our name
    deadline = time.time() + 30
    while not browser.find_elements(By.XPATH, category):
        assert time.time() < deadline, f"no 'ComfyUI-WanMasking' category in the template browser: {dialogs(browser)}"
        time.sleep(0.5)
    browser.find_elements(By.XPATH, category)[0].click()
    titles = {p.stem for p in UI_EXAMPLES}
    deadline = time.time() + 60
    widths = {}  # title -> the natural width of its picture, once seen loaded
    while True:
        cards = browser.execute_script(TEMPLATE_CARDS, sorted(widths))
        widths |= {c["name"]: c["width"] for c in cards if c["loaded"]}
        if {c["name"] for c in cards} == titles and set(widths) == titles:
            break
        assert time.time() < deadline, f"the category shows {cards}, not {sorted(titles)} with their pictures"
        time.sleep(0.5)
    for card in cards:
        assert card["title"] == card["name"], card  # the readable title, as the file is named
    assert widths == {t: 256 for t in titles}, f"thumbnails that did not load: {widths}"
    requests = dict(browser.execute_script(THUMBNAIL_REQUESTS))
    for title in titles:
        url = f"{server.url}/api/workflow_templates/ComfyUI-WanMasking/{title}.jpg"
        assert requests.get(url) == 200, (url, requests)
    browser.execute_script("document.querySelector('[data-testid^=\"template-workflow-\"]')"
                           ".scrollIntoView({block: 'start'})")
    time.sleep(0.5)
    shot = tmp_path / "template_browser.png"
    browser.save_screenshot(str(shot))
    print(f"template browser screenshot: {shot}")
    assert ImageStat.Stat(Image.open(shot).convert("L")).stddev[0] > 10, "the screenshot is blank"
    browser.find_element("tag name", "body").send_keys(Keys.ESCAPE)
