"""The benchmarks' one entry point: ``python benchmarks/run.py NAME [ARGS...]``.

It imports the repo root the way ComfyUI does, as one package (``comfyui_wanmasking``), and runs
``benchmarks/NAME.py`` as ``comfyui_wanmasking.benchmarks.NAME``, so the benchmarks use relative
imports of the core and nothing shadows ComfyUI's own ``nodes``. ComfyUI itself, which is not an
installed package, comes from COMFYUI_PATH (the benchmarks that compare with native need it).

    COMFYUI_PATH=/path/to/ComfyUI python benchmarks/run.py vae --frames 17 --size 256
    python benchmarks/run.py mask_conversion --threads 1
"""
from __future__ import annotations

import importlib.util
import os
import runpy
import sys
from pathlib import Path

PACKAGE = "comfyui_wanmasking"
ROOT = Path(__file__).resolve().parents[1]
NAMES = sorted(p.stem for p in Path(__file__).parent.glob("*.py") if p.stem not in ("run", "__init__"))
ENV = {
    # Fixed mmap threshold: every large tensor is mmapped and unmapped on free, so process RSS measures
    # what each run allocates instead of glibc's reuse of earlier runs' heap (the CPU peak-memory figures).
    "vae": {"MALLOC_MMAP_THRESHOLD_": "65536"},
    "training_set": {"MALLOC_MMAP_THRESHOLD_": "65536"},
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in NAMES:
        sys.exit(f"usage: python benchmarks/run.py NAME [ARGS...]; NAME is one of {', '.join(NAMES)}")
    name = sys.argv[1]
    missing = {k: v for k, v in ENV.get(name, {}).items() if os.environ.get(k) != v}
    if missing:  # allocator settings only take effect at process start
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **missing})
    if os.environ.get("COMFYUI_PATH"):
        sys.path.insert(0, os.environ["COMFYUI_PATH"])  # ComfyUI's own top-level modules (comfy, nodes)
    spec = importlib.util.spec_from_file_location(PACKAGE, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    sys.modules[PACKAGE] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules[PACKAGE])
    sys.argv = [f"benchmarks/{name}.py", *sys.argv[2:]]
    runpy.run_module(f"{PACKAGE}.benchmarks.{name}", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
