"""Write the UI-format twin of every API-format example: ``example_workflows/api/X.json`` ->
``example_workflows/X.json`` (the folder ComfyUI serves as templates).

    python -m wanmask_runner.ui_twins --comfyui /path/to/ComfyUI   (or --server URL)
"""
from __future__ import annotations

import argparse
import json

from .locate import REPO
from .workflow_format import api_to_ui

EXAMPLES = REPO / "example_workflows"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--server")
    where.add_argument("--comfyui")
    args = p.parse_args(argv)
    if args.server:
        from .server_backend import ServerBackend
        info = ServerBackend(args.server).object_info()
    else:
        from .embedded_backend import EmbeddedBackend
        info = EmbeddedBackend.get(args.comfyui, ["--cpu"]).object_info()
    for api_file in sorted((EXAMPLES / "api").glob("*.json")):
        ui = api_to_ui(json.loads(api_file.read_text()), info)
        (EXAMPLES / api_file.name).write_text(json.dumps(ui, indent=1) + "\n")
        print(f"wrote {EXAMPLES / api_file.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
