"""Batch runs against real ComfyUI: three servers on loopback (one SIGKILLed mid-batch, the batch then
interrupted with Ctrl-C and resumed), and two embedded worker processes. Jobs are the tiny masked T2V graph
of batch_jobs.py, each with its own mask file and seed."""
from __future__ import annotations

import json
import signal
from hashlib import sha256
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from comfyui_wanmasking.tests.integration.batch_jobs import (  # noqa: E402
    MASK_NODE, MODEL_NODE, SEED_NODE, read_records, write_jsonl, write_shots,
)
from comfyui_wanmasking.tests.integration.comfy_server import ComfyServer, run_cli, start_cli  # noqa: E402

SHOTS = 24


@pytest.fixture(scope="module")
def three_servers(request, comfyui_path, models_cache, tmp_path_factory):
    """The session's server and two more, started side by side (with the session's, when it is not up yet)."""
    extra = [ComfyServer(comfyui_path, tmp_path_factory.mktemp(f"batch_base{i}"), models_cache) for i in (1, 2)]
    threads = [threading.Thread(target=s.start) for s in extra]
    for t in threads:
        t.start()
    server = request.getfixturevalue("server")
    for t in threads:
        t.join()
    try:
        for s in extra:
            s.get("/system_stats")  # raises when it did not start (its log: s.log_tail())
        yield [server, *extra]
    finally:
        for s in extra:
            s.stop()


def batch_prompts(srv: ComfyServer) -> dict[str, str]:
    """prompt id -> the mask it loaded, for the prompts of the batch this server has run."""
    out = {}
    for pid, entry in srv.get("/history").items():
        prompt = entry["prompt"][2]
        image = prompt.get(MASK_NODE, {}).get("inputs", {}).get("image", "")
        if isinstance(image, str) and image.startswith("wanmask-batch-jobs/"):
            out[pid] = image.rsplit("-", 1)[1]  # shot007_mask.png
    return out


