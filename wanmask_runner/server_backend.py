"""Run prompts on a ComfyUI server over HTTP, with progress from its websocket."""
from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from .results import OutputGone, RunResult, result_from_history

log = logging.getLogger("wanmask_runner")


def multipart(fields: dict[str, str], filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with ``fields`` and one file field ``image`` (as ComfyUI's upload wants)."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class ServerUnreachable(ConnectionError):
    """Nothing answers at the server's URL (refused, unknown host, timed out)."""


HOW_TO_START = ("start ComfyUI with `python main.py --listen 127.0.0.1 --port 8188` in its folder, or pass the "
                "address it prints (\"To see the GUI go to: ...\") with --server URL; or run embedded with --comfyui PATH")


class ServerBackend:
    def __init__(self, url: str, timeout: float = 3600.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex

    def _open(self, req: urllib.request.Request | str):
        """urlopen, with a refused or unknown address named: ServerUnreachable."""
        try:
            return urllib.request.urlopen(req, timeout=60)
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            raise ServerUnreachable(f"no ComfyUI answers at {self.url} ({reason}): {HOW_TO_START}") from e

    def _get(self, path: str):
        with self._open(self.url + path) as r:
            return r.read()

    def object_info(self) -> dict:
        return json.loads(self._get("/object_info"))

    def frontend_version(self) -> str | None:
        """The frontend version the server asks for (``/system_stats``), for the UI -> API
        conversion; None when the server does not say."""
        try:
            system = json.loads(self._get("/system_stats")).get("system", {})
        except (OSError, ValueError, urllib.error.URLError):
            return None
        return system.get("installed_frontend_version") or system.get("required_frontend_version")

    def node_replacements(self) -> dict:
        """The node replacements the server registers (``/node_replacements``, ComfyUI 0.33+):
        old type -> [replacement]; {} where the server has none (0.3.x answers 404)."""
        try:
            return json.loads(self._get("/node_replacements"))
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return {}
            raise

    def upload_input(self, subfolder: str, name: str, data: bytes) -> str:
        """POST /upload/image into the input folder's ``subfolder``; the value a loader takes for it."""
        body, kind = multipart({"subfolder": subfolder, "type": "input", "overwrite": "true"}, name, data)
        req = urllib.request.Request(self.url + "/upload/image", data=body, headers={"Content-Type": kind})
        with self._open(req) as r:
            info = json.loads(r.read())
        return f"{info.get('subfolder') or subfolder}/{info['name']}"

    def interrupt(self) -> None:
        """Stop what the server is running now (POST /interrupt)."""
        req = urllib.request.Request(self.url + "/interrupt", data=b"{}", headers={"Content-Type": "application/json"})
        with self._open(req):
            pass

    def read_output(self, ref: dict) -> bytes:
        q = urllib.parse.urlencode({"filename": ref["filename"], "subfolder": ref.get("subfolder", ""),
                                    "type": ref.get("type", "output")})
        try:
            return self._get(f"/view?{q}")
        except urllib.error.HTTPError as e:
            if e.code == 404:
                raise OutputGone(f"{self.url}/view?{q} answered 404") from e
            raise

    def _listen(self, prompt_id: str, on_event, stop: threading.Event):
        """Forward websocket events of this prompt to on_event (needs websocket-client)."""
        try:
            import websocket  # websocket-client
        except ImportError:
            log.warning("websocket-client is not installed: no progress bar (pip install websocket-client)")
            return
        ws_url = self.url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"
        try:
            ws = websocket.create_connection(ws_url, timeout=1)
        except Exception as e:  # progress is optional; the run itself goes on
            log.warning("no progress: websocket %s failed (%s)", ws_url, e)
            return
        try:
            while not stop.is_set():
                try:
                    msg = ws.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                except Exception:
                    return
                if isinstance(msg, str):
                    data = json.loads(msg)
                    d = data.get("data", {})
                    if d.get("prompt_id") in (None, prompt_id):
                        on_event(data.get("type"), d)
        finally:
            ws.close()

    def run(self, prompt: dict, prompt_id: str, on_event=None, timeout: float | None = None) -> RunResult:
        stop = threading.Event()
        listener = None
        if on_event is not None:
            listener = threading.Thread(target=self._listen, args=(prompt_id, on_event, stop), daemon=True)
            listener.start()
            time.sleep(0.2)  # let the socket connect before the prompt starts
        try:
            body = json.dumps({"prompt": prompt, "client_id": self.client_id, "prompt_id": prompt_id}).encode()
            req = urllib.request.Request(self.url + "/prompt", data=body, headers={"Content-Type": "application/json"})
            try:
                with self._open(req) as r:
                    queued = json.loads(r.read())
            except urllib.error.HTTPError as e:
                err = json.loads(e.read() or b"{}")
                return RunResult(prompt_id, False, "invalid", node_errors=err.get("node_errors", {}),
                                 error=err.get("error"))
            prompt_id = queued.get("prompt_id", prompt_id)
            timeout = self.timeout if timeout is None else timeout
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                hist = json.loads(self._get(f"/history/{prompt_id}"))
                entry = hist.get(prompt_id)
                if entry and entry.get("status", {}).get("status_str") in ("success", "error"):
                    return result_from_history(prompt_id, entry)
                time.sleep(0.25)
            raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout:.0f}s")
        finally:
            stop.set()
            if listener is not None:
                listener.join(2)
