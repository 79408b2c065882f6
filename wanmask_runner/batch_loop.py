"""The client side of a running batch: hand the jobs to Dask, record each as it finishes, follow the slots.

Jobs go to Dask a few per slot ahead (their input files travel with them, so a batch of large clips is
never all in memory at once); Dask places them, retries them and moves those of lost workers. Each job's
attempts are followed through the events the slots log (topic ``wanmask-batch``), so a job that ran
again after its slot died says so in its record. Ctrl-C interrupts the prompts running on the
instances, cancels the rest, keeps what finished and raises :class:`BatchInterrupted`; it takes effect
between two steps of the loop, so a record or an output folder is never half written (a second Ctrl-C
stops at once).
"""
from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
import warnings
from collections import deque
from concurrent.futures import TimeoutError as FuturesTimeout

from distributed import wait
from distributed.client import FutureCancelledError

from .batch_jobs import JobPlan
from .batch_records import BatchInterrupted, Records, ShippedOutputs, write_job_outputs
from .batch_slots import RESOURCE, TOPIC, run_job

log = logging.getLogger("wanmask_runner")
NO_SLOT_GRACE = 30.0  # seconds with no live slot before the remaining jobs fail
STOP_WAIT = 20.0  # seconds Ctrl-C waits for the interrupted prompts to end