def job_of(mask_name: str) -> str:
    return mask_name.split("_")[0]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_batch_over_three_servers_survives_a_killed_server_and_resumes_after_ctrl_c(three_servers, tmp_path):
    keep, other, doomed = three_servers
    jobs_file, jobs = write_shots(tmp_path / "shots", SHOTS)
    bad = {"id": "bad_seed", "workflow": "job.json", "set": {**jobs[0]["set"], f"{SEED_NODE}.seed": -5}}
    missing = {"id": "no_mask", "workflow": "job.json", "set": {f"{MASK_NODE}.image": "masks/none.png"}}
    write_jsonl(jobs_file, [bad, missing, *jobs])
    out = tmp_path / "out"
    before = {s.url: set(batch_prompts(s)) for s in (keep, other)}
    log = open(tmp_path / "run1.log", "w")
    cli = start_cli("batch", jobs_file, "--server", keep.url, "--server", other.url, "--server", doomed.url,
                    "--out", out, stdout=log, stderr=log)
    try:
        # SIGKILL the third server while it runs a job, after a few jobs are recorded
        wait_for(lambda: len(read_records(out)) >= 3, 240, "the first records")
        running = wait_for(lambda: doomed.get("/queue")["queue_running"], 60, "a job on the third server")
        killed_job = job_of(running[0][2][MASK_NODE]["inputs"]["image"].rsplit("-", 1)[1])
        doomed.proc.kill()
        # Ctrl-C once the killed job ran again elsewhere and about half the batch is done
        wait_for(lambda: read_records(out).get(killed_job, {}).get("status") == "done"
                 and len(read_records(out)) >= SHOTS // 2, 240, f"{killed_job} to run again")
        cli.send_signal(signal.SIGINT)
        assert cli.wait(120) == 130
    finally:
        if cli.poll() is None:
            cli.kill()
        log.close()
    run1 = (tmp_path / "run1.log").read_text()
    assert f"slot lost: {doomed.url}" in run1 and "interrupted" in run1, run1[-3000:]
    first = read_records(out)
    moved = first[killed_job]
    assert moved["attempts"] == 2 and moved["retries"][0]["instance"] == doomed.url, moved
    assert f"ComfyUI at {doomed.url} does not answer" in moved["retries"][0]["error"]
    assert moved["instance"] in (keep.url, other.url)
    done_first = {i for i, r in first.items() if r["status"] == "done"}
    assert first["bad_seed"]["status"] == "failed" and first["bad_seed"]["attempts"] == 1
    assert first["bad_seed"]["node_errors"][SEED_NODE]["class_type"] == "KSampler"
    assert "input seed" in first["bad_seed"]["error"]
    assert first["no_mask"]["status"] == "failed" and "masks/none.png' not found" in first["no_mask"]["error"]
    assert len(done_first) < SHOTS, "the batch finished before Ctrl-C; nothing left to resume"
    ran_first = {s.url: set(batch_prompts(s)) - before[s.url] for s in (keep, other)}

    # run again on the two live servers: only the rest run (the failed ones are skipped: no --retry-failed)
    r = run_cli("batch", jobs_file, "--server", keep.url, "--server", other.url, "--out", out, "--quiet")
    assert r.returncode == 1, (r.stdout + r.stderr)[-3000:]
    second = {}
    for s in (keep, other):
        prompts = batch_prompts(s)
        second.update({pid: prompts[pid] for pid in set(prompts) - before[s.url] - ran_first[s.url]})
    rerun = sorted(job_of(mask) for mask in second.values())
    # each remaining job once, no done job again
    assert rerun == sorted({j["id"] for j in jobs} - done_first), (first, r.stderr[-3000:])

    records = read_records(out)
    assert sorted(i for i, rec in records.items() if rec["status"] == "done") == sorted(j["id"] for j in jobs)
    assert (records["bad_seed"], records["no_mask"]) == (first["bad_seed"], first["no_mask"])
    files = [f for rec in records.values() for f in rec["files"]]
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()
                     and p.name != "results.jsonl")
    assert sorted(f["path"] for f in files) == on_disk and len(on_disk) == SHOTS  # each output exactly once
    assert all(f["path"].startswith(f"{i}/") for i, rec in records.items() for f in rec["files"])
    assert len({f["sha256"] for f in files}) == SHOTS  # every shot its own latent
    for f in files:
        assert sha256((out / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    assert len((out / "results.jsonl").read_text().splitlines()) == SHOTS + 2


def test_embedded_batch_runs_two_worker_processes_that_load_their_model_once(server, tmp_path):
    jobs_file, jobs = write_shots(tmp_path / "shots", 4)
    out = tmp_path / "out"
    r = run_cli("batch", jobs_file, "--workers", "2", *server.embedded_args(tmp_path / "temp"), "--out", out,
                "--quiet", timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    records = read_records(out)
    assert sorted(records) == [j["id"] for j in jobs] and {rec["status"] for rec in records.values()} == {"done"}
    by_slot = {}
    for rec in sorted(records.values(), key=lambda rec: rec["start"]):
        by_slot.setdefault(rec["instance"], []).append(rec)
    assert len(by_slot) == 2 and all(name.startswith("embedded ") for name in by_slot), list(by_slot)
    for slot_records in by_slot.values():  # the model loader ran in the slot's first job only
        loaded = [rec["id"] for rec in slot_records if MODEL_NODE not in rec["cached_nodes"]]
        assert loaded == [slot_records[0]["id"]], [(rec["id"], rec["cached_nodes"]) for rec in slot_records]
    assert all(len(rec["files"]) == 1 and (out / rec["files"][0]["path"]).is_file() for rec in records.values())
    assert json.loads((out / "results.jsonl").read_text().splitlines()[0])["id"] == jobs[0]["id"]
    assert Path(out / jobs[0]["id"]).is_dir()
