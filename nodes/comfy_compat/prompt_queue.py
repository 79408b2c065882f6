"""ComfyUI internals: prompt queue and worker (the embedded runner).

Part of the compatibility boundary (see the package docstring): feature detection, never a
version compare; ComfyUI modules are imported inside the functions that need them."""
from __future__ import annotations

import asyncio
import json
import threading
from typing import Callable

FILE = __file__


class _JsonRequest:
    """Just enough of an aiohttp request for ComfyUI's POST /prompt handler."""

    def __init__(self, body: dict):
        self._body = body
        self.headers: dict[str, str] = {}
        self.query: dict[str, str] = {}
        self.rel_url = self

    async def json(self):
        return json.loads(json.dumps(self._body))


def route_handler(server, method: str, path: str) -> Callable:
    """The handler the running server registered for ``method path`` (raises when it has none)."""
    for route in getattr(server, "routes", []):
        if getattr(route, "method", None) == method and getattr(route, "path", None) == path:
            return route.handler
    raise RuntimeError(f"this ComfyUI's server has no {method} {path} route (see {FILE})")


def post_prompt(server, loop: asyncio.AbstractEventLoop, body: dict) -> tuple[int, dict]:
    """Queue a prompt exactly as ``POST /prompt`` does in the running version: node replacements,
    validation, extra data and the queue item's layout are the server's own. Returns (HTTP status, JSON)."""
    handler = route_handler(server, "POST", "/prompt")
    response = loop.run_until_complete(handler(_JsonRequest(body)))
    return response.status, json.loads(response.text or "{}")


def prompt_worker_thread() -> threading.Thread | None:
    """The thread running ComfyUI's ``prompt_worker`` (named after its target by ``threading``), or None."""
    for t in threading.enumerate():
        if t.name.endswith("(prompt_worker)"):
            return t
    return None


def interrupt_processing() -> None:
    import nodes
    nodes.interrupt_processing()


def object_info() -> dict:
    """``/object_info`` as the running server builds it (every node class, V1 and V3)."""
    import nodes
    from comfy_api.internal import _ComfyNodeInternal

    info = {}
    for name, cls in nodes.NODE_CLASS_MAPPINGS.items():
        if issubclass(cls, _ComfyNodeInternal):
            info[name] = cls.GET_NODE_INFO_V1()
            continue
        inputs = cls.INPUT_TYPES()
        info[name] = {"input": inputs, "input_order": {k: list(v) for k, v in inputs.items()},
                      "output": list(cls.RETURN_TYPES),
                      "output_name": list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)),
                      "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
                      "display_name": nodes.NODE_DISPLAY_NAME_MAPPINGS.get(name, name)}
    return info


def node_replacements(server) -> dict:
    """The node replacements a PromptServer registers, as ``GET /node_replacements`` serves them
    (``NodeReplaceManager``, ComfyUI 0.33+); {} where the server has no such manager."""
    manager = getattr(server, "node_replace_manager", None)
    as_dict = getattr(manager, "as_dict", None)
    return as_dict() if callable(as_dict) else {}
