"""The worker side of a batch: each Dask worker holds one ComfyUI (a "slot") and runs one job at a time on it.

:class:`ComfySlots` is a Dask worker plugin. On each worker it sets up the slot: a running ComfyUI server
it talks to over HTTP, or an embedded ComfyUI started in the worker's process (its own input, output, temp
and user folders, its own GPU through CUDA_VISIBLE_DEVICES), kept for the worker's life so its models
stay loaded. Workers offer the resource ``comfyui=1``; the batch's tasks ask for it.

The tasks: :func:`prepare` (the workflows in API format, the node types' declarations) and :func:`run_job`
(upload the job's input files, run the prompt, send back the output files). A slot whose ComfyUI stops
answering mid-job is lost: the worker stops offering ``comfyui``, reports it, closes, and the job fails
with :class:`SlotLost`, which Dask retries on another slot (``retries``). A job that ComfyUI refuses or
that fails in a node is a result, never retried.
"""
from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path

from distributed import Reschedule, WorkerPlugin, get_worker
from distributed.utils import sync

from .api import output_destination, to_api
from .backends import open_backend
from .batch_records import ref_key
from .embedded_backend import WorkerDied
from .results import OutputGone

log = logging.getLogger("wanmask_runner")
PLUGIN, RESOURCE, TOPIC = "wanmask-slot", "comfyui", "wanmask-batch"
START_TIMEOUT = 900.0


class SlotLost(RuntimeError):
    """The slot's ComfyUI is gone mid-job (server unreachable, embedded worker thread dead)."""


class SlotDown(RuntimeError):
    """The slot's embedded ComfyUI did not start."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class ServerSlot:
    kind = "server"

    def __init__(self, url: str, timeout: float, where: str | None = None):
        self.url = url.rstrip("/")
        self.label = self.url if where is None else f"{self.url} ({where})"
        self.backend = open_backend(server=self.url, timeout=timeout)
        self.uploaded: dict[tuple, str] = {}
        self.busy: str | None = None
        self.dead: str | None = None

    def ready(self):
        return self.backend

    def why_down(self) -> str | None:
        """None when the server answers, else why not."""
        try:
            with urllib.request.urlopen(self.url + "/system_stats", timeout=5):
                return None
        except (OSError, http.client.HTTPException) as e:
            return f"ComfyUI at {self.url} does not answer ({e})"

    def upload(self, subfolder: str, name: str, data: bytes) -> str:
        """POST /upload/image into the input folder's ``subfolder``; the name ComfyUI gave it."""
        return self.backend.upload_input(subfolder, name, data)

    def cached_nodes(self, prompt_id: str) -> list[str]:
        """The nodes ComfyUI reused from its cache in this prompt (its history's execution_cached)."""
        try:
            with urllib.request.urlopen(f"{self.url}/history/{prompt_id}", timeout=30) as r:
                entry = json.loads(r.read()).get(prompt_id, {})
        except (OSError, ValueError, http.client.HTTPException):
            return []
        return [n for event, data in entry.get("status", {}).get("messages", [])
                if event == "execution_cached" for n in data.get("nodes", [])]

    def interrupt(self) -> None:
        self.backend.interrupt()

    def close(self) -> None:
        pass


