"""Where model files come from and where they go, and what the runner says when ComfyUI lacks one.

One table (``MODEL_DOWNLOADS``) serves the UI examples' ``properties.models`` (the download links the
frontend offers) and the runner's messages for the API examples; a workflow's own
``properties.models`` (ComfyUI's templates carry them) come first.
"""
from __future__ import annotations

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
# a loader's input -> the models/ folder it lists (when the file is in no table)
FOLDER_OF_INPUT = {"unet_name": "diffusion_models", "vae_name": "vae", "clip_name": "text_encoders",
                   "clip_name1": "text_encoders", "clip_name2": "text_encoders", "ckpt_name": "checkpoints",
                   "lora_name": "loras", "control_net_name": "controlnet", "model_name": "upscale_models",
                   "clip_vision_name": "clip_vision"}
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")
MEDIA_ERRORS = ("Invalid video file", "Invalid image file", "Invalid file")


def links_in_workflow(workflow: dict) -> dict[str, tuple[str, str]]:
    """file name -> (URL, folder) from the ``properties.models`` of a UI-format workflow's nodes
    (subgraphs included); {} for an API-format prompt."""
    nodes = list(workflow.get("nodes") or []) if isinstance(workflow, dict) else []
    for sub in ((workflow.get("definitions") or {}).get("subgraphs") or []) if isinstance(workflow, dict) else []:
        nodes += sub.get("nodes") or []
    links = {}
    for node in nodes:
        for m in ((node.get("properties") or {}).get("models") or []) if isinstance(node, dict) else []:
            if isinstance(m, dict) and m.get("name") and m.get("url"):
                links[m["name"]] = (m["url"], m.get("directory") or "")
    return links


def add_model_links(ui: dict) -> dict:
    """``properties.models`` on every node whose widgets name a known model file."""
    for node in ui["nodes"]:
        models = [{"name": v, "url": MODEL_DOWNLOADS[v][0], "directory": MODEL_DOWNLOADS[v][1]}
                  for v in node.get("widgets_values") or [] if isinstance(v, str) and v in MODEL_DOWNLOADS]
        if models:
            node.setdefault("properties", {})["models"] = models
    return ui


def hints_for(node_errors: dict, error: dict | None, workflow: dict | None = None) -> list[str]:
    """What to do about ComfyUI's refusals that mean a file is missing: a model (which folder of
    ``models/`` it goes in, and its download link when known) or an input clip or image (where
    ComfyUI looks, and ``--set`` with a local path)."""
    links = {**MODEL_DOWNLOADS, **links_in_workflow(workflow or {})}
    hints, media = [], False
    for nid, err in (node_errors or {}).items():
        for e in err.get("errors", []) if isinstance(err, dict) else []:
            extra = e.get("extra_info") or {}
            value, name = extra.get("received_value"), extra.get("input_name")
            if e.get("type") == "value_not_in_list" and isinstance(value, str) and value.lower().endswith(MODEL_SUFFIXES):
                url, folder = links.get(value, (None, None))
                folder = folder or FOLDER_OF_INPUT.get(name, "the folder its loader lists")
                hints.append(f"  model {value!r} (node {nid} {err.get('class_type', '')}, {name}): put it in "
                             f"ComfyUI/models/{folder}/" + (f"; download: {url}" if url else ""))
            elif any(m in f"{e.get('message', '')} {e.get('details', '')}" for m in MEDIA_ERRORS):
                media = True
    if error and any(m in str(error.get("exception_message", "")) for m in MEDIA_ERRORS):
        media = True
    if media:
        hints.append("  an input file is missing: ComfyUI reads inputs from its input folder (ComfyUI/input/, or "
                     "--input-directory); give a local file with --set NODE.INPUT=./path/to/file and the runner "
                     "sends it there")
    return (["what to do:"] + hints) if hints else []
