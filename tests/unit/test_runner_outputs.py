"""Output files land under --out and nowhere else, and none is lost: the runner against a stub
ComfyUI server on 127.0.0.1 whose /history names hostile and colliding output files."""
from __future__ import annotations

import json

import pytest

from comfyui_wanmasking.wanmask_runner import cli
from comfyui_wanmasking.tests.unit.stub_comfyui import Stub
from comfyui_wanmasking.wanmask_runner.api import OutputPathError, output_destination, run_workflow

PROMPT = {"9": {"class_type": "Save", "inputs": {"prefix": "p"}, "_meta": {"title": "My Saver"}}}


def ref(filename, subfolder="", kind="output"):
    return {"filename": filename, "subfolder": subfolder, "type": kind}


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_subfolders_are_kept_and_colliding_names_are_suffixed(tmp_path):
    outputs = {"9": {"images": [ref("ok.png", "a"), ref("ok.png", "b"), ref("ok.png", "a", "temp"),
                                ref("top.png"), ref("deep.png", "x/./y//z")], "text": ["not a file"],
                     "animated": [True]},
               "3": {"latents": [ref("l.latent", "latents")]}}
    out = tmp_path / "out"
    with Stub(outputs) as stub:
        result = run_workflow(PROMPT, server=stub.url, out_dir=out, timeout=20, previews=True)
        assert files_under(out) == ["a/ok.png", "b/ok.png", "latents/l.latent", "previews/a/ok.png", "top.png",
                                    "x/y/z/deep.png"]  # any kind of output file (SaveLatent's "latents")
        assert (out / "a" / "ok.png").read_bytes() == b"output|a|ok.png"
        assert (out / "previews" / "a" / "ok.png").read_bytes() == b"temp|a|ok.png"
        assert (out / "b" / "ok.png").read_bytes() == b"output|b|ok.png"
        assert sorted(result.files) == sorted(p for p in out.rglob("*") if p.is_file())
        # the server is asked for the file by its own name, subfolder and type
        assert {"filename": ["deep.png"], "subfolder": ["x/./y//z"], "type": ["output"]} in stub.views
        # a second run into the same folder overwrites nothing
        (out / "top.png").write_bytes(b"mine")
        again = run_workflow(PROMPT, server=stub.url, out_dir=out, timeout=20, previews=True)
    assert (out / "top.png").read_bytes() == b"mine"
    assert (out / "top_1.png").read_bytes() == b"output||top.png"
    assert (out / "a" / "ok_1.png").exists() and (out / "previews" / "a" / "ok_1.png").exists()
    assert len(again.files) == 6 and len(files_under(out)) == 12


def test_previews_are_counted_not_written_unless_asked(tmp_path):
    outputs = {"4": {"images": [ref(f"ComfyUI_temp_{i:05}_.png", "", "temp") for i in range(3)]},
               "9": {"videos": [ref("final.mp4")]}}
    with Stub(outputs) as stub:
        result = run_workflow(PROMPT, server=stub.url, out_dir=tmp_path / "out", timeout=20)
    assert files_under(tmp_path / "out") == ["final.mp4"]
    assert result.previews_skipped == 3 and not any(q["type"] == ["temp"] for q in stub.views)


# (file name, subfolder, what is refused, why): every name that would put a file outside --out.
PLAIN = "is not a plain file name"
OUT_OF_OUT = "is absolute or goes up with '..'"
HOSTILE = [
    ("../escape.png", "", "file name", PLAIN), ("ok.png", "../..", "subfolder", OUT_OF_OUT),
    ("ok.png", "a/../../b", "subfolder", OUT_OF_OUT), ("sub/../x.png", "", "file name", PLAIN),
    ("x.png", "/tmp", "subfolder", OUT_OF_OUT), ("C:\\evil.png", "", "file name", PLAIN),
    ("evil.png", "C:\\Windows", "subfolder", OUT_OF_OUT), ("..\\..\\evil.png", "", "file name", PLAIN),
    ("", "", "file name", PLAIN), ("..", "", "file name", PLAIN), ("a\x00b.png", "", "file name", PLAIN),
    ("x.png", "\\\\host\\share", "subfolder", OUT_OF_OUT),
]


