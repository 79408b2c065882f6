"""The example workflows made runnable on the tiny checkpoints: graph rewrite and input media."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from PIL import Image

from comfyui_wanmasking.wanmask_runner.demo_data import write_clip
from comfyui_wanmasking.wanmask_runner.demo_data import fast_motion_clip
from comfyui_wanmasking.wanmask_runner.fixtures.tiny_dataset import write_tiny_dataset
from comfyui_wanmasking.wanmask_runner.fixtures.tiny_graph import tiny_graph
from comfyui_wanmasking.wanmask_runner.write_ui_examples import example_applies
from comfyui_wanmasking.wanmask_runner.workflow.widgets import declared_input_names

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "example_workflows"
API_EXAMPLES = sorted((EXAMPLES / "api").glob("*.json"))
UI_EXAMPLES = sorted(EXAMPLES.glob("*.json"))  # the templates, named by their titles (example_names.py)
FRAMES, SIZE = 17, 32  # small: the tiny VAE has the real Wan VAE's width
ZERO_COND = ("WanMaskTestZeroConditioning", {"tokens": 8})
FAKE_CLIP_VISION = ("WanMaskTestClipVisionOutput", {"tokens": 257})
FAKE_CLIP = ("WanMaskTestFakeClip", {})
# Example inputs that refer to frame indices of the real 81-frame clip, scaled to the tiny one.
TINY_OVERRIDES = {"keyframe_indices": "8"}
# Per node type: a few training steps in fp32 instead of 500 in bf16.
TINY_NODE_OVERRIDES = {"WanMaskTrainLoRA": {"steps": 2, "training_dtype": "fp32", "lora_dtype": "fp32",
                                            "gradient_checkpointing": False},
                       # the tiny generated set (tiny_dataset.py): 32..64 px items, clips of 5 and 9 frames
                       "WanMaskTrainingSet": {"length": 9, "width": 32, "height": 32},
                       # 9 pixel frames = 3 latent frames, overlap 1 latent frame on both versions: the tiny
                       # 17-frame clip (5 latent frames) still takes two windows
                       "WanMaskContextWindows": {"context_length": 9, "context_overlap": 4}}


# Per example: shorter clips / fewer steps where a model is slow on CPU (the tiny Wan-Animate model's
# face motion encoder runs at its real size on 512x512 crops, every frame, every step).
TINY_EXAMPLE_SHAPES = {"animate_long_video_chunks": {"frames": 9, "steps": 1}}


def applies(api_file: Path, object_info: dict) -> bool:
    """An example is for the ComfyUI versions that have all its node types (the LoRA training example
    exists twice: SaveLoRA since 0.33, SaveLoRANode before)."""
    return example_applies(json.loads(api_file.read_text()), object_info)


def for_this_comfyui(prompt: dict, object_info: dict) -> dict:
    """An API example as this ComfyUI's frontend writes it: the inputs its nodes declare here.

    The examples carry the inputs of every tested version (0.3.64's SaveVideo ``codec``, 0.33's
    ``format.codec`` and CreateVideo ``bit_depth``); ComfyUI ignores the ones its node lacks.
    """
    out = {}
    for nid, node in prompt.items():
        names = declared_input_names(object_info[node["class_type"]], node["inputs"])
        out[nid] = {"class_type": node["class_type"],
                    "inputs": {k: v for k, v in node["inputs"].items() if k in names}}
    return out


def tiny_example(name: str) -> dict:
    prompt = json.loads((EXAMPLES / "api" / f"{name}.json").read_text())
    shape = {"frames": FRAMES, "steps": 3} | TINY_EXAMPLE_SHAPES.get(name, {})
    prompt = tiny_graph(prompt, ZERO_COND, size=SIZE, clip_vision=FAKE_CLIP_VISION, fake_clip=FAKE_CLIP, **shape)
    for node in prompt.values():
        node["inputs"].update(TINY_NODE_OVERRIDES.get(node["class_type"], {}))
        for key, value in TINY_OVERRIDES.items():
            if isinstance(node["inputs"].get(key), str):
                node["inputs"][key] = value
    return prompt


def provide_media(prompt: dict, input_dir: Path) -> None:
    """Write every image or video file the prompt loads into ComfyUI's input folder."""
    input_dir.mkdir(parents=True, exist_ok=True)
    images, mask = fast_motion_clip(FRAMES, SIZE, SIZE)
    for node in prompt.values():
        if node["class_type"] == "WanMaskTrainingSet":
            provide_training_set(node["inputs"], input_dir)
        name = node["inputs"].get("image") if node["class_type"] == "LoadImage" else \
            node["inputs"].get("file") if node["class_type"] == "LoadVideo" else None
        if not isinstance(name, str) or (input_dir / name).exists():
            continue
        if node["class_type"] == "LoadImage":
            g = torch.Generator().manual_seed(len(name))
            Image.fromarray((torch.rand(SIZE, SIZE, 3, generator=g) * 255).byte().numpy()).save(input_dir / name)
        elif "mask" in name:
            write_clip(input_dir / name, mask.unsqueeze(-1).expand(-1, -1, -1, 3))
        else:
            write_clip(input_dir / name, images)


def provide_training_set(inputs: dict, input_dir: Path) -> None:
    """The tiny generated set (tiny_dataset.py) at the folders a WanMaskTrainingSet node names: its items
    in ``folder``, its masks in ``mask_folder`` (items with alpha keep it)."""
    folder = input_dir / inputs["folder"]
    if folder.exists():
        return
    written = write_tiny_dataset(input_dir / "_tiny_set_source")
    shutil.copytree(written["folder"], folder, ignore=shutil.ignore_patterns("weighted_masks"))
    if inputs.get("mask_folder") not in (None, "(none)"):
        shutil.copytree(written["mask_folder"], input_dir / inputs["mask_folder"], dirs_exist_ok=True)
    shutil.rmtree(input_dir / "_tiny_set_source")


def write_tiny_example(name: str, server, tmp_path: Path) -> Path:
    prompt = tiny_example(name)
    provide_media(prompt, server.base / "input")
    path = tmp_path / f"{name}_tiny.json"
    path.write_text(json.dumps(prompt))
    return path
