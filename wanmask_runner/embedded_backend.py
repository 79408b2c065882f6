"""Run prompts in-process: ComfyUI's own startup, queue and executor, without the HTTP server.

ComfyUI's ``main.py`` is imported as a module (its documented way to integrate:
``start_comfyui()`` returns the loop and the server object without serving HTTP). Prompts go
through ``execution.validate_prompt`` and ComfyUI's prompt queue and worker thread, exactly as
POST /prompt would put them; events that would go to the websocket are handed to a callback.
ComfyUI can be started once per process, so :meth:`EmbeddedBackend.get` returns one instance.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from .api import RunResult
from .server_backend import result_from_history

log = logging.getLogger("wanmask_runner")
REPO = Path(__file__).resolve().parents[1]


class EmbeddedBackend:
    _instance: "EmbeddedBackend | None" = None

    @classmethod
    def get(cls, comfyui: str | os.PathLike, comfy_args=(), extra_model_paths: dict | None = None):
        if cls._instance is None:
            cls._instance = cls(comfyui, comfy_args, extra_model_paths or {})
        elif Path(comfyui).resolve() != cls._instance.path:
            raise RuntimeError(f"ComfyUI at {cls._instance.path} is already running in this process")
        return cls._instance

    def __init__(self, comfyui, comfy_args, extra_model_paths: dict):
        self.path = Path(comfyui).resolve()
        if not (self.path / "main.py").is_file():
            raise FileNotFoundError(f"--comfyui {comfyui}: no ComfyUI main.py there")
        sys.path.insert(0, str(self.path))
        saved_argv = sys.argv
        sys.argv = [str(self.path / "main.py"), *comfy_args]
        try:
            import main as comfy_main  # parses sys.argv as ComfyUI's command line
        finally:
            sys.argv = saved_argv
        import folder_paths

        for kind, paths in extra_model_paths.items():
            for p in paths:
                folder_paths.add_model_folder_path(kind, str(p))
        self._ensure_pack_loaded(folder_paths)
        self._listeners: dict[str, callable] = {}
        self.loop, self.server, _ = comfy_main.start_comfyui()
        self.server.send_sync = self._send_sync  # events go to callbacks, not to a websocket

    def _ensure_pack_loaded(self, folder_paths) -> None:
        """Load this pack even when the ComfyUI has it nowhere in custom_nodes (a linked folder)."""
        for folder in folder_paths.get_folder_paths("custom_nodes"):
            if Path(folder).is_dir() and any(p.resolve() == REPO for p in Path(folder).iterdir()):
                return
        holder = Path(tempfile.mkdtemp(prefix="wanmask_custom_nodes_"))
        (holder / "ComfyUI-WanMasking").symlink_to(REPO, target_is_directory=True)
        folder_paths.add_model_folder_path("custom_nodes", str(holder))
        log.info("loading ComfyUI-WanMasking from %s (not in %s's custom_nodes)", REPO, self.path)

    def _send_sync(self, event, data, sid=None):
        if isinstance(event, str) and isinstance(data, dict):
            cb = self._listeners.get(data.get("prompt_id")) or self._listeners.get("*")
            if cb is not None:
                cb(event, data)

    def object_info(self) -> dict:
        import nodes
        from comfy_api.internal import _ComfyNodeInternal

        info = {}
        for name, cls in nodes.NODE_CLASS_MAPPINGS.items():
            if issubclass(cls, _ComfyNodeInternal):
                info[name] = cls.GET_NODE_INFO_V1()
            else:
                inputs = cls.INPUT_TYPES()
                info[name] = {"input": inputs, "input_order": {k: list(v) for k, v in inputs.items()},
                              "output": list(cls.RETURN_TYPES),
                              "output_name": list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)),
                              "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
                              "display_name": nodes.NODE_DISPLAY_NAME_MAPPINGS.get(name, name)}
        return info

    def read_output(self, ref: dict) -> bytes:
        import folder_paths

        base = folder_paths.get_directory_by_type(ref.get("type", "output"))
        return (Path(base) / ref.get("subfolder", "") / ref["filename"]).read_bytes()

    def interrupt(self) -> None:
        import nodes
        nodes.interrupt_processing()

    def run(self, prompt: dict, prompt_id: str, on_event=None, timeout: float = 3600.0) -> RunResult:
        import execution

        valid = self.loop.run_until_complete(execution.validate_prompt(prompt_id, prompt, None))
        if not valid[0]:
            return RunResult(prompt_id, False, "invalid", node_errors=valid[3], error=valid[1])
        done = threading.Event()

        def listener(event, data):
            if on_event is not None:
                on_event(event, data)
            if event == "executing" and data.get("node") is None:
                done.set()

        self._listeners[prompt_id] = listener
        try:
            queue = self.server.prompt_queue
            queue.put((self.server.number, prompt_id, prompt, {"client_id": "embedded"}, valid[2]))
            self.server.number += 1
            deadline = time.time() + timeout
            while time.time() < deadline:
                entry = queue.get_history(prompt_id=prompt_id).get(prompt_id)
                if entry and entry.get("status", {}).get("status_str") in ("success", "error"):
                    return result_from_history(prompt_id, entry)
                done.wait(0.1)
            raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout}s")
        finally:
            self._listeners.pop(prompt_id, None)
