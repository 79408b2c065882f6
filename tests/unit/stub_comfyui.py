"""A stub ComfyUI HTTP server on 127.0.0.1 for the runner's unit tests (no ComfyUI needed).

It answers /object_info, /system_stats, POST /prompt (optionally refusing prompts with node errors),
/history/<id> (success, optionally after a delay, with the outputs a test gives), /view (the content names
the file: ``type|subfolder|filename``), POST /upload/image (multipart, stored in ``uploads``) and
POST /interrupt (counted).
"""
from __future__ import annotations

import json
import threading
import time
import urllib.parse
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OBJECT_INFO = {"Save": {"input": {"required": {"prefix": ("STRING", {"default": "x"})}},
                        "input_order": {"required": ["prefix"]}, "output": [], "output_name": [],
                        "output_node": True}}


class Stub:
    """``outputs``: the history outputs of every prompt, or a function prompt -> outputs. ``validate``:
    prompt -> node_errors (refused with 400 when not empty). ``delay``: seconds a prompt takes."""

    def __init__(self, outputs, gone=(), object_info=None, validate=None, delay: float = 0.0):
        self.outputs, self.gone, self.validate, self.delay = outputs, set(gone), validate, delay
        self.object_info = object_info or OBJECT_INFO
        self.prompts: list[str] = []
        self.bodies: dict[str, dict] = {}
        self.posted: dict[str, float] = {}
        self.views: list[dict] = []
        self.uploads: dict[str, bytes] = {}
        self.interrupts = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, body: bytes, code=200, kind="application/json"):
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                url = urllib.parse.urlparse(self.path)
                if url.path == "/object_info":
                    return self._send(json.dumps(stub.object_info).encode())
                if url.path == "/system_stats":
                    return self._send(json.dumps({"system": {}}).encode())
                if url.path.startswith("/history/"):
                    return self._send(json.dumps(stub.history(url.path.rsplit("/", 1)[1])).encode())
                if url.path == "/view":
                    q = urllib.parse.parse_qs(url.query, keep_blank_values=True)
                    stub.views.append(q)
                    if q["filename"][0] in stub.gone:
                        return self._send(b"Not Found", 404, "text/plain")
                    ref = "|".join(q[k][0] for k in ("type", "subfolder", "filename"))
                    return self._send(ref.encode(), kind="application/octet-stream")
                self._send(b"{}", 404)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/interrupt":
                    stub.interrupts += 1
                    return self._send(b"{}")
                if self.path == "/upload/image":
                    return self._send(json.dumps(stub.upload(self.headers["Content-Type"], raw)).encode())
                if self.path != "/prompt":
                    return self._send(b"{}", 404)
                body = json.loads(raw)
                errors = stub.validate(body["prompt"]) if stub.validate else None
                if errors:
                    return self._send(json.dumps({"error": {"type": "prompt_outputs_failed_validation",
                                                            "message": "Prompt outputs failed validation"},
                                                  "node_errors": errors}).encode(), 400)
                with stub.lock:
                    stub.prompts.append(body["prompt_id"])
                    stub.bodies[body["prompt_id"]] = body["prompt"]
                    stub.posted[body["prompt_id"]] = time.monotonic()
                self._send(json.dumps({"prompt_id": body["prompt_id"], "number": 0, "node_errors": {}}).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def history(self, pid: str) -> dict:
        if pid not in self.bodies or time.monotonic() - self.posted[pid] < self.delay:
            return {}
        outputs = self.outputs(self.bodies[pid]) if callable(self.outputs) else self.outputs
        return {pid: {"status": {"status_str": "success", "completed": True, "messages": []}, "outputs": outputs}}

    def upload(self, content_type: str, raw: bytes) -> dict:
        msg = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
        fields, name, data = {}, None, b""
        for part in msg.iter_parts():
            if part.get_filename():
                name, data = part.get_filename(), part.get_payload(decode=True)
            else:
                fields[part.get_param("name", header="content-disposition")] = part.get_content().strip()
        self.uploads[f"{fields.get('subfolder', '')}/{name}"] = data
        return {"name": name, "subfolder": fields.get("subfolder", ""), "type": fields.get("type", "input")}

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


# ---- a masked job for the batch runner: a mask file input and a seed, one output file per job -------------
MASK_INFO = {"LoadMask": {"input": {"required": {"image": [["on_server.png"], {"image_upload": True}],
                                                 "channel": [["red", "alpha"], {}]}},
                          "output": ["MASK"], "output_name": ["MASK"]},
             "Sample": {"input": {"required": {"seed": ["INT", {"min": 0}], "mask": ["MASK", {}]},
                                  "optional": {"prefix": ["STRING", {}]}},
                        "output": [], "output_name": [], "output_node": True}}
MASK_WORKFLOW = {"1": {"class_type": "LoadMask", "inputs": {"image": "on_server.png", "channel": "red"},
                       "_meta": {"title": "Mask"}},
                 "2": {"class_type": "Sample", "inputs": {"seed": 0, "mask": ["1", 0]}, "_meta": {"title": "Sampler"}}}


def mask_outputs(prompt: dict) -> dict:
    """One output file per prompt, named after its seed (so every job's file differs)."""
    return {"2": {"images": [{"filename": f"out_{prompt['2']['inputs']['seed']}.png", "subfolder": "shots",
                              "type": "output"}]}}


def write_mask_jobs(folder, count: int, name: str = "jobs.jsonl") -> list[dict]:
    """``folder``/wf.json, a mask file per job under masks/, and the JOBS file (JSONL); the jobs."""
    from pathlib import Path

    folder = Path(folder)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    (folder / "wf.json").write_text(json.dumps(MASK_WORKFLOW))
    jobs = []
    for i in range(count):
        (folder / "masks" / f"m{i}.png").write_bytes(b"mask %d" % i)
        jobs.append({"id": f"j{i}", "workflow": "wf.json", "set": {"1.image": f"masks/m{i}.png", "2.seed": i}})
    (folder / name).write_text("".join(json.dumps(j) + "\n" for j in jobs))
    return jobs
