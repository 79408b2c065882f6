"""Every node of the pack is declared as ComfyUI declares its own (V3): a class deriving
``io.ComfyNode`` with ``define_schema`` and ``execute``, a ``WanMask`` id, registered in the one
extension's node list, and no V1 attributes left. Reads the sources, so it needs no ComfyUI."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

NODES = Path(__file__).resolve().parents[2] / "nodes"
V1_ATTRIBUTES = {"INPUT_TYPES", "RETURN_TYPES", "RETURN_NAMES", "FUNCTION", "CATEGORY", "OUTPUT_NODE",
                 "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "INPUT_IS_LIST", "OUTPUT_TOOLTIPS"}


def node_classes() -> dict[str, tuple[Path, ast.ClassDef]]:
    found = {}
    for path in sorted(NODES.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and any(ast.unparse(b) == "io.ComfyNode" for b in node.bases):
                found[node.name] = (path, node)
    return found


def test_no_v1_declarations_remain():
    for path in NODES.glob("*.py"):
        names = {n.id for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Name)} | \
                {n.attr for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Attribute)}
        assert not names & V1_ATTRIBUTES, f"{path.name} still uses {sorted(names & V1_ATTRIBUTES)}"


@pytest.mark.parametrize("name", sorted(node_classes()))
def test_each_node_is_a_v3_node_with_a_wanmask_id(name):
    path, cls = node_classes()[name]
    methods = {f.name for f in cls.body if isinstance(f, ast.FunctionDef)}
    assert {"define_schema", "execute"} <= methods, f"{path.name}:{name} lacks define_schema/execute"
    ids = [kw.value.value for n in ast.walk(cls) if isinstance(n, ast.Call)
           for kw in n.keywords if kw.arg == "node_id" and isinstance(kw.value, ast.Constant)]
    assert ids == [name] and name.startswith("WanMask"), (name, ids)


def test_the_extension_registers_every_node_once():
    init = ast.parse((NODES / "__init__.py").read_text())
    listed = next(n for n in init.body if isinstance(n, ast.AnnAssign) and ast.unparse(n.target) == "NODES")
    names = [e.id for e in listed.value.elts]
    assert sorted(names) == sorted(node_classes()) and len(set(names)) == len(names)
    assert any(isinstance(n, ast.ClassDef) and "ComfyExtension" in map(ast.unparse, n.bases) for n in init.body)


def test_the_package_root_hands_comfyui_the_extension_lazily():
    root = ast.parse((NODES.parent / "__init__.py").read_text())
    assert not [n for n in root.body if isinstance(n, (ast.Import, ast.ImportFrom))], \
        "the root __init__ must import nothing at module level (the tests import it without ComfyUI)"
    entry = next(n for n in root.body if isinstance(n, ast.AsyncFunctionDef) and n.name == "comfy_entrypoint")
    assert "WanMaskingExtension" in ast.unparse(entry)
