"""The two ways the runner reaches a ComfyUI, behind one protocol, and the one function that picks one.

* :class:`~wanmask_runner.server_backend.ServerBackend`: a running server, over HTTP and its websocket;
* :class:`~wanmask_runner.embedded_backend.EmbeddedBackend`: ComfyUI's own startup, queue and worker,
  in this process.
"""
from __future__ import annotations

import os
from typing import Callable, Protocol

from .embedded_backend import EmbeddedBackend
from .results import RunResult
from .server_backend import ServerBackend


class Backend(Protocol):
    def object_info(self) -> dict: ...

    def run(self, prompt: dict, prompt_id: str, on_event: Callable[[str, dict], None] | None = None,
            timeout: float = 3600.0) -> RunResult: ...

    def read_output(self, ref: dict) -> bytes: ...

    def interrupt(self) -> None: ...

    def upload_input(self, subfolder: str, name: str, data: bytes) -> str: ...


def open_backend(*, server: str | None = None, comfyui: str | os.PathLike | None = None, comfy_args=(),
                 timeout: float = 3600.0, extra_model_paths: dict | None = None) -> Backend:
    """A backend for exactly one of ``server`` (URL of a running ComfyUI) or ``comfyui`` (a checkout
    to start in-process; one per process)."""
    if (server is None) == (comfyui is None):
        raise ValueError("give exactly one of server=URL or comfyui=PATH")
    if server is not None:
        return ServerBackend(server, timeout=timeout)
    return EmbeddedBackend.get(comfyui, comfy_args, extra_model_paths=extra_model_paths)