class BatchLoop:
    def __init__(self, cluster, plans: list[JobPlan], records: Records, specs: dict[str, str], *,
                 subfolder: str, retries: int, timeout: float, progress, live_slots: dict[str, dict]):
        self.cluster, self.client = cluster, cluster.client
        self.records, self.specs, self.progress = records, specs, progress
        self.subfolder, self.retries, self.timeout = subfolder, retries, timeout
        self.pending = deque(p for p in plans if p.missing is None)
        self.refused = [p for p in plans if p.missing is not None]
        self.in_flight: dict = {}              # future -> plan
        self.attempts: dict[str, list[dict]] = {}
        self.running: dict[str, tuple[str, float]] = {}   # instance -> (job id, monotonic start)
        self.lost: dict[str, str] = {}
        self.instances = {addr: s["instance"] for addr, s in live_slots.items()}
        self.live = len(live_slots)
        self.finished = 0
        self.ran: set[str] = set()
        self.lock = threading.Lock()
        self.key = uuid.uuid4().hex[:8]
        for s in live_slots.values():
            progress.slot(s["instance"])

    # ---- events (called on the client's event loop thread) --------------------------------------
    def on_event(self, event) -> None:
        _, msg = event
        with self.lock:
            kind, job = msg.get("kind"), msg.get("job")
            if kind == "start":
                tries = self.attempts.setdefault(job, [])
                if tries and tries[-1].get("error") is None and tries[-1].get("worker") != msg["worker"]:
                    tries[-1]["error"] = "its worker was lost mid-job (process died or left the cluster)"
                tries.append({"instance": msg["instance"], "worker": msg["worker"], "start": msg["time"],
                              "error": None})
                self.running[msg["instance"]] = (job, time.monotonic())
                self.instances[msg["worker"]] = msg["instance"]
            elif kind == "attempt-failed":
                tries = self.attempts.setdefault(job, [{"instance": msg["instance"], "start": None}])
                tries[-1]["error"] = msg["error"]
                if self.running.get(msg["instance"], (None,))[0] == job:
                    self.running.pop(msg["instance"])
            elif kind == "slot-lost" and msg["instance"] not in self.lost:
                self.lost[msg["instance"]] = msg["why"]
                self.live -= 1
                self.running.pop(msg["instance"], None)
                self.progress.slot(msg["instance"], lost=msg["why"])
                log.warning("slot lost: %s (%s); its jobs go to the other slots", msg["instance"], msg["why"])

    def on_cluster_event(self, event) -> None:
        _, msg = event
        if msg.get("action") == "remove-worker" and not msg.get("expected"):
            instance = self.instances.get(msg.get("worker"), msg.get("worker"))
            log.warning("worker %s (%s) left the cluster unexpectedly; Dask reschedules its jobs",
                        msg.get("worker"), instance)

    # ---- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        for plan in self.refused:
            self.record(plan, {"status": "failed", "error": plan.missing})
        self.client.subscribe_topic(TOPIC, self.on_event)
        self.client.subscribe_topic("all", self.on_cluster_event)
        no_slot_since = None
        stop = threading.Event()

        def on_ctrl_c(signum, frame):  # the first Ctrl-C stops between two steps, never inside a write
            if stop.is_set():
                raise KeyboardInterrupt
            stop.set()

        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, on_ctrl_c) if main else None
        try:
            while self.pending or self.in_flight:
                if stop.is_set():
                    raise KeyboardInterrupt
                while self.pending and len(self.in_flight) < max(2, 2 * self.live):
                    self.submit(self.pending.popleft())
                try:
                    done, _ = wait(list(self.in_flight), timeout=0.5, return_when="FIRST_COMPLETED")
                except (TimeoutError, FuturesTimeout):
                    done = []
                for fut in done:
                    self.collect(fut)
                no_slot_since = self.check_live(no_slot_since)
                self.show()
        except KeyboardInterrupt:
            self.stop()
            raise BatchInterrupted([p.job.id for p in (*self.in_flight.values(), *self.pending)], self.ran) from None
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
            self.client.unsubscribe_topic(TOPIC)
            self.client.unsubscribe_topic("all")

    def submit(self, plan: JobPlan) -> None:
        job = {"id": plan.job.id, "prompt": plan.prompt, "subfolder": self.subfolder, "timeout": self.timeout,
               "uploads": [[f.node, f.input, f.sha256, f.upload_name] for f in plan.files]}
        files = {f.sha256: f.path.read_bytes() for f in plan.files}
        with warnings.catch_warnings():  # input clips travel with their job, on purpose
            warnings.filterwarnings("ignore", message=".*[Ll]arge graph.*")
            fut = self.client.submit(run_job, job, files, key=f"wanmask-job-{self.key}-{plan.job.id}",
                                     resources={RESOURCE: 1}, retries=self.retries, pure=False)
        self.in_flight[fut] = plan

    def collect(self, fut) -> None:
        plan = self.in_flight.pop(fut)
        if fut.status == "finished":
            self.record(plan, fut.result())
            return
        try:
            exc = fut.exception()
        except FutureCancelledError as e:
            exc = e
        name = type(exc).__name__
        if name == "KilledWorker":
            error = (f"the workers running it died {self.retries + 1} time(s) (Dask's allowed-failures is "
                     f"{self.retries}): {exc}")
        elif name == "SlotLost":
            error = f"its ComfyUI was lost on every attempt: {exc}"
        else:
            error = f"{name}: {exc}"
        self.record(plan, {"status": "failed", "error": error})

    def record(self, plan: JobPlan, res: dict) -> None:
        job = plan.job
        with self.lock:
            tries = list(self.attempts.get(job.id, []))
            if self.running.get(res.get("instance"), (None,))[0] == job.id:  # (its slot may be on the next job)
                self.running.pop(res["instance"])
        files, status, error = [], res["status"], res.get("error")
        if status == "done":
            files, refused = write_job_outputs(self.records.out, job.out, res["outputs"],
                                               ShippedOutputs(res["blobs"], res["gone"]), plan.prompt)
            if refused:
                status, error = "failed", "the workflow ran, but these output files were not written:\n" + \
                    "\n".join(refused)
        rec = {"id": job.id, "status": status, "out": job.out, "files": files, "instance": res.get("instance"),
               "start": res.get("start"), "end": res.get("end"),
               "attempts": max(len(tries), 1 if res.get("start") else 0),
               "error": error, "node_errors": res.get("node_errors") or {},
               "retries": [{"instance": t["instance"], "error": t["error"]} for t in tries if t.get("error")],
               "prompt_id": res.get("prompt_id"), "cached_nodes": res.get("cached_nodes", []),
               "spec": self.specs[job.id]}
        self.records.append(rec)
        self.ran.add(job.id)
        self.finished += 1
        if status == "done":
            log.info("done %s on %s: %d file(s)%s", job.id, rec["instance"], len(files),
                     f" after {rec['attempts']} attempts" if rec["attempts"] > 1 else "")
        else:
            log.warning("failed %s%s: %s", job.id, f" on {rec['instance']}" if rec["instance"] else "",
                        (error or "").strip().splitlines()[0] if error else "no error text")

    def check_live(self, since: float | None) -> float | None:
        """None while a slot lives; when none has for NO_SLOT_GRACE seconds (and none joined since), the
        remaining jobs fail."""
        if self.live > 0:
            return None
        since = since or time.monotonic()
        if time.monotonic() - since < NO_SLOT_GRACE:
            return since
        alive = {a: s for a, s in self.cluster.slots().items() if not s["down"]}
        if alive:
            self.live = len(alive)
            return None
        why = "; ".join(f"{i}: {w}" for i, w in self.lost.items())
        for fut, plan in list(self.in_flight.items()):
            fut.cancel()
            self.in_flight.pop(fut)
            self.record(plan, {"status": "failed", "error": f"no ComfyUI slot left to run it ({why})"})
        while self.pending:
            self.record(self.pending.popleft(), {"status": "failed", "error": f"no ComfyUI slot left ({why})"})
        return None

    def show(self) -> None:
        with self.lock:
            running = dict(self.running)
        queued = len(self.pending) + len(self.in_flight) - len(running)
        done = sum(1 for i in self.ran if self.records.latest[i]["status"] == "done")
        self.progress.update(self.finished, {"done": done, "failed": self.finished - done,
                                             "running": len(running), "queued": max(queued, 0)}, running)

    def stop(self) -> None:
        """Ctrl-C: cancel the jobs not started, interrupt the prompts running on their instances, wait a little
        for those to end (a job that finished meanwhile is recorded; one stopped midway is not, and runs next
        time), cancel what is left."""
        log.warning("Ctrl-C: interrupting the running prompts; Ctrl-C again stops at once")
        with self.lock:
            started = {job for job, _ in self.running.values()}
        for fut, plan in list(self.in_flight.items()):
            if plan.job.id not in started:
                fut.cancel()
                self.in_flight.pop(fut)
                self.pending.appendleft(plan)
        self.cluster.interrupt()
        try:
            wait(list(self.in_flight), timeout=STOP_WAIT)
        except (TimeoutError, FuturesTimeout, KeyboardInterrupt):
            pass
        self.cluster.interrupt()  # one that started after the first
        for fut, plan in list(self.in_flight.items()):
            if fut.status == "finished" and not fut.result().get("interrupted"):
                self.collect(fut)
            else:
                fut.cancel()