class EmbeddedSlot:
    """ComfyUI started in this worker's process, in a thread (it sets up its own asyncio loop there), with
    its own folders; the first job waits for it."""
    kind = "embedded"

    def __init__(self, comfyui: str, comfy_args, tag: str, gpu: str | None, timeout: float, work_root=None):
        self.label = f"embedded {socket.gethostname()} {tag}" + (f" (GPU {gpu})" if gpu is not None else "")
        self.work = Path(tempfile.mkdtemp(prefix="wanmask-slot-", dir=work_root))
        self.input = self.work / "input"
        for kind in ("input", "output", "temp", "user"):
            (self.work / kind).mkdir()
        dirs = [f"--{kind}-directory={self.work / kind}" for kind in ("input", "output", "temp", "user")]
        self.args = [*comfy_args, *dirs]
        self.comfyui, self.timeout = comfyui, timeout
        self.uploaded: dict[tuple, str] = {}
        self.busy: str | None = None
        self.dead: str | None = None
        self.cached: dict[str, list[str]] = {}
        self.backend, self.error = None, None
        self.started = threading.Event()
        threading.Thread(target=self.start, name="wanmask-comfyui-start", daemon=True).start()

    def start(self) -> None:
        try:
            self.backend = open_backend(comfyui=self.comfyui, comfy_args=self.args, timeout=self.timeout)
        except BaseException as e:  # reported to every job of this slot
            self.error = f"embedded ComfyUI ({self.comfyui}) did not start: {type(e).__name__}: {e}"
        finally:
            self.started.set()

    def ready(self):
        if not self.started.wait(START_TIMEOUT):
            raise SlotDown(f"embedded ComfyUI ({self.comfyui}) has not started after {START_TIMEOUT:.0f} s")
        if self.error:
            raise SlotDown(self.error)
        return self.backend

    def why_down(self) -> str | None:
        if self.error:
            return self.error
        worker = getattr(self.backend, "worker", None)
        return "embedded ComfyUI's prompt worker thread died" if worker is not None and not worker.is_alive() else None

    def upload(self, subfolder: str, name: str, data: bytes) -> str:
        """Copy into this ComfyUI's input folder (temp name, then rename)."""
        dest = self.input / subfolder / name
        if not (dest.is_file() and dest.stat().st_size == len(data)):
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{name}.{uuid.uuid4().hex[:8]}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, dest)
        return f"{subfolder}/{name}"

    def cached_nodes(self, prompt_id: str) -> list[str]:
        return self.cached.pop(prompt_id, [])

    def on_event(self, event: str, data: dict) -> None:
        if event == "execution_cached":
            self.cached.setdefault(data.get("prompt_id"), []).extend(data.get("nodes", []))

    def interrupt(self) -> None:
        if self.backend is not None:
            self.backend.interrupt()

    def close(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


class ComfySlots(WorkerPlugin):
    """Gives each worker its slot: ``servers[i]`` (worker name ``i``, as LocalCluster names them; any worker
    when there is one server) or an embedded ComfyUI from ``comfyui`` (GPU ``gpus[i]``, when given; its
    folders in a temporary folder under ``work_root``)."""
    name = PLUGIN

    def __init__(self, servers=(), comfyui: str | None = None, comfy_args=(), gpus=(), timeout: float = 3600.0,
                 work_root: str | None = None):
        if bool(servers) == bool(comfyui):
            raise ValueError("a slot is one of: a ComfyUI server URL, or a ComfyUI folder to embed")
        self.servers, self.comfyui, self.work_root = list(servers), comfyui, work_root
        self.comfy_args, self.gpus, self.timeout = list(comfy_args), [str(g) for g in gpus], timeout
        self.slot = None

    def setup(self, worker):
        local = isinstance(worker.name, int)  # a LocalCluster of the batch command names its workers 0..N-1
        index = worker.name if local else 0
        if self.servers:
            where = None if local else f"{socket.gethostname()} {worker.name}"
            self.slot = ServerSlot(self.servers[index % len(self.servers)], self.timeout, where)
            return
        gpu = self.gpus[index % len(self.gpus)] if self.gpus else None
        if gpu is not None:  # before ComfyUI (and torch's CUDA) starts in this process
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
        self.slot = EmbeddedSlot(self.comfyui, self.comfy_args, f"#{index}" if local else str(worker.name),
                                 gpu or os.environ.get("CUDA_VISIBLE_DEVICES"), self.timeout, self.work_root)

    def teardown(self, worker):
        if self.slot is not None:
            self.slot.close()


def current_slot(worker=None):
    worker = worker or get_worker()
    plugin = worker.plugins.get(PLUGIN)
    if plugin is None or plugin.slot is None:
        raise RuntimeError(f"worker {worker.address} has no ComfyUI slot: start it with the wanmask preload "
                           "(see the README, 'Batch and cluster runs')")
    return plugin.slot


def slot_status(dask_worker) -> dict | None:
    """For ``client.run``: this worker's slot (instance, kind, why it is down or None, the job it runs)."""
    plugin = dask_worker.plugins.get(PLUGIN)
    slot = getattr(plugin, "slot", None)
    if slot is None:
        return None
    return {"instance": slot.label, "kind": slot.kind, "down": slot.dead or slot.why_down(), "busy": slot.busy}


def interrupt_slot(dask_worker) -> str | None:
    """For ``client.run`` (Ctrl-C): interrupt the prompt this worker's slot runs; the job it was."""
    slot = getattr(dask_worker.plugins.get(PLUGIN), "slot", None)
    if slot is None or slot.busy is None:
        return None
    try:
        slot.interrupt()
    except Exception as e:  # the instance may be gone too; the batch is stopping either way
        log.warning("could not interrupt %s: %s", slot.label, e)
    return slot.busy


def retire_slot(dask_worker, why: str) -> None:
    """For ``client.run``: a slot found down before any job: stop offering it, close the worker."""
    slot = current_slot(dask_worker)
    slot.dead = why
    dask_worker.loop.add_callback(stop_offering, dask_worker, why)


async def stop_offering(worker, why: str) -> None:
    await worker.set_resources(**{RESOURCE: 0})
    worker.loop.call_later(0.5, worker.close_gracefully, reason=f"wanmask: {why}")


def prepare(workflows: dict[str, dict]) -> dict:
    """On one slot: each workflow in API format (UI format converted with this ComfyUI's /object_info,
    frontend version and node replacements) and the declarations of the node types they use."""
    worker = get_worker()
    slot = current_slot(worker)
    try:
        backend = slot.ready()
    except SlotDown as e:
        lose_slot(worker, slot, str(e))
        raise SlotLost(str(e)) from e
    info = backend.object_info()
    prompts = {key: to_api(wf, lambda: info, getattr(backend, "frontend_version", None),
                           getattr(backend, "node_replacements", None)) for key, wf in workflows.items()}
    kinds = {n.get("class_type") for p in prompts.values() for n in p.values() if isinstance(n, dict)}
    # as /object_info serves it: plain JSON (an embedded ComfyUI's declarations may hold its own enum objects,
    # which the client, without ComfyUI, could not unpickle)
    return json.loads(json.dumps({"prompts": prompts, "object_info": {k: info[k] for k in kinds if k in info},
                                  "instance": slot.label}, default=str))


def run_job(job: dict, files: dict[str, bytes]) -> dict:
    """Run one job on this worker's slot. ``job``: id, prompt (API, overrides applied), uploads
    ([node, input, sha256, name]), subfolder, timeout; ``files``: sha256 -> content. Returns the job's
    result (status done or failed, error, node_errors, outputs and their bytes); raises SlotLost when the
    slot's ComfyUI is gone."""
    worker = get_worker()
    slot = current_slot(worker)
    if slot.dead:
        raise Reschedule()  # this worker is closing; Dask places the job elsewhere
    start = now()
    worker.log_event(TOPIC, {"kind": "start", "job": job["id"], "instance": slot.label, "worker": worker.address,
                             "time": start})
    result = {"id": job["id"], "instance": slot.label, "worker": worker.address, "start": start,
              "status": "failed", "error": None, "node_errors": {}, "outputs": {}, "blobs": {}, "gone": {}}
    slot.busy = job["id"]
    try:
        backend = slot.ready()
        run = run_prompt(slot, backend, job, files)
        result.update(prompt_id=run.prompt_id, cached_nodes=slot.cached_nodes(run.prompt_id))
        if run.status == "invalid":
            result.update(error=f"ComfyUI refused the prompt (validation):\n{run.describe()}",
                          node_errors=run.node_errors)
        elif not run.ok:
            result.update(error=f"the workflow {run.status}:\n{run.describe()}",
                          interrupted=run.status == "interrupted")
        else:
            ship_outputs(backend, run.outputs, result)
            result.update(status="done", outputs=run.outputs)
    except TimeoutError as e:
        slot.interrupt()
        result["error"] = f"{e}; interrupted on {slot.label}"
    except (OSError, http.client.HTTPException, WorkerDied, SlotDown) as e:
        why = str(e) if isinstance(e, (WorkerDied, SlotDown)) else slot.why_down()
        if why is None:
            raise  # the instance still answers: a passing failure, Dask retries the job
        lose_slot(worker, slot, why)
        worker.log_event(TOPIC, {"kind": "attempt-failed", "job": job["id"], "instance": slot.label,
                                 "error": f"{why} (mid-job, {type(e).__name__})"})
        raise SlotLost(f"{why} (mid-job, {type(e).__name__})") from e
    except Exception as e:  # a job that cannot run (a bad file, a bug): its result, not retried
        result["error"] = f"{type(e).__name__}: {e}"
    finally:
        slot.busy = None
    result["end"] = now()
    return result


def run_prompt(slot, backend, job: dict, files: dict[str, bytes]):
    """Upload the job's files (once per slot), point the prompt at them, run it."""
    prompt = json.loads(json.dumps(job["prompt"]))
    for node, name, sha, upload_name in job["uploads"]:
        key = (job["subfolder"], sha, upload_name)
        if key not in slot.uploaded:
            slot.uploaded[key] = slot.upload(job["subfolder"], upload_name, files[sha])
        prompt[node]["inputs"][name] = slot.uploaded[key]
    return backend.run(prompt, prompt_id=str(uuid.uuid4()), timeout=job["timeout"],
                       on_event=getattr(slot, "on_event", None))


def lose_slot(worker, slot, why: str) -> None:
    """The slot's ComfyUI is gone: report it, stop offering ``comfyui`` (so the retry goes elsewhere), and
    close the worker so that Dask moves the jobs it holds."""
    if slot.dead:
        return
    slot.dead = why
    worker.log_event(TOPIC, {"kind": "slot-lost", "instance": slot.label, "worker": worker.address, "why": why,
                             "time": now()})
    sync(worker.loop, stop_offering, worker, why)


def ship_outputs(backend, outputs: dict, result: dict) -> None:
    """Read every output file a job's history lists (names that would leave the output folder are left
    for the client to refuse and report), into ``result['blobs']``; the missing ones into ``gone``."""
    probe = Path(tempfile.gettempdir()) / "wanmask-probe"
    for node_outputs in outputs.values():
        for refs in node_outputs.values() if isinstance(node_outputs, dict) else ():
            for ref in refs if isinstance(refs, list) else ():
                if not (isinstance(ref, dict) and isinstance(ref.get("filename"), str)):
                    continue
                if isinstance(output_destination(probe, ref), str):
                    continue
                try:
                    result["blobs"][ref_key(ref)] = backend.read_output(ref)
                except OutputGone as e:
                    result["gone"][ref_key(ref)] = str(e)