@pytest.mark.parametrize("filename,subfolder,refused,why", HOSTILE)
def test_names_that_would_leave_out_are_refused(tmp_path, filename, subfolder, refused, why):
    """The reason names the part that is refused (file name or subfolder), its value as the server gave
    it, and why; nothing is created on the way."""
    reason = output_destination(tmp_path / "out", ref(filename, subfolder))
    assert isinstance(reason, str), f"{filename!r} in {subfolder!r} was accepted as {reason}"
    value = filename if refused == "file name" else subfolder
    assert reason == f"{refused} {value!r} {why}"
    assert files_under(tmp_path) == [] and not (tmp_path / "out").exists()


def test_names_that_stay_under_out_are_accepted(tmp_path):
    """The refusal above is about the names, not about every name: the same shapes kept under out pass."""
    out = tmp_path / "out"
    assert output_destination(out, ref("ok.png", "a/./b//c")) == out / "a" / "b" / "c" / "ok.png"
    assert output_destination(out, ref("x..png", "v1..2")) == out / "v1..2" / "x..png"


def test_a_hostile_history_entry_writes_nothing_outside_out_and_names_node_and_file(tmp_path):
    victim = tmp_path / "abs.png"
    outputs = {"9": {"images": [ref("../escape.png"), ref(str(victim)), ref("good.png", "sub")]},
               "12:5": {"videos": [ref("v.mp4", "../../../")]}}
    out = tmp_path / "deep" / "out"
    with Stub(outputs) as stub:
        with pytest.raises(OutputPathError) as err:
            run_workflow(PROMPT, server=stub.url, out_dir=out, timeout=20)
    msg = str(err.value)
    assert "node 9 ('My Saver'): images file '../escape.png'" in msg
    assert f"node 9 ('My Saver'): images file {str(victim)!r}" in msg
    assert "node 12:5: videos file 'v.mp4' (subfolder '../../../', type 'output')" in msg
    assert files_under(tmp_path) == ["deep/out/sub/good.png"]  # the safe one is not lost
    assert err.value.result.files == [out / "sub" / "good.png"]
    assert not victim.exists()


def test_a_subfolder_that_is_a_link_out_of_out_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "link").symlink_to(outside, target_is_directory=True)
    with Stub({"3": {"images": [ref("x.png", "link")]}}) as stub:
        with pytest.raises(OutputPathError, match=r"node 3: images file 'x.png' \(subfolder 'link', type 'output'\).*outside"):
            run_workflow(PROMPT, server=stub.url, out_dir=out, timeout=20)
    assert list(outside.iterdir()) == []


def test_cli_reports_written_and_refused_files_and_exits_1(tmp_path, capsys):
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(PROMPT))
    out = tmp_path / "out"
    with Stub({"9": {"images": [ref("/etc/passwd"), ref("fine.png")]}}) as stub:
        code = cli.main([str(workflow), "--server", stub.url, "--out", str(out), "--quiet", "--timeout", "20"])
    captured = capsys.readouterr()
    assert code == 1
    assert f"wrote {out / 'fine.png'}" in captured.out
    assert "images file '/etc/passwd'" in captured.err and "not written" in captured.err
    assert files_under(out) == ["fine.png"]


def test_a_listed_file_that_is_gone_is_named_and_the_others_are_written(tmp_path, caplog):
    """A cached node's result names a file written by an earlier prompt; when that file is gone, a
    preview (temp) is skipped with a warning, an output is reported by node and file (exit 1 in the CLI)."""
    outputs = {"4": {"images": [ref("prev.png", "", "temp"), ref("kept.png", "", "temp")]},
               "9": {"images": [ref("final.png"), ref("also.png")]}}
    out = tmp_path / "out"
    with Stub(outputs, gone={"prev.png"}) as stub:
        caplog.set_level("WARNING", logger="wanmask_runner")
        result = run_workflow(PROMPT, server=stub.url, out_dir=out, timeout=20, previews=True)
        assert files_under(out) == ["also.png", "final.png", "previews/kept.png"]
        assert "skipped a preview that is gone: node 4: images file 'prev.png'" in caplog.text
        assert "cached result" in caplog.text and len(result.files) == 3
        stub.gone = {"final.png"}
        with pytest.raises(OutputPathError) as err:
            run_workflow(PROMPT, server=stub.url, out_dir=tmp_path / "again", timeout=20, previews=True)
    msg = str(err.value)
    assert "node 9 ('My Saver'): images file 'final.png' (subfolder '', type 'output'): gone from ComfyUI" in msg
    assert "answered 404" in msg and "run again" in msg
    assert files_under(tmp_path / "again") == ["also.png", "previews/kept.png", "previews/prev.png"]
