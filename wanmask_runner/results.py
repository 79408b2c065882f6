"""What a run gives back: the result, the errors, and reading a ``/history`` entry into a result.

Shared by the API and both backends (which import this module, never each other or the API).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class WorkflowError(RuntimeError):
    """Validation or execution failed; ``result`` holds the details."""

    def __init__(self, message: str, result: "RunResult"):
        super().__init__(message)
        self.result = result


class OutputPathError(WorkflowError):
    """The workflow ran, but some output files it names were not written: names that would land
    outside ``out_dir`` (absolute names, ``..``), refused, or files of type "output" that are gone
    from ComfyUI's folder; the others are in ``result.files``."""


class OutputGone(FileNotFoundError):
    """A backend's ``read_output``: ComfyUI lists an output file that is no longer in its folder
    (typically a cached node's result from an earlier prompt whose file was deleted since)."""



@dataclass
class RunResult:
    prompt_id: str
    ok: bool
    status: str  # "success", "error", "interrupted" or "invalid"
    outputs: dict = field(default_factory=dict)  # node id -> ui dict (images, ...)
    node_errors: dict = field(default_factory=dict)  # as POST /prompt returns them
    error: dict | None = None  # {"type", "message", ...} or the execution_error event data
    files: list[Path] = field(default_factory=list)  # outputs written to out_dir
    previews_skipped: int = 0  # preview (temp) files not written (run_workflow's previews=False)

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


def result_from_history(prompt_id: str, entry: dict) -> RunResult:
    """A RunResult from a /history entry (or the embedded executor's equivalent)."""
    messages = entry.get("status", {}).get("messages", [])
    error = next((d for e, d in messages if e in ("execution_error", "execution_interrupted")), None)
    interrupted = any(e == "execution_interrupted" for e, _ in messages)
    ok = entry["status"]["status_str"] == "success"
    status = "success" if ok else ("interrupted" if interrupted else "error")
    return RunResult(prompt_id, ok, status, outputs=entry.get("outputs", {}), error=error)
