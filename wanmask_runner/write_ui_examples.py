"""Write the UI-format twin of every API-format example: ``example_workflows/api/X.json`` ->
``example_workflows/<X's title>.json`` (the folder ComfyUI serves as templates; titles in example_names.py).

    python -m wanmask_runner.write_ui_examples --comfyui /path/to/ComfyUI   (or --server URL)

Only examples whose every node type the ComfyUI has are written (so the twin of an example made for
another ComfyUI version is left as it is); ``--examples NAME ...`` picks some. A UI example that
packages nodes in subgraphs is the source of its API twin, not the other way round: it is kept. Loader nodes get the
download links of their model files in ``properties.models``, as ComfyUI's official templates carry
them, so the frontend can offer the downloads.
"""
from __future__ import annotations

import argparse
import json

from .backends import open_backend
from .example_names import ui_example
from .locate import REPO
from .model_links import add_model_links
from .workflow.convert import api_to_ui

EXAMPLES = REPO / "example_workflows"

def example_applies(prompt: dict, object_info: dict) -> bool:
    """True when the ComfyUI behind ``object_info`` has every node type of an API-format example."""
    return all(n["class_type"] in object_info for n in prompt.values())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--server")
    where.add_argument("--comfyui")
    p.add_argument("--examples", nargs="*", metavar="NAME", help="only these examples (file names without .json)")
    args = p.parse_args(argv)
    info = open_backend(server=args.server, comfyui=args.comfyui,
                        comfy_args=() if args.server else ["--cpu"]).object_info()
    for api_file in sorted((EXAMPLES / "api").glob("*.json")):
        if args.examples and api_file.stem not in args.examples:
            continue
        prompt = json.loads(api_file.read_text())
        ui_file = ui_example(api_file.stem)
        if ui_file.exists() and json.loads(ui_file.read_text()).get("definitions", {}).get("subgraphs"):
            print(f"kept {ui_file.name}: made in the frontend with subgraphs (its API twin follows it)")
            continue
        if not example_applies(prompt, info):
            print(f"skipped {api_file.name}: made for a ComfyUI with other nodes")
            continue
        ui = add_model_links(api_to_ui(prompt, info))
        ui_file.write_text(json.dumps(ui, indent=1) + "\n")
        print(f"wrote {ui_file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
