"""The Dask cluster of a batch: started and stopped by the command (a LocalCluster, loopback only), or a
running one joined with ``--scheduler``.

* ``--server URL`` (repeated): one worker thread per server, in this process, one job at a time each.
* ``--comfyui PATH --workers N`` (the default, with the ComfyUI found as ``COMFYUI_PATH`` or the one this
  pack is installed in): N worker processes, each with its own embedded ComfyUI, kept alive across jobs;
  one GPU per worker (``--gpus``, else CUDA_VISIBLE_DEVICES or the GPUs nvidia-smi lists).
* ``--scheduler ADDRESS``: the workers offering ``comfyui`` there, each started with the pack's preload
  (``wanmask_runner/batch_worker.py``), run the jobs.

Dask places the jobs, retries them (``retries``) and reschedules those of lost workers (its
``allowed-failures``, set to ``retries`` for the clusters this module starts).
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager

import dask
from distributed import Client, LocalCluster

from .batch_slots import PLUGIN, RESOURCE, ComfySlots, interrupt_slot, retire_slot, slot_status
from .locate import PACKAGE, REPO

log = logging.getLogger("wanmask_runner")
WORKER_LINE = ("python -m dask worker SCHEDULER:8786 --nthreads 1 --resources comfyui=1 "
               "--preload wanmask_runner.batch_worker --wanmask-comfyui /path/to/ComfyUI")


class ClusterError(RuntimeError):
    """No cluster, or no ComfyUI slot in it."""


def detect_gpus() -> list[str]:
    """CUDA_VISIBLE_DEVICES when set, else the GPUs nvidia-smi lists, else none (CPU)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def preload_script() -> str:
    """Run in each worker process before anything else: Ctrl-C is left to the batch command (it interrupts
    the jobs, then stops the cluster), and the pack is importable under the name this process uses."""
    package = __name__.split(".")[0]
    return "\n".join([
        "import importlib.util, signal, sys",
        "try:",
        "    signal.signal(signal.SIGINT, signal.SIG_IGN)",
        "except ValueError:",
        "    pass",
        f"if {package!r} == {PACKAGE!r} and {PACKAGE!r} not in sys.modules:",
        f"    spec = importlib.util.spec_from_file_location({PACKAGE!r}, {str(REPO / '__init__.py')!r},"
        f" submodule_search_locations=[{str(REPO)!r}])",
        f"    sys.modules[{PACKAGE!r}] = importlib.util.module_from_spec(spec)",
        f"    spec.loader.exec_module(sys.modules[{PACKAGE!r}])",
        f"elif {str(REPO)!r} not in sys.path:",
        f"    sys.path.insert(0, {str(REPO)!r})",
    ])


class BatchCluster:
    """The client, the cluster (None when joined), the slots; ``with`` stops what it started."""

    def __init__(self, *, servers=(), comfyui=None, workers: int = 1, scheduler: str | None = None,
                 comfy_args=(), gpus=None, timeout: float = 3600.0, retries: int = 2):
        self.cluster, self.work_root = None, None
        with dask.config.set({"distributed.scheduler.allowed-failures": retries,
                              "distributed.scheduler.work-stealing": True}):
            if scheduler:
                self.client = Client(scheduler, timeout=60)
                self.mode = f"the cluster at {scheduler}"
            elif servers:
                self.cluster = LocalCluster(n_workers=len(servers), threads_per_worker=1, processes=False,
                                            resources={RESOURCE: 1}, dashboard_address="127.0.0.1:0")
                self.client = Client(self.cluster)
                self.client.register_plugin(ComfySlots(servers=servers, timeout=timeout), name=PLUGIN)
                self.mode = f"{len(servers)} ComfyUI server(s)"
            else:
                gpus = detect_gpus() if gpus is None else list(gpus)
                if gpus and workers > len(gpus):
                    log.warning("%d workers share %d GPU(s): GPU memory is shared too", workers, len(gpus))
                self.work_root = tempfile.mkdtemp(prefix="wanmask-batch-")  # the slots' ComfyUI folders
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                            host="127.0.0.1", resources={RESOURCE: 1}, memory_limit=0,
                                            dashboard_address="127.0.0.1:0", preload=[preload_script()])
                self.client = Client(self.cluster)
                self.client.register_plugin(ComfySlots(comfyui=str(comfyui), comfy_args=comfy_args, gpus=gpus,
                                                       timeout=timeout, work_root=self.work_root), name=PLUGIN)
                self.mode = f"{workers} embedded ComfyUI worker(s) from {comfyui}" + \
                    (f" on GPU(s) {', '.join(gpus)}" if gpus else "")

    def __enter__(self) -> "BatchCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        if self.work_root is not None:  # also the folders of a worker that was killed
            shutil.rmtree(self.work_root, ignore_errors=True)

    def dashboard(self) -> str | None:
        """The dashboard's address, None when the scheduler serves none (bokeh missing)."""
        if not self.client.scheduler_info().get("services", {}).get("dashboard"):
            return None
        return self.client.dashboard_link

    def slots(self) -> dict[str, dict]:
        """Worker address -> its slot (instance, kind, down, busy), for the workers that have one."""
        return {addr: s for addr, s in self.client.run(slot_status, on_error="return").items() if isinstance(s, dict)}

    def check_slots(self) -> dict[str, dict]:
        """The slots that answer. Those that do not are reported and retired before any job; raises
        ClusterError when none is left."""
        slots = self.slots()
        if not slots:
            raise ClusterError(f"no worker of {self.mode} offers a ComfyUI slot; on each GPU machine start "
                               f"one worker per GPU with:\n  {WORKER_LINE}")
        down = {addr: s for addr, s in slots.items() if s["down"]}
        for addr, s in down.items():
            log.warning("slot %s is left out: %s", s["instance"], s["down"])
            self.client.run(retire_slot, why=s["down"], workers=[addr], on_error="return")
        alive = {addr: s for addr, s in slots.items() if addr not in down}
        if not alive:
            raise ClusterError("no ComfyUI answers: " + "; ".join(s["down"] for s in down.values()))
        return alive

    def interrupt(self) -> list[str]:
        """Interrupt the prompt running on every slot (Ctrl-C); the jobs that were running."""
        try:
            busy = self.client.run(interrupt_slot, on_error="return")
        except Exception as e:  # the cluster may be going down with the Ctrl-C
            log.warning("could not reach every slot to interrupt it: %s", e)
            return []
        return [job for job in busy.values() if isinstance(job, str)]


class ReportedElsewhere(logging.Filter):
    """Drops Dask's reports of what the batch reports or does itself: the "Compute Failed" of a lost slot's
    job (Dask runs it again), the cancelled tasks of a Ctrl-C, and the worker processes stopped at the end
    (an embedded ComfyUI's threads keep its process up until the nanny ends it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(known in text for known in ("SlotLost", "ended with CancelledError",
                                                   "Worker process still alive after"))


@contextmanager
def quiet_dask():
    """Dask's own INFO logging off the terminal (its warnings stay, but for those the batch reports itself)."""
    names = ("distributed", "tornado")
    saved = {n: logging.getLogger(n).level for n in names}
    quiet = ReportedElsewhere()
    handlers = [h for n in ("distributed", "") for h in logging.getLogger(n).handlers]
    for n in names:
        logging.getLogger(n).setLevel(logging.WARNING)
    for h in handlers:
        h.addFilter(quiet)
    try:
        yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)
        for h in handlers:
            h.removeFilter(quiet)
