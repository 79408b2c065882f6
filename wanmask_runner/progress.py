"""Progress of a run, drawn with tqdm (as ComfyUI draws its own), fed by ComfyUI's execution events.

One bar per run: nodes done out of the prompt's, labelled with the node that runs (title and id),
and that node's own steps (sampler steps, VAE frames) whenever it reports them. :func:`logs_above_bar` routes log lines
through ``tqdm.write`` while a bar is drawn, so a line never runs into the bar.
"""
from __future__ import annotations

import contextlib
import logging
import sys

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

FINISHED = {"execution_success": "done", "execution_error": "failed", "execution_interrupted": "interrupted"}


class ProgressPrinter:
    """Turns ComfyUI's execution events into one tqdm bar on ``stream``: nodes done out of the
    prompt's nodes, the node that runs (its title and id) and its own steps (sampler steps, VAE
    frames) when it reports them.

    ``titles`` maps node ids to what the user calls them; ``run_workflow`` sends them (event
    ``wanmask_prompt``) with the prompt's node count.
    """

    def __init__(self, stream=None, titles: dict | None = None, disable: bool | None = False):
        self.stream = stream or sys.stderr
        self.titles = {str(k): v for k, v in (titles or {}).items()}
        self.disable = disable
        self.bar: tqdm | None = None
        self.node = None
        self.done: set[str] = set()

    def _ensure_bar(self) -> tqdm:
        if self.bar is None:
            self.bar = tqdm(total=len(self.titles) or None, file=self.stream, disable=self.disable, unit="node",
                            dynamic_ncols=True, leave=True,
                            bar_format="{desc} |{bar}| {n_fmt}/{total_fmt} nodes [{elapsed}] {postfix}")
        return self.bar

    def _finish(self, node) -> None:
        if node is not None and str(node) not in self.done:
            self.done.add(str(node))
            self.bar.update(1)

    def __call__(self, event: str, data: dict) -> None:
        if event == "wanmask_prompt":  # sent by run_workflow before the prompt is queued
            self.titles = {str(k): v for k, v in data.get("titles", {}).items()} | self.titles
        elif event == "execution_start":
            self._ensure_bar().set_description_str("queued", refresh=True)
        elif event == "execution_cached":
            bar = self._ensure_bar()
            for node in data.get("nodes") or []:
                self._finish(node)
            bar.refresh()
        elif event == "executing":
            bar = self._ensure_bar()
            self._finish(self.node)
            self.node = data.get("node")
            if self.node is not None:
                bar.set_postfix_str("", refresh=False)
                bar.set_description_str(f"running {self.name(self.node)}", refresh=True)
        elif event == "progress":
            bar = self._ensure_bar()
            node = data.get("node") or self.node
            if node != self.node:
                self._finish(self.node)
                self.node = node
                bar.set_description_str(f"running {self.name(node)}", refresh=False)
            bar.set_postfix_str(f"step {int(data.get('value', 0))}/{int(data.get('max', 1))}", refresh=True)
        elif event in FINISHED and self.bar is not None:
            self._finish(self.node)
            self.bar.set_postfix_str("", refresh=False)
            self.bar.set_description_str(FINISHED[event], refresh=True)
            self.bar.close()
            self.bar, self.node = None, None

    def name(self, node) -> str:
        if node is None:
            return ""
        title = self.titles.get(str(node), "")
        return f"{title} (node {node})" if title else f"node {node}"


@contextlib.contextmanager
def logs_above_bar(*loggers: logging.Logger):
    """While inside, the console handlers of ``loggers`` (default: the root logger and the runner's)
    write through ``tqdm.write``: log lines appear above the bar, never through it."""
    chosen = list(loggers) or [logging.getLogger(), logging.getLogger("wanmask_runner")]
    with logging_redirect_tqdm(loggers=chosen):
        yield
