"""Where is ComfyUI? COMFYUI_PATH, else the ComfyUI this pack is installed in."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
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
