"""A batch's record and outputs on disk: OUT/results.jsonl, OUT/<job>/, and what a re-run may skip.

* ``OUT/results.jsonl``: one JSON line per finished job (id, status, files with their sha256, instance,
  start and end, attempts, the error in plain words), appended and synced as each job finishes, so a
  crash or Ctrl-C keeps every line written; when the batch ends it is rewritten (temp file, then rename)
  with one line per job, the last state of each.
* ``OUT/<job>/``: a job's output files, with the runner's safe-path rules (the server's subfolder kept,
  names leaving the folder refused, nothing overwritten), written in ``OUT/.staging/`` and renamed into
  place: a job's folder is complete or absent. A job run again moves its earlier folder to
  ``OUT/.replaced/`` (never deleted).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path

from .api import save_outputs
from .batch_jobs import Job, sha256_file
from .results import OutputGone, RunResult

log = logging.getLogger("wanmask_runner")
RESULTS, STAGING, REPLACED, REJECTED = "results.jsonl", ".staging", ".replaced", "results.rejected.txt"


def ref_key(ref: dict) -> str:
    """One output file of ComfyUI, as a key: type|subfolder|filename."""
    return f"{ref.get('type', 'output')}|{ref.get('subfolder', '')}|{ref['filename']}"


class BatchInterrupted(Exception):
    """Ctrl-C: the running prompts were interrupted; ``records`` holds what finished (every job's record in
    job order), ``not_run`` the ids of the jobs that did not finish (the next run runs them)."""

    def __init__(self, not_run: list[str], ran: set[str] = frozenset()):
        super().__init__(f"interrupted: {len(not_run)} job(s) not run; run the same command again to resume")
        self.not_run, self.ran, self.records, self.lost = not_run, set(ran), [], {}


class ShippedOutputs:
    """A job's output files as the slot read them from its ComfyUI, for :func:`save_outputs` (a backend's
    ``read_output``): their bytes, or why they were gone."""

    def __init__(self, blobs: dict[str, bytes], gone: dict[str, str]):
        self.blobs, self.gone = blobs, gone

    def read_output(self, ref: dict) -> bytes:
        key = ref_key(ref)
        if key in self.blobs:
            return self.blobs[key]
        raise OutputGone(self.gone.get(key, "the slot did not send it (a name outside the output folder)"))


class Records:
    """OUT/results.jsonl: the last record of each job id, what a re-run skips, appending and compacting."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.path = self.out / RESULTS
        self.latest: dict[str, dict] = {}
        self.rejected: list[str] = []
        if self.path.exists():
            for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    self.latest[str(rec["id"])] = rec
                except (json.JSONDecodeError, KeyError, TypeError):
                    log.warning("%s line %d is not a job record (cut short by a crash?); kept in %s, not used",
                                self.path, n, self.out / REJECTED)
                    self.rejected.append(line)

    def verdict(self, job: Job, spec: str, retry_failed: bool) -> tuple[bool, str]:
        """(run it, why) for a job of this run, from its last record."""
        rec = self.latest.get(job.id)
        if rec is None:
            return True, "not run yet"
        if rec.get("status") == "failed":
            if retry_failed:
                return True, "failed before (--retry-failed)"
            return False, f"failed earlier ({first_line(rec.get('error'))}); --retry-failed runs it again"
        if rec.get("status") != "done":
            return True, f"{rec.get('status')} before"
        if rec.get("spec") != spec:
            return True, "its workflow, overrides or input files changed since it ran"
        for f in rec.get("files", []):
            path = self.out / f["path"]
            if not path.is_file():
                return True, f"its output {f['path']} is gone"
            if sha256_file(path) != f["sha256"]:
                return True, f"its output {f['path']} changed since it was recorded"
        return False, "done"

    def append(self, rec: dict) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.latest[rec["id"]] = rec

    def compact(self, order: list[str]) -> None:
        """Rewrite results.jsonl with one line per job (the jobs of ``order`` first, then any others it
        holds, e.g. from another JOBS file into the same OUT), atomically; unreadable lines go to
        results.rejected.txt."""
        if not self.latest and not self.rejected:
            return
        ids = [i for i in order if i in self.latest] + [i for i in self.latest if i not in set(order)]
        atomic_write(self.path, "".join(json.dumps(self.latest[i]) + "\n" for i in ids))
        if self.rejected:
            with open(self.out / REJECTED, "a", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in self.rejected))
            self.rejected = []


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def first_line(text) -> str:
    return str(text or "").strip().splitlines()[0] if str(text or "").strip() else "no error recorded"


def clean_staging(out: Path) -> None:
    """Remove the half-written output folders of a run that was killed (each is named in the log)."""
    staging = Path(out) / STAGING
    for leftover in sorted(staging.iterdir()) if staging.is_dir() else []:
        log.warning("removing %s: the outputs of a job whose run was cut short (the job runs again)", leftover)
        shutil.rmtree(leftover, ignore_errors=True)


def write_job_outputs(out: Path, folder: str, outputs: dict, shipped: ShippedOutputs,
                      prompt: dict | None) -> tuple[list[dict], list[str]]:
    """Write a job's output files to OUT/<folder>/ (staged, then renamed into place). Returns (files as
    records: path relative to OUT, sha256, size; the refusals of save_outputs, one line each)."""
    out = Path(out)
    staging = out / STAGING / f"{folder.replace('/', '_')}-{uuid.uuid4().hex[:8]}"
    result = RunResult("", True, "success", outputs=outputs)
    refused = save_outputs(result, shipped, staging, prompt)
    target = out / folder
    if target.exists() or target.is_symlink():
        keep = out / REPLACED / f"{folder.replace('/', '_')}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:4]}"
        keep.parent.mkdir(parents=True, exist_ok=True)
        os.replace(target, keep)
        log.warning("job folder %s existed (an earlier run of the job); moved to %s", target, keep)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, target)
    files = []
    for f in result.files:
        path = target / f.relative_to(staging)
        files.append({"path": path.relative_to(out).as_posix(), "sha256": sha256_file(path),
                      "size": path.stat().st_size})
    return files, refused
