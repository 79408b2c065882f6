"""A batch's record and outputs on disk: what a re-run skips, one line per job after compaction, outputs staged
and renamed into place with the runner's safe-path rules, nothing deleted (no ComfyUI, no Dask)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from comfyui_wanmasking.wanmask_runner.batch_jobs import Job
from comfyui_wanmasking.wanmask_runner.batch_records import (REJECTED, REPLACED, STAGING, Records, ShippedOutputs,
                                                             clean_staging, ref_key, write_job_outputs)


def job(job_id="a"):
    return Job(job_id, Path("wf.json"), [], job_id, "jobs.jsonl:1", Path("."))


def ref(name, subfolder="", kind="output"):
    return {"filename": name, "subfolder": subfolder, "type": kind}


def shipped(*refs):
    return ShippedOutputs({ref_key(r): f"bytes of {r['filename']}".encode() for r in refs}, {})


def done(out: Path, job_id="a", spec="s1") -> dict:
    files, refused = write_job_outputs(out, job_id, {"9": {"images": [ref("x.png", "sub")]}},
                                       shipped(ref("x.png", "sub")), None)
    assert refused == []
    rec = {"id": job_id, "status": "done", "files": files, "spec": spec}
    Records(out).append(rec)
    return rec


def test_a_done_job_is_skipped_while_its_files_and_spec_are_unchanged(tmp_path):
    out = tmp_path / "out"
    rec = done(out)
    digest = hashlib.sha256(b"bytes of x.png").hexdigest()
    assert rec["files"] == [{"path": "a/sub/x.png", "sha256": digest, "size": 14}]
    assert Records(out).verdict(job(), "s1", retry_failed=False) == (False, "done")
    assert Records(out).verdict(job(), "s2", False) == (True, "its workflow, overrides or input files changed "
                                                              "since it ran")
    (out / "a" / "sub" / "x.png").write_bytes(b"edited")
    assert Records(out).verdict(job(), "s1", False) == (True, "its output a/sub/x.png changed since it was recorded")
    (out / "a" / "sub" / "x.png").unlink()
    assert Records(out).verdict(job(), "s1", False) == (True, "its output a/sub/x.png is gone")


def test_a_failed_job_is_skipped_unless_retry_failed_and_an_unknown_one_runs(tmp_path):
    records = Records(tmp_path)
    records.append({"id": "a", "status": "failed", "error": "node 3 refused\nmore", "files": []})
    run, why = Records(tmp_path).verdict(job(), "s", retry_failed=False)
    assert not run and why == "failed earlier (node 3 refused); --retry-failed runs it again"
    assert Records(tmp_path).verdict(job(), "s", retry_failed=True) == (True, "failed before (--retry-failed)")
    assert Records(tmp_path).verdict(job("b"), "s", False) == (True, "not run yet")


def test_compaction_keeps_one_line_per_job_in_job_order_and_sets_bad_lines_aside(tmp_path):
    records = Records(tmp_path)
    for rec in ({"id": "b", "status": "failed"}, {"id": "a", "status": "done"}, {"id": "b", "status": "done"},
                {"id": "other", "status": "done"}):
        records.append(rec)
    with open(tmp_path / "results.jsonl", "a") as f:
        f.write('{"id": "c", "stat')  # a line cut short by a crash
    again = Records(tmp_path)
    assert again.rejected == ['{"id": "c", "stat']
    again.compact(["a", "b"])
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert lines == [{"id": "a", "status": "done"}, {"id": "b", "status": "done"}, {"id": "other", "status": "done"}]
    assert (tmp_path / REJECTED).read_text() == '{"id": "c", "stat\n'


def test_outputs_are_staged_then_renamed_and_an_earlier_folder_is_kept_aside(tmp_path):
    out = tmp_path / "out"
    first = done(out)
    (out / STAGING / "half-written").mkdir(parents=True)
    clean_staging(out)
    assert list((out / STAGING).iterdir()) == []
    second = done(out)
    assert first["files"] == second["files"]  # same place, same bytes
    kept = list((out / REPLACED).iterdir())
    assert len(kept) == 1 and (kept[0] / "sub" / "x.png").read_bytes() == b"bytes of x.png"
    assert list((out / STAGING).iterdir()) == []


def test_hostile_and_gone_outputs_are_refused_by_name_and_the_rest_written(tmp_path):
    out = tmp_path / "out"
    refs = [ref("../escape.png"), ref("ok.png"), ref("gone.png"), ref("p.png", "", "temp")]
    outputs = {"9": {"images": refs}}
    files, refused = write_job_outputs(out, "a", outputs, ShippedOutputs(
        {ref_key(refs[1]): b"ok", ref_key(refs[3]): b"preview"}, {ref_key(refs[2]): "answered 404"}), None)
    assert [f["path"] for f in files] == ["a/ok.png"]
    assert len(refused) == 2 and "'../escape.png'" in refused[0] and "answered 404" in refused[1]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["ok.png"]
