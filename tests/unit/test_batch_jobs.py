"""JOBS files: JSONL and CSV read to the same jobs, and everything a JOBS file can get wrong is refused before
anything runs, naming the line, what was found and the fix (no ComfyUI, no Dask)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfyui_wanmasking.tests.unit.stub_comfyui import MASK_INFO, write_mask_jobs
from comfyui_wanmasking.wanmask_runner.batch_jobs import (JobsError, Roots, api_prompts, job_spec, load_workflows,
                                                          plan_jobs, read_jobs)

REPO = Path(__file__).resolve().parents[2]


def plans_of(path: Path, object_info=MASK_INFO, **roots):
    roots = Roots(path.parent, cwd=roots.pop("cwd", path.parent), **roots)
    jobs = read_jobs(path, roots)
    docs, problems = load_workflows(jobs)
    assert problems == []
    return plan_jobs(jobs, api_prompts(docs), object_info, roots)


def refusal(path: Path, **kw) -> str:
    with pytest.raises(JobsError) as err:
        plans_of(path, **kw)
    return str(err.value)


def test_jsonl_and_csv_give_the_same_jobs(tmp_path):
    write_mask_jobs(tmp_path, 3)
    (tmp_path / "jobs.csv").write_text("id,workflow,1.image,Sampler.seed,2.prefix\n"
                                       + "".join(f"j{i},wf.json,masks/m{i}.png,{i},\n" for i in range(3)))
    (tmp_path / "jobs.jsonl").write_text("".join(
        json.dumps({"id": f"j{i}", "workflow": "wf.json", "set": {"1.image": f"masks/m{i}.png", "Sampler.seed": i}})
        + "\n" for i in range(3)))
    jsonl, csv = plans_of(tmp_path / "jobs.jsonl"), plans_of(tmp_path / "jobs.csv")
    assert [p.prompt for p in jsonl] == [p.prompt for p in csv]
    assert [p.prompt["2"]["inputs"]["seed"] for p in csv] == [0, 1, 2]  # the cell "1" is the number 1
    assert "prefix" not in csv[0].prompt["2"]["inputs"]  # an empty cell keeps the workflow's value
    files = [(f.node, f.input, f.path.name) for p in csv for f in p.files]
    assert files == [("1", "image", f"m{i}.png") for i in range(3)]
    assert len({f.upload_name for p in csv for f in p.files}) == 3  # different content, different names


def test_two_jobs_files_of_one_name_get_different_upload_names(tmp_path):
    write_mask_jobs(tmp_path, 0)
    for shot in ("a", "b"):
        (tmp_path / shot).mkdir()
        (tmp_path / shot / "mask.png").write_bytes(f"mask of {shot}".encode())
    (tmp_path / "jobs.csv").write_text("id,workflow,1.image\na,wf.json,a/mask.png\nb,wf.json,b/mask.png\n"
                                       "again,wf.json,a/mask.png\n")
    names = [p.files[0].upload_name for p in plans_of(tmp_path / "jobs.csv")]
    assert names[0] != names[1] and names[0] == names[2] and all(n.endswith("-mask.png") for n in names)


def test_a_semicolon_csv_from_a_european_spreadsheet_reads_too(tmp_path):
    write_mask_jobs(tmp_path, 1)
    (tmp_path / "jobs.csv").write_text("\ufeffid;workflow;2.seed\nj0;wf.json;5\n", encoding="utf-8")
    assert plans_of(tmp_path / "jobs.csv")[0].prompt["2"]["inputs"]["seed"] == 5


def test_duplicate_ids_are_refused_naming_both_lines(tmp_path):
    write_mask_jobs(tmp_path, 2)
    lines = (tmp_path / "jobs.jsonl").read_text().splitlines()
    (tmp_path / "jobs.jsonl").write_text("\n".join([lines[0], lines[1], lines[0]]) + "\n")
    msg = refusal(tmp_path / "jobs.jsonl")
    assert "before anything ran" in msg and "jobs.jsonl:3: job id 'j0' again (first at jobs.jsonl:1)" in msg


def test_out_folders_that_differ_only_in_case_are_refused(tmp_path):
    write_mask_jobs(tmp_path, 0)
    (tmp_path / "jobs.csv").write_text("id,workflow\nShot1,wf.json\nshot1,wf.json\n")
    assert "jobs.csv:3: job 'shot1' writes to 'shot1', as the job at jobs.csv:2 does" in refusal(tmp_path / "jobs.csv")


@pytest.mark.parametrize("job_id", ["../up", "a/b", ".hidden", "", " pad", "c:d"])
def test_ids_that_cannot_be_folder_names_are_refused(tmp_path, job_id):
    write_mask_jobs(tmp_path, 0)
    (tmp_path / "jobs.jsonl").write_text(json.dumps({"id": job_id, "workflow": "wf.json"}) + "\n")
    assert "jobs.jsonl:1: job id" in refusal(tmp_path / "jobs.jsonl")


def test_bad_lines_are_named_with_what_was_found(tmp_path):
    write_mask_jobs(tmp_path, 0)
    (tmp_path / "jobs.jsonl").write_text('{"id": "a", "workflow": "wf.json", "sets": {}}\n{"id": "b",\n\n'
                                         '{"id": "c", "workflow": "wf.json", "set": 5}\n'
                                         '{"id": "d", "workflow": "nowhere.json"}\n')
    msg = refusal(tmp_path / "jobs.jsonl")
    assert "jobs.jsonl:1: unknown key(s) 'sets'; a job has id, out, set, workflow" in msg
    assert "jobs.jsonl:2: not JSON" in msg
    assert 'jobs.jsonl:4: "set" is an object' in msg and "found 5" in msg
    assert f"jobs.jsonl:5: workflow 'nowhere.json' not found (looked at {tmp_path / 'nowhere.json'})" in msg


def test_a_csv_column_naming_no_node_is_refused_once_with_the_count(tmp_path):
    write_mask_jobs(tmp_path, 3)
    (tmp_path / "jobs.csv").write_text("id,workflow,Sampler.seed,Missing.seed\n"
                                       + "".join(f"j{i},wf.json,{i},{i}\n" for i in range(3)))
    msg = refusal(tmp_path / "jobs.csv")
    assert "jobs.csv:2 (and 2 more jobs): job 'j0': --set 'Missing.seed=0': no node matches 'Missing'" in msg
    assert msg.count("Missing") == 2  # one problem line, not one per row


def test_a_column_naming_an_input_the_node_lacks_is_refused(tmp_path):
    write_mask_jobs(tmp_path, 1)
    (tmp_path / "jobs.csv").write_text("id,workflow,Sampler.sed\nj0,wf.json,3\n")
    assert "node 2 (Sample) has no input 'sed' (its inputs: mask, prefix, seed)" in refusal(tmp_path / "jobs.csv")


def test_csv_headers_that_are_not_node_inputs_are_refused(tmp_path):
    write_mask_jobs(tmp_path, 0)
    (tmp_path / "jobs.csv").write_text("id,workflow,seed,,2.seed,2.SEED\nj0,wf.json,1,,2,3\n")
    msg = refusal(tmp_path / "jobs.csv")
    assert "column 'seed' is not NODE.INPUT" in msg and "column 4 has no header" in msg
    assert "column '2.seed' appears 2 times" in msg


def test_files_outside_the_working_folder_are_refused_unless_allowed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"secret")
    work = tmp_path / "work"
    write_mask_jobs(work, 2)
    (work / "masks" / "link.png").symlink_to(outside / "secret.png")
    (work / "jobs.csv").write_text("id,workflow,1.image\nup,wf.json,../outside/secret.png\n"
                                   "link,wf.json,masks/link.png\n"
                                   f"abs,wf.json,{work / 'masks' / 'm0.png'}\n")
    msg = refusal(work / "jobs.csv", cwd=work)
    resolved = outside / "secret.png"
    assert (f"jobs.csv:2: job 'up': input file for 1.image '../outside/secret.png' resolves to {resolved}, outside "
            f"the working folder {work}") in msg
    assert "jobs.csv:3: job 'link': input file for 1.image 'masks/link.png' resolves to" in msg
    assert f"--allow-outside {resolved}" in msg and "'abs'" not in msg  # an absolute path inside is fine
    plans = plans_of(work / "jobs.csv", cwd=work, allow_outside=[outside])
    assert [f.path for p in plans for f in p.files] == [resolved, resolved, work / "masks" / "m0.png"]


def test_a_missing_input_file_fails_its_job_only_and_a_bare_name_is_comfyuis(tmp_path):
    write_mask_jobs(tmp_path, 1)
    (tmp_path / "jobs.csv").write_text("id,workflow,1.image\nok,wf.json,masks/m0.png\ngone,wf.json,masks/nope.png\n"
                                       "server,wf.json,on_server.png\n")
    ok, gone, server = plans_of(tmp_path / "jobs.csv")
    assert ok.missing is None and len(ok.files) == 1
    assert gone.missing.startswith("input file for 1.image 'masks/nope.png' not found (looked at ")
    assert server.missing is None and server.files == [] and server.prompt["1"]["inputs"]["image"] == "on_server.png"


def test_a_values_file_content_is_part_of_the_jobs_spec(tmp_path):
    write_mask_jobs(tmp_path, 2)
    jobs = read_jobs(tmp_path / "jobs.jsonl", Roots(tmp_path, cwd=tmp_path))
    before = [job_spec(j) for j in jobs]
    (tmp_path / "masks" / "m1.png").write_bytes(b"repainted")
    after = [job_spec(j) for j in jobs]
    assert before[0] == after[0] and before[1] != after[1] and before[0] != before[1]


@pytest.mark.parametrize("name", ["t2v_inpaint_shots.jsonl", "t2v_inpaint_shots.csv"])
def test_the_example_jobs_files_name_nodes_of_the_t2v_example(name):
    path = REPO / "example_workflows" / "batch" / name
    roots = Roots(path.parent, cwd=REPO)
    jobs = read_jobs(path, roots)
    docs, _ = load_workflows(jobs)
    plans = plan_jobs(jobs, api_prompts(docs), {}, roots)  # no node types: names only
    assert [j.id for j in jobs] == ["shot010", "shot020", "shot030"]
    assert [p.prompt["17"]["inputs"]["seed"] for p in plans] == [1010, 1020, 1030]
    assert [p.prompt["9"]["inputs"]["file"] for p in plans] == [f"shots/shot0{n}0_mask.mp4" for n in (1, 2, 3)]


def test_the_jsonl_and_csv_examples_agree():
    folder = REPO / "example_workflows" / "batch"
    roots = Roots(folder, cwd=REPO)
    a, b = read_jobs(folder / "t2v_inpaint_shots.jsonl", roots), read_jobs(folder / "t2v_inpaint_shots.csv", roots)
    docs, _ = load_workflows(a)
    pa, pb = plan_jobs(a, api_prompts(docs), {}, roots), plan_jobs(b, api_prompts(docs), {}, roots)
    assert [p.prompt for p in pa] == [p.prompt for p in pb]
