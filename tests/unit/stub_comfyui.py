"""Stub ComfyUIs for the runner's unit tests (no ComfyUI needed): an HTTP server on 127.0.0.1
(:class:`Stub`), and an in-process ComfyUI in the shapes that came after 0.33 (:class:`NewerComfyUI`).

The HTTP stub answers /object_info, /system_stats, POST /prompt (optionally refusing prompts with node errors),
/history/<id> (success, optionally after a delay, with the outputs a test gives), /view (the content names
the file: ``type|subfolder|filename``), POST /upload/image (multipart, stored in ``uploads``) and
POST /interrupt (counted).
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.parse
import uuid
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


# ---- an in-process ComfyUI in the shapes that came after 0.33, for the embedded runner --------------------
# After 0.33, execution.execute / PromptExecutor.execute take an asset_manager and validate_prompt runs
# validate_loops (facts: /work/shared/reference/comfy-after-0.33.md). Here each internal the runner must not
# call itself requires an argument it could not guess, and the calls the server and worker make carry
# arguments 0.33 did not have; only the HTTP API's JSON is as before. Nodes: "Save" (one output file each).
class AssetManager:
    """What the newer executor and validation take."""


async def validate_prompt(prompt_id, prompt, partial_execution_list, asset_manager: AssetManager):
    """Valid when every node is a "Save" (as the newer one: node_errors by node id, outputs to run)."""
    assert isinstance(asset_manager, AssetManager)
    bad = {nid: {"errors": [{"type": "missing_node_type", "message": "Node not found", "details": n["class_type"],
                             "extra_info": {}}], "dependent_outputs": [], "class_type": n["class_type"]}
           for nid, n in prompt.items() if n.get("class_type") != "Save"}
    if bad:
        return (False, {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                        "details": "", "extra_info": {}}, [], bad)
    return (True, None, sorted(prompt), {})


class PromptExecutor:
    def __init__(self, server):
        self.server, self.history_result, self.success = server, {}, False

    def execute(self, prompt, prompt_id, extra_data, execute_outputs, asset_manager: AssetManager):
        assert isinstance(asset_manager, AssetManager)
        outputs = {}
        for nid in execute_outputs:
            self.server.send_sync("executing", {"node": nid, "prompt_id": prompt_id}, extra_data.get("client_id"),
                                  broadcast=False)  # an argument 0.33's send_sync does not take
            prefix = prompt[nid]["inputs"].get("prefix", "x")
            outputs[nid] = {"images": [{"filename": f"{prefix}_00001_.png", "subfolder": "", "type": "output"}]}
        self.history_result, self.success = {"outputs": outputs, "meta": {}}, True


class PromptQueue:
    """A queue whose put/get/get_history take arguments 0.33's did not (required, keyword-only)."""

    def __init__(self):
        self.items, self.history, self.cond = [], {}, threading.Condition()

    def put(self, item, *, origin: str):
        with self.cond:
            self.items.append(item)
            self.cond.notify()

    def get(self, *, timeout: float, worker: str):
        with self.cond:
            if not self.items:
                self.cond.wait(timeout)
            return self.items.pop(0) if self.items else None

    def get_history(self, *, prompt_id: str, include_outputs: bool):
        entry = self.history.get(prompt_id)
        return {prompt_id: entry} if entry is not None and include_outputs else {}


class Route:
    def __init__(self, method, path, handler):
        self.method, self.path, self.handler = method, path, handler


class Response:
    def __init__(self, data, status=200):
        self.status, self.text = status, json.dumps(data)


class NewerPromptServer:
    """A PromptServer with newer internals behind the same routes: POST /prompt validates with the
    asset manager and queues, GET /history/{prompt_id} reads the queue. ``prompt_worker`` runs it."""

    def __init__(self, loop):
        self.loop, self.client_id = loop, None
        self.asset_manager = AssetManager()
        self.prompt_queue = PromptQueue()
        self.executed: list[str] = []
        self.routes = [Route("POST", "/prompt", self.post_prompt),
                       Route("GET", "/history/{prompt_id}", self.get_history_prompt_id)]

    def send_sync(self, event, data, sid=None):
        raise AssertionError("nothing serves a websocket in-process: the runner routes events itself")

    async def post_prompt(self, request):
        body = await request.json()
        usage = request.headers.get("Comfy-Usage-Source")
        prompt_id = body.get("prompt_id") or str(uuid.uuid4())
        valid = await validate_prompt(prompt_id, body["prompt"], None, asset_manager=self.asset_manager)
        if not valid[0]:
            return Response({"error": valid[1], "node_errors": valid[3]}, 400)
        extra = {"client_id": body.get("client_id"), **({"usage": usage} if usage else {})}
        self.prompt_queue.put((0, prompt_id, body["prompt"], extra, valid[2], {}), origin="api")
        return Response({"prompt_id": prompt_id, "number": 0, "node_errors": {}})

    async def get_history_prompt_id(self, request):
        prompt_id = request.match_info.get("prompt_id")
        return Response(self.prompt_queue.get_history(prompt_id=prompt_id, include_outputs=True))


