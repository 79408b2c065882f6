"""ComfyUI internals: prompt queue and worker (the embedded runner).

Part of the compatibility boundary (see the package docstring): feature detection, never a
version compare; ComfyUI modules are imported inside the functions that need them.

The embedded runner depends on no signature of ComfyUI's execution internals. It never calls
``execution.execute``, ``PromptExecutor.execute``, ``validate_prompt`` or ``PromptQueue.put/get``
itself (after 0.33 ``execute`` takes an ``asset_manager``, and ``validate_prompt`` runs ``validate_loops``):
it starts ComfyUI through ``main.start_comfyui()`` as ``main.py`` does, lets ComfyUI's own
``prompt_worker`` thread execute, and talks to the server through its own route handlers
(``POST /prompt``, ``GET /history/{prompt_id}``), called in-process with the HTTP API's JSON, the
contract the server backend uses too. What it still assumes is detected where it is used, and a
missing piece is an error that names it.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import threading
from typing import Callable

FILE = __file__
HOW_ELSE = "run ComfyUI yourself and give the runner --server URL"
_LOOP_IN_USE = threading.Lock()


class RequestPartMissing(AttributeError):
    """A route handler read a part of the request that the in-process request does not carry."""


class _JsonRequest:
    """Just enough of an aiohttp request for ComfyUI's route handlers: a JSON body, the path's
    parameters (``match_info``), no headers, no query. A part a handler reads that it lacks raises
    :class:`RequestPartMissing` naming it (an AttributeError, so ``getattr(request, x, default)`` works)."""

    def __init__(self, route: str, body: dict | None = None, match_info: dict | None = None):
        self._route, self._body = route, body
        self.match_info = dict(match_info or {})
        self.headers: dict[str, str] = {}
        self.query: dict[str, str] = {}
        self.rel_url = self

    async def json(self):
        return json.loads(json.dumps(self._body))

    def __getattr__(self, name):  # only for attributes the request does not have
        if name.startswith("__"):
            raise AttributeError(name)
        raise RequestPartMissing(f"this ComfyUI's {self._route} handler reads request.{name}, which the embedded "
                                 f"runner's in-process request does not carry (see {FILE}); {HOW_ELSE}")


def route_handler(server, method: str, path: str) -> Callable:
    """The handler the running server registered for ``method path`` (raises when it has none)."""
    for route in getattr(server, "routes", []):
        if getattr(route, "method", None) == method and getattr(route, "path", None) == path:
            return route.handler
    raise RuntimeError(f"this ComfyUI's server has no {method} {path} route (see {FILE}); {HOW_ELSE}")


def call_route(server, loop: asyncio.AbstractEventLoop, method: str, path: str, body: dict | None = None,
               match_info: dict | None = None) -> tuple[int, dict]:
    """Call the running server's own handler of ``method path`` in-process; (HTTP status, its JSON).
    One call at a time: the loop runs only while a call waits on it."""
    handler = route_handler(server, method, path)
    with _LOOP_IN_USE:
        response = loop.run_until_complete(handler(_JsonRequest(f"{method} {path}", body, match_info)))
    return response.status, json.loads(response.text or "{}")


def post_prompt(server, loop: asyncio.AbstractEventLoop, body: dict) -> tuple[int, dict]:
    """Queue a prompt exactly as ``POST /prompt`` does in the running version: node replacements,
    validation (with whatever arguments that version's ``validate_prompt`` takes), extra data and the
    queue item's layout are the server's own. Returns (HTTP status, JSON)."""
    return call_route(server, loop, "POST", "/prompt", body)


def history_entry(server, loop: asyncio.AbstractEventLoop, prompt_id: str) -> dict | None:
    """The prompt's history entry as ``GET /history/{prompt_id}`` gives it (the server's handler reads
    its queue with whatever signature ``get_history`` has); None while there is none."""
    status, body = call_route(server, loop, "GET", "/history/{prompt_id}", match_info={"prompt_id": prompt_id})
    return body.get(prompt_id) if status == 200 and isinstance(body, dict) else None


def start_comfyui(main_module) -> tuple[asyncio.AbstractEventLoop, object]:
    """Start ComfyUI as its ``main.py`` does when imported: ``start_comfyui()`` with no arguments (as
    main.py's own ``__main__`` calls it), which sets the server up and starts the prompt worker without
    serving HTTP. From what it returns, the event loop and the PromptServer are picked by what they are
    (an asyncio loop; the object with a prompt queue and routes), not by their position."""
    start = getattr(main_module, "start_comfyui", None)
    if not callable(start):
        raise RuntimeError(f"this ComfyUI's main.py has no start_comfyui() (see {FILE}); {HOW_ELSE}")
    try:
        inspect.signature(start).bind()
    except TypeError as e:
        raise RuntimeError(f"this ComfyUI's main.start_comfyui{inspect.signature(start)} cannot be called without "
                           f"arguments ({e}; see {FILE}); {HOW_ELSE}") from None
    started = start()
    items = started if isinstance(started, (tuple, list)) else (started,)
    server = next((x for x in items if hasattr(x, "prompt_queue") and hasattr(x, "routes")), None)
    loop = next((x for x in items if isinstance(x, asyncio.AbstractEventLoop)), getattr(server, "loop", None))
    if server is None or not isinstance(loop, asyncio.AbstractEventLoop):
        raise RuntimeError(f"this ComfyUI's main.start_comfyui() returned {[type(x).__name__ for x in items]}, "
                           f"without an event loop and a PromptServer (see {FILE}); {HOW_ELSE}")
    return loop, server


def route_events(server, callback: Callable[[str, dict], None]) -> None:
    """Hand the events ComfyUI would send to its websocket clients to ``callback(event, data)`` instead
    (nothing serves the websocket in-process). ComfyUI calls ``send_sync(event, data, sid)``; arguments
    a version adds after those are taken and ignored. Binary events (previews) are dropped."""
    def send_sync(event, data, *args, **kwargs):
        if isinstance(event, str) and isinstance(data, dict):
            callback(event, data)

    server.send_sync = send_sync


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
    """``/object_info`` as the running server builds it (every node class, V1 and V3). Built here from
    the node classes rather than by calling the server's ``GET /object_info`` handler: after 0.33 that
    handler also starts an asset scan (``asset_seeder.start``), which a headless run does not want."""
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
