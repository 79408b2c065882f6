"""Batches against stub ComfyUI servers on 127.0.0.1, on a real Dask LocalCluster (threads): uploads, outputs
and records, resume, jobs that fail alone, a server that dies mid-job, and the command's exit codes."""
from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time

import pytest

pytest.importorskip("distributed")

from comfyui_wanmasking.tests.unit.stub_comfyui import MASK_INFO, Stub, mask_outputs, write_mask_jobs  # noqa: E402
from comfyui_wanmasking.wanmask_runner import cli  # noqa: E402
from comfyui_wanmasking.wanmask_runner.batch import run_batch  # noqa: E402


@pytest.fixture(autouse=True)
def runner_logger_restored():
    """cli.main gives the runner's logger a handler on this test's (captured) stderr: taken off again after."""
    log = logging.getLogger("wanmask_runner")
    saved = list(log.handlers), log.propagate, log.level
    yield
    log.handlers[:] = saved[0]
    log.propagate, log.level = saved[1], saved[2]


def stub(**kw) -> Stub:
    return Stub(mask_outputs, object_info=MASK_INFO, **kw)


def records_of(out):
    return {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def test_a_batch_over_two_servers_uploads_each_file_and_records_every_output(tmp_path):
    jobs = write_mask_jobs(tmp_path, 6)
    out = tmp_path / "out"
    with stub() as a, stub() as b:
        records = run_batch(tmp_path / "jobs.jsonl", servers=[a.url, b.url], out_dir=out, progress=False)
        assert [r["id"] for r in records] == [j["id"] for j in jobs] and {r["status"] for r in records} == {"done"}
        assert len(a.prompts) + len(b.prompts) == 6 and a.prompts and b.prompts  # each job once, both used
        uploads = {**a.uploads, **b.uploads}
        for i in range(6):  # each mask under the batch's subfolder, named by its content
            mask = (tmp_path / "masks" / f"m{i}.png").read_bytes()
            name = f"wanmask-batch-jobs/{hashlib.sha256(mask).hexdigest()[:12]}-m{i}.png"
            assert uploads[name] == mask
            assert any(p["1"]["inputs"]["image"] == name for p in (*a.bodies.values(), *b.bodies.values()))
        files = [f for r in records for f in r["files"]]
        assert sorted(f["path"] for f in files) == [f"j{i}/shots/out_{i}.png" for i in range(6)]
        for f in files:
            assert hashlib.sha256((out / f["path"]).read_bytes()).hexdigest() == f["sha256"]
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == sorted(f["path"] for f in files)
        assert records_of(out) == {r["id"]: r for r in records}
        for r in records:
            assert r["attempts"] == 1 and r["retries"] == [] and r["instance"] in (a.url, b.url)
            assert r["start"] <= r["end"] and r["error"] is None
        again = run_batch(tmp_path / "jobs.jsonl", servers=[a.url, b.url], out_dir=out, progress=False)
        assert again == records and len(a.prompts) + len(b.prompts) == 6  # nothing ran twice


def test_a_refused_job_and_a_missing_file_fail_alone_and_retry_failed_runs_them_again(tmp_path, capsys):
    write_mask_jobs(tmp_path, 2)
    (tmp_path / "jobs.csv").write_text("id,workflow,1.image,2.seed\nok,wf.json,masks/m0.png,1\n"
                                       "refused,wf.json,masks/m1.png,13\nmissing,wf.json,masks/nope.png,2\n")
    seen = []

    def validate(prompt):
        seen.append(prompt["2"]["inputs"]["seed"])
        if prompt["2"]["inputs"]["seed"] == 13 and not fixed.is_set():
            return {"2": {"class_type": "Sample", "errors": [{"message": "Value 13 bigger than max of 12",
                                                              "extra_info": {"input_name": "seed"}}]}}
        return None

    fixed = threading.Event()
    out = tmp_path / "out"
    args = ["batch", str(tmp_path / "jobs.csv"), "--out", str(out), "--quiet"]
    with stub(validate=validate) as a:
        assert cli.main([*args, "--server", a.url]) == 1
        rec = records_of(out)
        assert rec["ok"]["status"] == "done" and len(rec["ok"]["files"]) == 1
        assert rec["refused"]["status"] == "failed" and rec["refused"]["attempts"] == 1 and seen.count(13) == 1
        assert "ComfyUI refused the prompt (validation)" in rec["refused"]["error"]
        assert "node 2 (Sample) input seed: Value 13 bigger than max of 12" in rec["refused"]["error"]
        assert rec["refused"]["node_errors"]["2"]["errors"][0]["message"] == "Value 13 bigger than max of 12"
        assert rec["missing"]["status"] == "failed" and rec["missing"]["attempts"] == 0
        assert "input file for 1.image 'masks/nope.png' not found" in rec["missing"]["error"]
        assert seen.count(2) == 0 and len(a.prompts) == 1  # the missing file's job never reached ComfyUI
        assert "1 of 3 job(s) done" in capsys.readouterr().out
        assert cli.main([*args, "--server", a.url]) == 1 and len(seen) == 2  # failed jobs are skipped
        fixed.set()
        assert cli.main([*args, "--server", a.url, "--retry-failed"]) == 1
    rec = records_of(out)
    assert rec["refused"]["status"] == "done" and rec["missing"]["status"] == "failed" and len(a.prompts) == 2
    assert len((out / "results.jsonl").read_text().splitlines()) == 3  # one line per job


def test_a_server_that_dies_mid_job_loses_its_slot_and_the_job_runs_on_another(tmp_path):
    write_mask_jobs(tmp_path, 5)
    with stub(delay=0.8) as doomed, stub() as b:
        def kill():
            while not doomed.prompts:
                time.sleep(0.01)
            doomed.httpd.shutdown()
            doomed.httpd.server_close()
        threading.Thread(target=kill, daemon=True).start()
        records = run_batch(tmp_path / "jobs.jsonl", servers=[doomed.url, b.url], out_dir=tmp_path / "out",
                            progress=False)
    assert [r["status"] for r in records] == ["done"] * 5 and {r["instance"] for r in records} == {b.url}
    moved = [r for r in records if r["attempts"] == 2]
    assert len(moved) == 1 and len(doomed.prompts) == 1
    assert moved[0]["retries"][0]["instance"] == doomed.url
    assert f"ComfyUI at {doomed.url} does not answer" in moved[0]["retries"][0]["error"]
    assert sorted(p.parent.parent.name for p in (tmp_path / "out").rglob("*.png")) == [f"j{i}" for i in range(5)]


def test_a_server_down_at_start_is_left_out_and_none_up_exits_3(tmp_path, capsys):
    write_mask_jobs(tmp_path, 2)
    with stub() as gone:
        dead = gone.url
    with stub() as b:
        records = run_batch(tmp_path / "jobs.jsonl", servers=[dead, b.url], out_dir=tmp_path / "out", progress=False)
    assert [r["instance"] for r in records] == [b.url, b.url]
    code = cli.main(["batch", str(tmp_path / "jobs.jsonl"), "--server", dead, "--out", str(tmp_path / "o2"),
                     "--quiet"])
    assert code == 3 and f"ComfyUI at {dead} does not answer" in capsys.readouterr().err
    code = cli.main(["batch", str(tmp_path / "jobs.jsonl"), "--server", dead, "--server", dead + "/"])
    assert code == 3 and "given more than once" in capsys.readouterr().err


def test_duplicate_ids_exit_2_before_anything_runs(tmp_path, capsys):
    write_mask_jobs(tmp_path, 2)
    line = (tmp_path / "jobs.jsonl").read_text().splitlines()[0]
    (tmp_path / "jobs.jsonl").write_text(f"{line}\n{line}\n")
    with stub() as a:
        code = cli.main(["batch", str(tmp_path / "jobs.jsonl"), "--server", a.url, "--out", str(tmp_path / "out")])
    assert code == 2 and a.prompts == [] and not (tmp_path / "out").exists()
    assert "jobs.jsonl:2: job id 'j0' again (first at jobs.jsonl:1)" in capsys.readouterr().err


def test_a_joined_cluster_runs_the_jobs_on_the_workers_started_with_the_preload(tmp_path):
    from distributed import LocalCluster

    from comfyui_wanmasking.wanmask_runner.batch_cluster import ClusterError

    write_mask_jobs(tmp_path, 3)
    preload = "comfyui_wanmasking.wanmask_runner.batch_worker"
    with stub() as a:
        with LocalCluster(n_workers=1, processes=False, threads_per_worker=1, dashboard_address=None) as bare:
            with pytest.raises(ClusterError, match="--preload wanmask_runner.batch_worker"):
                run_batch(tmp_path / "jobs.jsonl", scheduler=bare.scheduler_address, out_dir=tmp_path / "o1",
                          progress=False)
        with LocalCluster(n_workers=2, processes=False, threads_per_worker=1, dashboard_address=None,
                          resources={"comfyui": 1}, preload=[preload],
                          preload_argv=["--wanmask-server", a.url]) as cluster:
            records = run_batch(tmp_path / "jobs.jsonl", scheduler=cluster.scheduler_address,
                                out_dir=tmp_path / "out", progress=False)
            assert len(cluster.workers) == 2  # the batch leaves a cluster it joined running
    assert [r["status"] for r in records] == ["done"] * 3 and {r["instance"] for r in records} == {a.url}
    assert len(a.prompts) == 3


def test_batch_help_and_readme_give_the_same_exit_codes():
    from pathlib import Path

    from comfyui_wanmasking.wanmask_runner.batch_cli import build_batch_parser

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    found = [re.search(r"Batch exit codes: .*? resumes\)\.", " ".join(text.replace("`", "").split())).group(0)
             for text in (build_batch_parser().format_help(), readme)]
    assert found[0] == found[1] and "130 interrupted" in found[0]


def test_a_ui_format_workflow_is_converted_on_a_slot_and_its_overrides_checked_there(tmp_path, capsys):
    from comfyui_wanmasking.tests.unit.stub_comfyui import MASK_WORKFLOW
    from comfyui_wanmasking.wanmask_runner.workflow.convert import api_to_ui

    write_mask_jobs(tmp_path, 2)
    (tmp_path / "wf.json").write_text(json.dumps(api_to_ui(MASK_WORKFLOW, MASK_INFO)))  # as the browser saves it
    with stub() as a:
        records = run_batch(tmp_path / "jobs.jsonl", servers=[a.url], out_dir=tmp_path / "out", progress=False)
        assert [r["status"] for r in records] == ["done", "done"]
        assert sorted(p["2"]["inputs"]["seed"] for p in a.bodies.values()) == [0, 1]
        (tmp_path / "bad.csv").write_text("id,workflow,Sampler.seed,Nowhere.seed\nx,wf.json,1,2\n")
        code = cli.main(["batch", str(tmp_path / "bad.csv"), "--server", a.url, "--out", str(tmp_path / "o2")])
    assert code == 2 and len(a.prompts) == 2  # refused after the conversion, before any job ran
    assert "no node matches 'Nowhere'" in capsys.readouterr().err
