"""A one-line text progress bar fed by ComfyUI's execution events."""
from __future__ import annotations

import sys


class ProgressPrinter:
    """Turns ``executing`` / ``progress`` / ``execution_cached`` events into a status line on stderr."""

    def __init__(self, stream=None, width: int = 30, titles: dict | None = None):
        self.stream = stream or sys.stderr
        self.width = width
        self.titles = titles or {}
        self.node = None
        self.last_len = 0

    def _show(self, text: str) -> None:
        pad = max(0, self.last_len - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self.last_len = len(text)

    def __call__(self, event: str, data: dict) -> None:
        if event == "executing":
            self.node = data.get("node")
            if self.node is not None:
                self._show(f"running {self._name(self.node)}")
        elif event == "progress":
            value, total = int(data.get("value", 0)), max(1, int(data.get("max", 1)))
            done = int(self.width * value / total)
            node = data.get("node") or self.node
            self._show(f"[{'#' * done}{'-' * (self.width - done)}] {value}/{total} {self._name(node)}")
        elif event in ("execution_success", "execution_error", "execution_interrupted"):
            self._show(event.replace("_", " "))
            self.stream.write("\n")
            self.last_len = 0

    def _name(self, node) -> str:
        return f"{self.titles.get(str(node), '')} (node {node})".strip() if node is not None else ""
