"""Where things are: ComfyUI (COMFYUI_PATH, else the ComfyUI this pack is installed in), and the
node pack itself as the package ``comfyui_wanmasking``."""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "comfyui_wanmasking"
HOW_TO_GET = ("Get one with: git clone https://github.com/comfyanonymous/ComfyUI && "
              "pip install -r ComfyUI/requirements.txt, then set COMFYUI_PATH=/path/to/ComfyUI "
              "(or clone this pack into ComfyUI/custom_nodes/).")


def find_comfyui() -> tuple[Path | None, str]:
    """(path, "") when found; (None, why) otherwise."""
    env = os.environ.get("COMFYUI_PATH")
    if env:
        p = Path(env).expanduser().resolve()
        if (p / "main.py").is_file() and (p / "comfy").is_dir():
            return p, ""
        return None, f"COMFYUI_PATH={env} is not a ComfyUI checkout (no main.py and comfy/ there)"
    parent = REPO.parent
    if parent.name == "custom_nodes" and (parent.parent / "main.py").is_file():
        return parent.parent, ""
    return None, "no ComfyUI found: COMFYUI_PATH is not set and this pack is not inside a ComfyUI/custom_nodes folder"


def import_pack() -> ModuleType:
    """The node pack as the package ``comfyui_wanmasking``, the way ComfyUI imports the repo root: the
    folder above this runner when that is the pack (a checkout, or the custom_nodes folder), else the
    installed distribution (``pip install .``). Loads nothing of ComfyUI."""
    if PACKAGE in sys.modules:
        return sys.modules[PACKAGE]
    init = REPO / "__init__.py"
    if init.is_file() and (REPO / "masking").is_dir():
        spec = importlib.util.spec_from_file_location(PACKAGE, init, submodule_search_locations=[str(REPO)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(PACKAGE)