def prompt_worker(queue: PromptQueue, server: NewerPromptServer, stop: threading.Event):
    """The worker thread (named "(prompt_worker)" after its target, as ComfyUI's is)."""
    executor = PromptExecutor(server)
    while not stop.is_set():
        item = queue.get(timeout=0.05, worker="0")
        if item is None:
            continue
        executor.execute(item[2], item[1], item[3], item[4], asset_manager=server.asset_manager)
        server.executed.append(item[1])
        queue.history[item[1]] = {"prompt": list(item[:5]), **executor.history_result,
                                  "status": {"status_str": "success", "completed": True, "messages": []}}
        server.send_sync("executing", {"node": None, "prompt_id": item[1]}, server.client_id, broadcast=True)


class NewerComfyUI:
    """``main`` of such a ComfyUI: start_comfyui() returns the loop, the server, the start function
    and, where 0.33 returned three things, one more (its asset manager), in an order of its own."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.server = NewerPromptServer(self.loop)
        self.stop = threading.Event()
        self.worker = threading.Thread(target=prompt_worker, args=(self.server.prompt_queue, self.server, self.stop),
                                       daemon=True)

    def start_comfyui(self, asyncio_loop=None):
        self.worker.start()
        return self.server, self.loop, lambda: None, self.server.asset_manager

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.worker.is_alive():
            self.worker.join(5)
        self.loop.close()


# ---- ComfyUI's loop nodes (StartLoop / EndLoop, after 0.33) in /object_info, and a workflow using them ----
# Their V1 info as 0.33's V3 API renders the declarations of comfy_extras/nodes_loop.py (Comfy-Org/ComfyUI
# 023f153; loop_boundary, which 0.33's Schema lacks, and the tooltips left out): a dynamic combo "mode", an
# autogrow "terminations", MatchType sockets. Plus four plain nodes for the loop body.
def _int(**opts):
    return ["INT", opts]


_MATCH = "COMFY_MATCHTYPE_V3"
LOOP_NODES_INFO = {
    "StartLoop": {
        "input": {"required": {
            "mode": ["COMFY_DYNAMICCOMBO_V3", {"options": [
                {"key": "simple", "inputs": {"required": {"num_iterations": _int(default=4, min=0)}}},
                {"key": "For", "inputs": {"required": {"start_iteration_index": _int(default=0),
                                                       "max_iteration": _int(default=4, max=2 ** 64 - 1),
                                                       "step": _int(default=1, min=1)}}},
                {"key": "List", "inputs": {"required": {"list": [_MATCH, {"template": {
                    "template_id": "list_item", "allowed_types": "*"}}]}}}]}],
            "cache_iterations": ["BOOLEAN", {"advanced": True, "default": False}]},
            "optional": {"parent_iteration": _int(forceInput=True),
                         "initial_iteration_value": [_MATCH, {"template": {"template_id": "carried_value",
                                                                           "allowed_types": "*"}}]},
            "hidden": {"dynprompt": ["DYNPROMPT"], "unique_id": ["UNIQUE_ID"]}},
        "input_order": {"required": ["mode", "cache_iterations"], "optional": ["parent_iteration", "initial_iteration_value"],
                        "hidden": ["dynprompt", "unique_id"]},
        "is_input_list": True, "output": ["INT", "BOOLEAN", "BOOLEAN", _MATCH, _MATCH],
        "output_is_list": [False] * 5,
        "output_name": ["iteration_index", "is_first", "is_last", "list_item", "current_iteration_value"],
        "name": "StartLoop", "display_name": "Start Loop", "category": "utilities/looping", "output_node": False},
    "EndLoop": {
        "input": {"required": {"accumulate": ["BOOLEAN", {"default": False}]},
                  "optional": {"output_value": [_MATCH, {"template": {"template_id": "output_value", "allowed_types": "*"}}],
                               "next_iteration_value": [_MATCH, {"template": {"template_id": "carried_value",
                                                                              "allowed_types": "*"}}],
                               "terminations": ["COMFY_AUTOGROW_V3", {"template": {
                                   "input": {"required": {"termination": ["*", {}]}}, "prefix": "termination",
                                   "min": 0, "max": 50}}]},
                  "hidden": {"unique_id": ["UNIQUE_ID"]}},
        "input_order": {"required": ["accumulate"], "optional": ["output_value", "next_iteration_value", "terminations"],
                        "hidden": ["unique_id"]},
        "is_input_list": True, "output": [_MATCH], "output_is_list": [True], "output_name": ["outputs"],
        "name": "EndLoop", "display_name": "End Loop", "category": "utilities/looping", "output_node": False},
    "Const": {"input": {"required": {"value": _int(default=0)}}, "input_order": {"required": ["value"]},
              "output": ["INT"], "output_name": ["INT"]},
    "Mul": {"input": {"required": {"a": _int(forceInput=True), "b": _int(default=1)}},
            "input_order": {"required": ["a", "b"]}, "output": ["INT"], "output_name": ["INT"]},
    "Check": {"input": {"required": {"value": ["*", {}]}}, "input_order": {"required": ["value"]},
              "output": ["*"], "output_name": ["*"]},
    "Show": {"input": {"required": {"value": ["*", {}]}}, "input_order": {"required": ["value"]},
             "output": [], "output_name": [], "output_node": True},
}


def loop_workflow(mode: str = "For", loop_first: bool = False) -> dict:
    """A UI-format workflow (as the frontend saves it) with a loop: Const 1 -> StartLoop 2 (initial value;
    in "simple" mode Const also feeds its promoted num_iterations widget) -> Mul 3 (iteration_index x 10)
    -> EndLoop 5 (output and next value, accumulate on; Check 4 of the carried value on termination0)
    -> Show 6. ``loop_first`` puts the loop nodes first in the node list."""
    from comfyui_wanmasking.tests.integration.built_workflows import node

    start_inputs = [("parent_iteration", "INT", None), ("initial_iteration_value", "*", 1)]
    widgets = ["For", 2, 14, 3, False] if mode == "For" else ["simple", 4, False]
    if mode != "For":
        start_inputs.append(("mode.num_iterations", "INT", 8, "mode.num_iterations"))
    nodes = [node(2, "StartLoop", start_inputs, [("iteration_index", "INT", [2]), ("is_first", "BOOLEAN", []),
                                                 ("is_last", "BOOLEAN", []), ("list_item", "*", []),
                                                 ("current_iteration_value", "*", [3])], widgets),
             node(5, "EndLoop", [("output_value", "*", 4), ("next_iteration_value", "*", 5),
                                 ("terminations.termination0", "*", 6), ("terminations.termination1", "*", None)],
                  [("outputs", "INT", [7])], [True]),
             node(1, "Const", [], [("INT", "INT", [1] + ([8] if mode != "For" else []))], [5]),
             node(3, "Mul", [("a", "INT", 2)], [("INT", "INT", [4, 5])], [10]),
             node(4, "Check", [("value", "*", 3)], [("*", "*", [6])]),
             node(6, "Show", [("value", "*", 7)], [])]
    links = [[1, 1, 0, 2, 1, "INT"], [2, 2, 0, 3, 0, "INT"], [3, 2, 4, 4, 0, "*"], [4, 3, 0, 5, 0, "INT"],
             [5, 3, 0, 5, 1, "INT"], [6, 4, 0, 5, 2, "*"], [7, 5, 0, 6, 0, "INT"]]
    if mode != "For":
        links.append([8, 1, 0, 2, 2, "INT"])
    if not loop_first:
        nodes = nodes[2:] + nodes[:2]
    return {"last_node_id": 6, "last_link_id": len(links), "nodes": nodes, "links": links, "groups": [],
            "config": {}, "extra": {"frontendVersion": "1.58.1"}, "version": 0.4}
