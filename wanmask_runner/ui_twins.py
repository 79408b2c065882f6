"""Write the UI-format twin of every API-format example: ``example_workflows/api/X.json`` ->
``example_workflows/X.json`` (the folder ComfyUI serves as templates).

    python -m wanmask_runner.ui_twins --comfyui /path/to/ComfyUI   (or --server URL)

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
from .locate import REPO
from .workflow_format import api_to_ui

EXAMPLES = REPO / "example_workflows"

_WAN21 = "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files"
_WAN22 = "https://huggingface.co/Comfy-Org/Wan_2.2_ComfyUI_Repackaged/resolve/main/split_files"
MODEL_DOWNLOADS = {  # file name -> (download URL, models/ folder), as ComfyUI's official templates give them
    "wan2.1_t2v_1.3B_fp16.safetensors": (f"{_WAN21}/diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors",
                                         "diffusion_models"),
    "wan2.1_i2v_480p_14B_fp16.safetensors": (f"{_WAN21}/diffusion_models/wan2.1_i2v_480p_14B_fp16.safetensors",
                                             "diffusion_models"),
    "wan2.1_vace_1.3B_fp16.safetensors": (f"{_WAN21}/diffusion_models/wan2.1_vace_1.3B_fp16.safetensors",
                                          "diffusion_models"),
    "wan2.2_animate_14B_bf16.safetensors": (f"{_WAN22}/diffusion_models/wan2.2_animate_14B_bf16.safetensors",
                                            "diffusion_models"),
    "umt5_xxl_fp8_e4m3fn_scaled.safetensors": (f"{_WAN21}/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                                               "text_encoders"),
    "clip_vision_h.safetensors": (f"{_WAN21}/clip_vision/clip_vision_h.safetensors", "clip_vision"),
    "wan_2.1_vae.safetensors": (f"{_WAN22}/vae/wan_2.1_vae.safetensors", "vae"),
}


def add_model_links(ui: dict) -> dict:
    """``properties.models`` on every node whose widgets name a known model file."""
    for node in ui["nodes"]:
        models = [{"name": v, "url": MODEL_DOWNLOADS[v][0], "directory": MODEL_DOWNLOADS[v][1]}
                  for v in node.get("widgets_values") or [] if isinstance(v, str) and v in MODEL_DOWNLOADS]
        if models:
            node.setdefault("properties", {})["models"] = models
    return ui


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
        ui_file = EXAMPLES / api_file.name
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
