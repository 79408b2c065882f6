"""GPU check, tests stage: the test suite's CUDA-marked tests (``@pytest.mark.cuda``: offload, pinned
output, bf16 decode, the sampler patch's zero syncs, ...) in a pytest subprocess, on the device.
Only the files that carry the marker are collected (collection of the whole suite costs more than
the tests). On a machine without CUDA they skip with their reason; the stage still runs them so
that the command cannot rot."""
from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = "pytest.mark." + "cuda"  # spelled apart so that this file never matches its own scan
VERBOSE_LINE = re.compile(r"^(\S+::\S+)\s+(PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)")


def cuda_test_files(root: Path = ROOT) -> list[Path]:
    """Test files of ``root/tests`` that use the ``cuda`` marker."""
    return [p for p in sorted((root / "tests").rglob("test_*.py")) if MARKER in p.read_text()]


def junit_cases(path: Path) -> list[dict]:
    """``[{name, outcome, message}]`` from a pytest junit XML file."""
    cases = []
    for tc in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            child = tc.find(tag)
            if child is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = (child.get("message") or "").strip()[:300]
        cases.append({"name": f"{tc.get('classname')}::{tc.get('name')}", "outcome": outcome, "message": message})
    return cases


def verbose_cases(output: str) -> list[dict]:
    """Cases from ``pytest -v`` output (what a run cut by its budget leaves: no junit file)."""
    return [{"name": m.group(1), "outcome": m.group(2).lower(), "message": ""}
            for m in map(VERBOSE_LINE.match, output.splitlines()) if m]


def run_tests_stage(ctx, report) -> str:
    files = cuda_test_files()
    xml = ctx.out / "cuda_tests.xml"
    xml.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", *(str(f.relative_to(ROOT)) for f in files), "-m", "cuda", "-v",
           "-p", "no:cacheprovider", f"--junitxml={xml}"]
    data = report.data["tests"]
    data.update(files=len(files), command=" ".join(cmd[1:]))
    status = "done"
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(1.0, ctx.time_left("tests")))
        output = proc.stdout + proc.stderr
        data["returncode"] = proc.returncode
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        status = "partial"
        report.skip("tests", "the CUDA tests after the budget",
                    f"pytest stopped at the stage budget ({e.timeout:.0f} s)")
    cases = junit_cases(xml) if xml.exists() else verbose_cases(output)
    counts = {k: sum(c["outcome"] == k for c in cases) for k in ("passed", "failed", "error", "skipped")}
    data.update(cases=cases, counts=counts, output_tail=output[-3000:])
    (ctx.out / "cuda_tests.log").write_text(output)
    if not cases and status == "done":  # pytest did not get to the tests (exit 2-5: see cuda_tests.log)
        last = next((ln for ln in reversed(output.splitlines()) if ln.strip()), "no output")
        raise RuntimeError(f"pytest exited {data.get('returncode')} without running a CUDA-marked test: {last[:200]}")
    skipped = [c for c in cases if c["outcome"] == "skipped"]
    if skipped:
        report.skip("tests", f"{len(skipped)} CUDA-marked tests", skipped[0]["message"] or "skipped")
    return status
