"""What the runner prints: one tqdm bar with the node's name, log lines above it (never through it),
each runner line once beside ComfyUI's root handler, the program name as started, the closing
summary, and an unreachable server named with its URL."""
from __future__ import annotations

import io
import logging
import socket
import sys
from pathlib import Path

from comfyui_wanmasking.wanmask_runner import cli
from comfyui_wanmasking.wanmask_runner.progress import ProgressPrinter, logs_above_bar
from comfyui_wanmasking.wanmask_runner.results import RunResult


def events(printer):
    printer("wanmask_prompt", {"titles": {"3": "Sampler (mask)", "8": "VAEDecode"}})
    printer("execution_start", {})
    printer("executing", {"node": "3"})
    for v in range(1, 5):
        printer("progress", {"node": "3", "value": v, "max": 4})
    printer("executing", {"node": "8"})
    printer("progress", {"node": "8", "value": 2, "max": 9})


def test_one_bar_counts_nodes_and_names_the_node_and_its_steps():
    buf = io.StringIO()
    p = ProgressPrinter(stream=buf)
    events(p)
    text = buf.getvalue()
    assert "running Sampler (mask) (node 3)" in text and "step 4/4" in text and "0/2 nodes" in text
    assert "running VAEDecode (node 8)" in text and "step 2/9" in text and "1/2 nodes" in text
    p("execution_success", {})
    last = buf.getvalue().rsplit("\r", 1)[-1]
    assert p.bar is None and last.startswith("done") and "2/2 nodes" in last


def test_log_lines_go_above_the_bar_not_through_it(capsys):
    logger = logging.getLogger("wanmask_test_console")
    logger.propagate = False
    handler = logging.StreamHandler(sys.stderr)  # a console handler, as ComfyUI's and the runner's are
    logger.addHandler(handler)
    try:
        with logs_above_bar(logger):
            p = ProgressPrinter()
            p("executing", {"node": "5"})
            p("progress", {"node": "5", "value": 1, "max": 3})
            logger.warning("Using split attention in VAE")
            p("progress", {"node": "5", "value": 2, "max": 3})
            p("execution_success", {})
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    pieces = [piece.strip() for line in err.split("\n") for piece in line.split("\r")]
    assert "Using split attention in VAE" in pieces, err  # a line of its own, nothing of the bar in it
    assert err.count("Using split attention in VAE") == 1


def test_runner_lines_print_once_beside_a_root_handler(capsys):
    root_handler = logging.StreamHandler(sys.stderr)  # what embedded ComfyUI installs on the root logger
    logging.getLogger().addHandler(root_handler)
    try:
        cli.use_runner_logger()
        cli.use_runner_logger()  # twice: still one handler
        logging.getLogger("wanmask_runner").warning("once please")
    finally:
        logging.getLogger().removeHandler(root_handler)
    assert capsys.readouterr().err.count("once please") == 1


def test_help_names_the_program_as_it_was_started(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/x/wanmask_runner/__main__.py"])
    assert cli.build_parser().format_usage().startswith("usage: python -m wanmask_runner")
    monkeypatch.setattr(sys, "argv", ["/venv/bin/wanmask-run"])
    assert cli.build_parser().format_usage().startswith("usage: wanmask-run")


def test_summary_names_the_video_and_the_previews_left_out():
    result = RunResult("p1", True, "success", files=[Path("out/a.png"), Path("out/clip_00001.mp4")],
                       previews_skipped=17)
    text = cli.summary(result, "out")
    assert "video: out/clip_00001.mp4" in text
    assert "17 preview image(s) not written (--previews writes them to out/previews/)" in text
    assert text.splitlines()[-1] == "done: prompt p1, 2 file(s) in out"


def test_an_unreachable_server_is_named_with_how_to_start_one(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    wf = tmp_path / "wf.json"
    wf.write_text('{"1": {"class_type": "X", "inputs": {}}}')
    code = cli.main([str(wf), "--server", f"http://127.0.0.1:{port}", "--quiet"])
    err = capsys.readouterr().err
    assert code == 3
    assert f"no ComfyUI answers at http://127.0.0.1:{port}" in err and "--server URL" in err and "main.py" in err


def test_help_and_readme_give_the_same_exit_codes():
    def sentence(text):
        flat = " ".join(text.replace("`", "").replace("* ", " ").split())
        start = flat.index("Exit codes:")
        return flat[start:flat.index("not found.", start) + len("not found.")]

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert sentence(cli.build_parser().format_help()) == sentence(readme)
