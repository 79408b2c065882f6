"""The runner's modules import each other without cycles (function-local imports count too): results
and errors in results.py, the backends behind backends.py, the API on top."""
from __future__ import annotations

import ast
from pathlib import Path

RUNNER = Path(__file__).resolve().parents[2] / "wanmask_runner"


def imports_of(path: Path) -> set[str]:
    """The runner modules a file imports, anywhere in it (``from .x import`` and ``from wanmask_runner.x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 0 and (node.module or "").startswith("wanmask_runner."):
                found.add(node.module.split(".")[1])
    return found


def test_runner_modules_form_no_import_cycle():
    graph = {p.stem: imports_of(p) for p in RUNNER.glob("*.py")}
    state: dict[str, str] = {}

    def visit(mod, path):
        if state.get(mod) == "done":
            return
        assert state.get(mod) != "open", f"import cycle: {' -> '.join(path + [mod])}"
        state[mod] = "open"
        for dep in sorted(graph.get(mod, ())):
            visit(dep, path + [mod])
        state[mod] = "done"

    for mod in sorted(graph):
        visit(mod, [])
    assert not ({"api"} & (graph["server_backend"] | graph["embedded_backend"] | graph["results"]))
