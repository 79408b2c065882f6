"""Batch runs: one workflow over many shots (a JOBS file), over many ComfyUI instances, on Dask distributed.

Python API::

    from wanmask_runner.batch import run_batch
    records = run_batch("shots.csv", servers=["http://127.0.0.1:8188", "http://127.0.0.1:8189"], out_dir="renders")
    [r["status"] for r in records]    # "done" / "failed", one record per job (as in renders/results.jsonl)

Command line: ``python -m wanmask_runner batch JOBS [--server URL]... | [--comfyui PATH --workers N] |
[--scheduler ADDRESS]`` (``--help`` for the rest). Needs the ``batch`` extra (``pip install .[batch]``:
Dask distributed, tqdm).

The order of things: the JOBS file is read and checked; jobs recorded done (files unchanged) are skipped;
the cluster starts; one slot converts the workflows to API format and reports its node types; every job's
overrides and input files are checked (a problem refuses the whole batch before any job runs); then the
jobs run, each recorded in OUT/results.jsonl as it finishes.
"""
from __future__ import annotations

import logging
import os
import re
import time
from contextlib import ExitStack
from pathlib import Path

from .batch_jobs import (JobsError, Roots, api_prompts, job_spec, jobs_from_items, load_workflows, overrides_of,
                         plan_jobs, read_jobs)
from .batch_progress import summary
from .batch_records import BatchInterrupted, Records, clean_staging
from .locate import find_comfyui

log = logging.getLogger("wanmask_runner")

__all__ = ["BatchInterrupted", "JobsError", "run_batch"]


def batch_name(text: str) -> str:
    """The subfolder of ComfyUI's input folder that gets the batch's uploads."""
    return "wanmask-batch-" + (re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "jobs")


def read_job_list(jobs, base_dir, allow_outside) -> tuple[list, Roots, str]:
    """(jobs, roots, batch name) from a JOBS file path or a list of job dicts (id, workflow, set, out)."""
    if isinstance(jobs, (str, os.PathLike)):
        path = Path(jobs)
        roots = Roots(path.parent, allow_outside)
        return read_jobs(path, roots), roots, batch_name(path.stem)
    base = Path(base_dir or Path.cwd())
    roots = Roots(base, allow_outside)
    items, problems = [], []
    for i, job in enumerate(jobs):
        overrides = overrides_of(job.get("set", {})) if isinstance(job, dict) else None
        if overrides is None:
            problems.append(f"jobs[{i}]: a job is a dict with id, workflow, set ({{NODE.INPUT: value}} or "
                            "[\"NODE.INPUT=VALUE\"]) and optionally out")
            continue
        items.append((f"jobs[{i}]", {"id": job.get("id"), "workflow": str(job.get("workflow") or ""),
                                     "set": overrides, "out": job.get("out")}))
    parsed, more = jobs_from_items(items, base, roots)
    if problems or more or not parsed:
        raise JobsError(problems + more or ["no jobs given"])
    return parsed, roots, batch_name(base.name)


