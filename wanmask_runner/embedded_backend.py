"""Run prompts in-process: ComfyUI's own startup, queue and executor, without the HTTP server.

ComfyUI's ``main.py`` is imported as a module (its documented way to integrate:
``start_comfyui()`` returns the loop and the server object without serving HTTP). Prompts are queued
by the running server's own ``POST /prompt`` handler and followed through its ``GET /history``
handler (called in-process, through the pack's compatibility package ``nodes/comfy_compat/``), so
validation, node replacements and the queue item's layout are that version's; ComfyUI's worker
thread runs them. No signature of ComfyUI's executor, validation or queue is relied on. Events that would go to the
websocket are handed to a callback. Every wait is bounded, and a dead worker thread is an error,
never a hang. ComfyUI can be started once per process, so :meth:`EmbeddedBackend.get` returns one
instance.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from .results import OutputGone, RunResult, result_from_history

log = logging.getLogger("wanmask_runner")
REPO = Path(__file__).resolve().parents[1]
COMPAT = REPO / "nodes" / "comfy_compat"


def load_compat(name: str = "wanmask_comfy_compat"):
    """The pack's compatibility package, loaded from its folder (it imports nothing else of the pack),
    as the module ``name``."""
    if name in sys.modules:
        return sys.modules[name]
    if not (COMPAT / "__init__.py").is_file():
        raise RuntimeError(f"embedded mode needs the ComfyUI-WanMasking checkout ({COMPAT} is missing); "
                           "run from the pack's folder, or use --server with a running ComfyUI")
    spec = importlib.util.spec_from_file_location(name, COMPAT / "__init__.py",
                                                  submodule_search_locations=[str(COMPAT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module   # its modules import each other relatively
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


class WorkerDied(RuntimeError):
    """ComfyUI's prompt worker thread is gone: nothing queued will ever run."""


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
        compat = load_compat()
        self.attach(*compat.start_comfyui(comfy_main))

    def attach(self, loop, server) -> None:
        """Use a started ComfyUI (its event loop and PromptServer): its events go to this backend's
        callbacks instead of a websocket, and its prompt worker thread is watched."""
        self.loop, self.server = loop, server
        self.compat = load_compat()
        self._listeners: dict[str, callable] = {}
        self.compat.route_events(server, self._on_event)
        self.worker = self.compat.prompt_worker_thread()
        if self.worker is None:
            log.warning("ComfyUI's prompt worker thread was not found: a crash of it is noticed only by the timeout")

    def _ensure_pack_loaded(self, folder_paths) -> None:
        """Load this pack even when the ComfyUI has it nowhere in custom_nodes (a linked folder)."""
        for folder in folder_paths.get_folder_paths("custom_nodes"):
            if Path(folder).is_dir() and any(p.resolve() == REPO for p in Path(folder).iterdir()):
                return
        holder = Path(tempfile.mkdtemp(prefix="wanmask_custom_nodes_"))
        (holder / "ComfyUI-WanMasking").symlink_to(REPO, target_is_directory=True)
        folder_paths.add_model_folder_path("custom_nodes", str(holder))
        log.info("loading ComfyUI-WanMasking from %s (not in %s's custom_nodes)", REPO, self.path)

    def _on_event(self, event: str, data: dict):
        cb = self._listeners.get(data.get("prompt_id")) or self._listeners.get("*")
        if cb is not None:
            cb(event, data)

    def object_info(self) -> dict:
        return self.compat.object_info()

    def node_replacements(self) -> dict:
        """The node replacements this ComfyUI registers (as ``/node_replacements`` gives them); {} before 0.33."""
        return self.compat.node_replacements(self.server)

    def frontend_version(self) -> str | None:
        """The frontend this ComfyUI serves (its pinned comfyui-frontend-package), for the UI -> API
        conversion; None when unknown."""
        try:
            from importlib.metadata import version

            return version("comfyui-frontend-package")
        except Exception:
            pass
        try:
            from app.frontend_management import FrontendManager

            return FrontendManager.get_required_frontend_version()
        except Exception:
            return None

    def read_output(self, ref: dict) -> bytes:
        import folder_paths

        base = folder_paths.get_directory_by_type(ref.get("type", "output"))
        path = Path(base) / ref.get("subfolder", "") / ref["filename"]
        try:
            return path.read_bytes()
        except FileNotFoundError as e:
            raise OutputGone(f"{path} does not exist") from e

    def upload_input(self, subfolder: str, name: str, data: bytes) -> str:
        """Copy a file into this ComfyUI's input folder's ``subfolder`` (temp name, then rename); the
        value a loader takes for it."""
        import folder_paths

        dest = Path(folder_paths.get_input_directory()) / subfolder / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
        return f"{subfolder}/{name}"

    def interrupt(self) -> None:
        self.compat.interrupt_processing()

    def _check_worker(self, prompt_id: str) -> None:
        if self.worker is not None and not self.worker.is_alive():
            raise WorkerDied(f"ComfyUI's prompt worker thread died, so prompt {prompt_id} will never run; its "
                             "traceback is in the log above. This ComfyUI may be newer than ComfyUI-WanMasking "
                             f"knows ({COMPAT.name} bridges the versions it was tested with).")

    def run(self, prompt: dict, prompt_id: str, on_event=None, timeout: float = 3600.0) -> RunResult:
        self._check_worker(prompt_id)
        done = threading.Event()

        def listener(event, data):
            if on_event is not None:
                on_event(event, data)
            if event == "executing" and data.get("node") is None:
                done.set()

        self._listeners[prompt_id] = listener
        try:
            code, body = self.compat.post_prompt(self.server, self.loop, {
                "prompt": prompt, "prompt_id": prompt_id, "client_id": "embedded"})
            if code != 200:
                return RunResult(prompt_id, False, "invalid", node_errors=body.get("node_errors", {}),
                                 error=body.get("error"))
            prompt_id = body.get("prompt_id", prompt_id)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                entry = self.compat.history_entry(self.server, self.loop, prompt_id)
                if entry and (entry.get("status") or {}).get("status_str") in ("success", "error"):
                    return result_from_history(prompt_id, entry)
                self._check_worker(prompt_id)
                done.wait(0.1)
            # Stop it before giving up: a worker still computing while the interpreter exits aborts it.
            self.interrupt()
            stop_by = time.monotonic() + 60
            while time.monotonic() < stop_by and not self.compat.history_entry(self.server, self.loop, prompt_id):
                if self.worker is not None and not self.worker.is_alive():
                    break
                time.sleep(0.1)
            raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout:.0f}s (interrupted)")
        finally:
            self._listeners.pop(prompt_id, None)
