"""Every case of the bad-input corpus, submitted through the HTTP API: each is answered with a
node error that names the input and the fix, nothing is written, and the server stays up."""
from __future__ import annotations

import time

import pytest

from comfyui_wanmasking.tests.integration.comfy_server import execution_error
from comfyui_wanmasking.tests.integration.graphs import Graph
from comfyui_wanmasking.tests.reliability.corpus import CASES


def error_text(server, prompt) -> str:
    """The error ComfyUI reports for a prompt: validation node errors, else the execution error."""
    code, body = server.submit(prompt)
    if code != 200:
        parts = [body.get("error", {}).get("message", "")]
        for nid, err in body.get("node_errors", {}).items():
            for e in err["errors"]:
                parts.append(f"{err['class_type']} {e.get('extra_info', {}).get('input_name', '')}: "
                             f"{e['message']}: {e.get('details', '')}")
        return "\n".join(parts)
    entry = None
    pid = body["prompt_id"]
    deadline = time.time() + 600
    while time.time() < deadline:
        hist = server.get(f"/history/{pid}").get(pid)
        if hist and hist["status"].get("status_str") in ("success", "error"):
            entry = hist
            break
        time.sleep(0.2)
    assert entry is not None, "the prompt did not finish"
    assert entry["status"]["status_str"] == "error", "bad input was accepted and ran to the end"
    return execution_error(entry)


def test_the_corpus_has_at_least_40_cases():
    assert len(CASES) >= 40, len(CASES)
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_gives_a_clear_node_error(server, io_dir, case):
    g = Graph()
    case.build(g, io_dir)
    text = error_text(server, g.prompt)
    missing = [w for w in case.expect if w.lower() not in text.lower()]
    assert not missing, f"error lacks {missing}:\n{text}"
    assert not (io_dir / "never.safetensors").exists(), "an output was written despite the error"
    assert server.get("/system_stats")["system"]["comfyui_version"]
