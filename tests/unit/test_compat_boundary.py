"""ComfyUI internals sit behind one boundary: the package nodes/comfy_compat/, one module per subsystem.

Every other module of nodes/ may import only ComfyUI's public node API (the modules a node
declaration uses: folder_paths, node_helpers, nodes' constants, comfy.latent_formats,
comfy.clip_vision, comfy_api.latest) and the compatibility package. This reads the sources, so it
needs no ComfyUI.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

NODES = Path(__file__).resolve().parents[2] / "nodes"
BOUNDARY = NODES / "comfy_compat"
BOUNDARY_FILES = sorted(BOUNDARY.glob("*.py"))
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


@pytest.mark.parametrize("path", sorted(NODES.glob("*.py")), ids=lambda p: p.name)
def test_node_modules_import_only_the_public_node_api(path):
    internal = [m for m in comfy_imports(path) if m not in PUBLIC]
    assert not internal, (f"{path.name} imports ComfyUI internals {internal}: go through {BOUNDARY.name} "
                          "(the one compatibility boundary) instead")


# Attributes of ComfyUI objects that are not the node API (ModelPatcher, model_base, comfy.sd.VAE / CLIP,
# guiders, samplers): only the boundary reaches them.
INTERNAL_ATTRS = {"first_stage_model", "diffusion_model", "model_patcher", "inner_model", "model_sampling",
                  "latent_format", "cond_stage_model", "model_options", "load_device", "offload_device",
                  "vae_dtype", "get_sd", "memory_used_decode", "memory_used_encode",
                  "patcher", "transformer_options", "set_model_denoise_mask_function", "add_wrapper_with_key",
                  "add_object_patch", "model_state_dict", "upscale_ratio", "downscale_ratio"}


@pytest.mark.parametrize("path", sorted(NODES.glob("*.py")), ids=lambda p: p.name)
def test_node_modules_reach_no_internal_attribute_of_comfyui_objects(path):
    tree = ast.parse(path.read_text())
    reached = sorted({(n.attr, n.lineno) for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                      and n.attr in INTERNAL_ATTRS and getattr(n.value, "id", None) != "compat"}
                     | {(n.args[1].value, n.lineno) for n in ast.walk(tree) if isinstance(n, ast.Call)
                        and getattr(n.func, "id", None) in ("getattr", "setattr", "hasattr") and len(n.args) > 1
                        and isinstance(n.args[1], ast.Constant) and n.args[1].value in INTERNAL_ATTRS})
    assert not reached, (f"{path.name} reaches ComfyUI internals {reached} (attribute, line): add a function to "
                         f"{BOUNDARY.name} instead")


def test_the_boundary_is_where_the_internals_are():
    internal = {m for path in BOUNDARY_FILES for m in comfy_imports(path) if m not in PUBLIC}
    # the prompt queue, the trainer, VAE wiring, sampler wrappers, the denoise-mask function, context windows
    for needed in ("comfy.sampler_helpers", "comfy.patcher_extension", "comfy.model_patcher", "comfy.sd",
                   "comfy_extras.nodes_train", "comfy.weight_adapter", "comfy.context_windows",
                   "comfy_extras.nodes_context_windows"):
        assert needed in internal, f"{BOUNDARY.name} no longer reaches {needed}"


@pytest.mark.parametrize("path", BOUNDARY_FILES, ids=lambda p: p.name)
def test_the_boundary_imports_comfyui_lazily(path):
    """The runner loads the package before ComfyUI has parsed its command line: no module-level import
    of ComfyUI, and nothing of the pack outside the package (its modules import each other only)."""
    tree = ast.parse(path.read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    roots = {(a.name if isinstance(n, ast.Import) else n.module or "").split(".")[0]
             for n in top for a in (n.names if isinstance(n, ast.Import) else [n])}
    assert not roots & COMFY_ROOTS, f"module-level ComfyUI imports in {path.name}: {roots & COMFY_ROOTS}"
    outside = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level > 1]
    assert not outside, f"{path.name} imports the pack outside comfy_compat (the runner loads it on its own)"


def test_each_module_of_the_boundary_stays_small():
    for path in BOUNDARY_FILES:
        assert len(path.read_text().splitlines()) <= 400, f"{path.name} is over 400 lines: split it by subsystem"
