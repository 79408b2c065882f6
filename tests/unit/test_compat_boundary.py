"""ComfyUI internals sit behind one boundary: nodes/comfy_compat.py.

Every other module of nodes/ may import only ComfyUI's public node API (the modules a node
declaration uses: folder_paths, node_helpers, nodes' constants, comfy.latent_formats,
comfy.clip_vision, comfy_api.latest) and the compatibility module. This reads the sources, so it
needs no ComfyUI.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

NODES = Path(__file__).resolve().parents[2] / "nodes"
BOUNDARY = NODES / "comfy_compat.py"
PUBLIC = {"folder_paths", "node_helpers", "nodes", "comfy.latent_formats", "comfy.clip_vision",
          "comfy_api.latest"}
COMFY_ROOTS = {"comfy", "comfy_extras", "comfy_api", "comfy_execution", "execution", "server", "main",
               "folder_paths", "node_helpers", "nodes", "app"}


def comfy_imports(path: Path) -> list[str]:
    """Absolute imports of ComfyUI modules in a file (relative imports are the pack's own)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in COMFY_ROOTS]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in COMFY_ROOTS:
                found.append(node.module)
    return found


@pytest.mark.parametrize("path", sorted(p for p in NODES.glob("*.py") if p != BOUNDARY), ids=lambda p: p.name)
def test_node_modules_import_only_the_public_node_api(path):
    internal = [m for m in comfy_imports(path) if m not in PUBLIC]
    assert not internal, (f"{path.name} imports ComfyUI internals {internal}: go through {BOUNDARY.name} "
                          "(the one compatibility boundary) instead")


def test_the_boundary_is_where_the_internals_are():
    internal = {m for m in comfy_imports(BOUNDARY) if m not in PUBLIC}
    # the prompt queue, the trainer, VAE wiring, sampler wrappers, the denoise-mask function, context windows
    for needed in ("comfy.sampler_helpers", "comfy.patcher_extension", "comfy.model_patcher", "comfy.sd",
                   "comfy_extras.nodes_train", "comfy.weight_adapter", "comfy.context_windows",
                   "comfy_extras.nodes_context_windows"):
        assert needed in internal, f"{BOUNDARY.name} no longer reaches {needed}"


def test_the_boundary_imports_comfyui_lazily():
    """The runner loads the file before ComfyUI has parsed its command line: no module-level import."""
    tree = ast.parse(BOUNDARY.read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    roots = {(a.name if isinstance(n, ast.Import) else n.module or "").split(".")[0]
             for n in top for a in (n.names if isinstance(n, ast.Import) else [n])}
    assert not roots & COMFY_ROOTS, f"module-level ComfyUI imports in {BOUNDARY.name}: {roots & COMFY_ROOTS}"
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in top), "it must not import the pack"
