"""The runner's Python API: load a workflow, convert, override, run on a backend, save outputs."""
from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .workflow_format import apply_overrides, is_ui_format, ui_to_api


class WorkflowError(RuntimeError):
    """Validation or execution failed; ``result`` holds the details."""

    def __init__(self, message: str, result: "RunResult"):
        super().__init__(message)
        self.result = result


@dataclass
class RunResult:
    prompt_id: str
    ok: bool
    status: str  # "success", "error", "interrupted" or "invalid"
    outputs: dict = field(default_factory=dict)  # node id -> ui dict (images, ...)
    node_errors: dict = field(default_factory=dict)  # as POST /prompt returns them
    error: dict | None = None  # {"type", "message", ...} or the execution_error event data
    files: list[Path] = field(default_factory=list)  # outputs written to out_dir

    def describe(self) -> str:
        """ComfyUI's errors, readably: one line per failing input, then the execution error."""
        lines = []
        if self.error and self.status == "invalid":
            lines.append(f"{self.error.get('message', 'invalid prompt')}: {self.error.get('details', '')}".rstrip(": "))
        for nid, err in self.node_errors.items():
            for e in err.get("errors", []):
                where = e.get("extra_info", {}).get("input_name")
                lines.append(f"  node {nid} ({err.get('class_type')}){' input ' + where if where else ''}: "
                             f"{e.get('message')}{': ' + e['details'] if e.get('details') else ''}")
        if self.error and self.status in ("error", "interrupted"):
            lines.append(f"node {self.error.get('node_id')} ({self.error.get('node_type')}) failed: "
                         f"{self.error.get('exception_type', '')}: {self.error.get('exception_message', 'interrupted')}")
        return "\n".join(lines)


def load_workflow(path: str | os.PathLike) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def to_api(workflow: dict, object_info_fn: Callable[[], dict]) -> dict:
    """The API-format prompt of a workflow in either format (object_info is fetched only for UI format)."""
    if is_ui_format(workflow):
        return ui_to_api(workflow, object_info_fn())
    if "prompt" in workflow and isinstance(workflow["prompt"], dict):  # a saved POST body
        return workflow["prompt"]
    return workflow


def run_workflow(workflow: str | os.PathLike | dict, *, server: str | None = None, comfyui: str | None = None,
                 overrides: list[str] = (), out_dir: str | os.PathLike | None = None,
                 on_event: Callable[[str, dict], None] | None = None, backend=None,
                 comfy_args: list[str] = (), timeout: float = 3600.0) -> RunResult:
    """Run a workflow (UI or API format, a path or a dict) and write its outputs to ``out_dir``.

    Exactly one of ``server`` (URL of a running ComfyUI), ``comfyui`` (path: embedded, in-process) or
    ``backend`` (an already-open backend) is used. Raises WorkflowError when validation or
    execution fails, TimeoutError when it has not finished after ``timeout`` seconds, and
    RuntimeError when embedded ComfyUI's worker thread died.
    """
    if backend is None:
        if (server is None) == (comfyui is None):
            raise ValueError("give exactly one of server=URL or comfyui=PATH")
        if server is not None:
            from .server_backend import ServerBackend
            backend = ServerBackend(server, timeout=timeout)
        else:
            from .embedded_backend import EmbeddedBackend
            backend = EmbeddedBackend.get(comfyui, comfy_args)
    wf = load_workflow(workflow) if not isinstance(workflow, dict) else json.loads(json.dumps(workflow))
    prompt = apply_overrides(to_api(wf, backend.object_info), list(overrides))
    result = backend.run(prompt, prompt_id=str(uuid.uuid4()), on_event=on_event, timeout=timeout)
    if result.ok and out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for node_outputs in result.outputs.values():
            for key in ("images", "gifs", "animated", "videos", "audio"):
                for ref in node_outputs.get(key, []) if isinstance(node_outputs.get(key), list) else []:
                    if isinstance(ref, dict) and "filename" in ref:
                        dest = out / ref["filename"]
                        dest.write_bytes(backend.read_output(ref))
                        result.files.append(dest)
    if not result.ok:
        raise WorkflowError(f"workflow {result.status}:\n{result.describe()}", result)
    return result