def run_batch(jobs, *, servers=(), comfyui=None, workers: int = 1, scheduler: str | None = None,
              out_dir="batch_out", retries: int = 2, retry_failed: bool = False, allow_outside=(),
              comfy_args=(), gpus=None, timeout: float = 3600.0, name: str | None = None, progress: bool = True,
              base_dir=None) -> list[dict]:
    """Run every job of ``jobs`` (a JOBS file, or a list of dicts with id, workflow, set, out) and return
    their records, in job order (as OUT/results.jsonl holds them; a job skipped as done keeps its record).

    Where the jobs run: ``servers`` (ComfyUI URLs, one slot each), or ``scheduler`` (a running Dask
    cluster whose workers have the pack's preload), or else ``workers`` embedded ComfyUIs from
    ``comfyui`` (default: COMFYUI_PATH or the ComfyUI this pack is in).

    Raises JobsError when the JOBS file, a job's override or a job's file is refused (nothing ran),
    ClusterError when no ComfyUI slot answers, and BatchInterrupted on Ctrl-C (what finished is recorded).
    """
    if sum(map(bool, (servers, scheduler, comfyui))) > 1:
        raise ValueError("give one of servers, comfyui or scheduler")
    twice = sorted({u for u in servers if [v.rstrip("/") for v in servers].count(u.rstrip("/")) > 1})
    if twice:
        raise ValueError(f"--server {', '.join(twice)} given more than once; a server runs one job at a time")
    if retries < 0 or workers < 1:
        raise ValueError(f"retries must be >= 0 and workers >= 1 (got {retries}, {workers})")
    started = time.monotonic()
    job_list, roots, subfolder = read_job_list(jobs, base_dir, allow_outside)
    subfolder = batch_name(name) if name else subfolder
    docs, problems = load_workflows(job_list)
    if problems:
        raise JobsError(problems)
    api = api_prompts(docs)
    plan_jobs([j for j in job_list if j.workflow in api], api, {}, roots)  # node names, before any cluster
    out = Path(out_dir)
    records = Records(out)
    clean_staging(out)
    specs = {job.id: job_spec(job) for job in job_list}
    to_run = []
    for job in job_list:
        run, why = records.verdict(job, specs[job.id], retry_failed)
        if run:
            to_run.append(job)
            if why != "not run yet":
                log.info("%s runs again: %s", job.id, why)
        elif why != "done":
            log.warning("%s is skipped: %s", job.id, why)
    skipped = len(job_list) - len(to_run)
    if skipped:
        log.info("%d of %d job(s) skipped (recorded in %s)", skipped, len(job_list), records.path)
    order = [j.id for j in job_list]
    ran, lost = set(), {}
    try:
        if to_run:
            if not (servers or scheduler or comfyui):
                comfyui, why = find_comfyui()
                if comfyui is None:
                    raise ValueError(f"nothing to run the jobs on: {why}; give --server URL, --comfyui PATH or "
                                     "--scheduler ADDRESS")
            ran, lost = run_jobs(to_run, docs, roots, records, specs, subfolder=subfolder, servers=servers,
                                 comfyui=comfyui, workers=workers, scheduler=scheduler, retries=retries,
                                 comfy_args=comfy_args, gpus=gpus, timeout=timeout, progress=progress)
    except BatchInterrupted as e:
        records.compact(order)
        e.records = [records.latest[i] for i in order if i in records.latest]
        finished = [r for r in e.records if r["id"] not in set(e.not_run)]
        log.warning("%s", summary(finished, e.ran, e.lost, time.monotonic() - started, e.not_run))
        raise
    except BaseException:
        records.compact(order)
        raise
    records.compact(order)
    result = [records.latest[i] for i in order if i in records.latest]
    log.info("%s", summary(result, ran, lost, time.monotonic() - started, []))
    return result


def run_jobs(to_run, docs, roots, records, specs, *, subfolder, servers, comfyui, workers, scheduler, retries,
             comfy_args, gpus, timeout, progress) -> tuple[set[str], dict[str, str]]:
    """Start (or join) the cluster, prepare on one slot, check every job, run them. (ids run, lost slots)."""
    from .batch_cluster import BatchCluster, ClusterError, quiet_dask
    from .batch_loop import BatchLoop
    from .batch_progress import BatchProgress
    from .batch_slots import RESOURCE, prepare
    from .progress import logs_above_bar

    with ExitStack() as stack:
        stack.enter_context(quiet_dask())
        cluster = stack.enter_context(BatchCluster(servers=servers, comfyui=comfyui, workers=workers,
                                                   scheduler=scheduler, comfy_args=comfy_args, gpus=gpus,
                                                   timeout=timeout, retries=retries))
        dashboard = cluster.dashboard()
        log.info("batch of %d job(s) on %s; Dask dashboard: %s", len(to_run), cluster.mode,
                 dashboard or "not served (pip install bokeh to get one)")
        live = cluster.check_slots()
        workflows = {str(p): docs[p] for p in {j.workflow for j in to_run}}
        try:  # on one slot; on another when that one's ComfyUI is down
            prepared = cluster.client.submit(prepare, workflows, resources={RESOURCE: 1}, pure=False,
                                             retries=len(live)).result()
        except (ValueError, ClusterError):  # a workflow that does not convert (WorkflowFormatError) stays one
            raise
        except Exception as e:
            hint = (" (start the scheduler and the workers from the pack's folder, or with the pack installed, "
                    "as this command)") if "deserializ" in str(e) else ""
            raise ClusterError(f"no slot could read the workflows: {type(e).__name__}: {e}{hint}") from e
        prompts = {Path(k): v for k, v in prepared["prompts"].items()}
        plans = plan_jobs(to_run, prompts, prepared["object_info"], roots)
        bar = BatchProgress(len(plans), enabled=progress)
        stack.callback(bar.close)
        stack.enter_context(logs_above_bar(*[lg for lg in (logging.getLogger(), log) if lg.handlers]))
        loop = BatchLoop(cluster, plans, records, specs, subfolder=subfolder, retries=retries, timeout=timeout,
                         progress=bar, live_slots=live)
        try:
            loop.run()
        except BatchInterrupted as e:
            e.lost = loop.lost
            raise
        return loop.ran, loop.lost
