"""The names of the example workflows: the title a user picks in ComfyUI's template browser, and the
machine name of its API-format twin.

ComfyUI lists a pack's templates by file name (``GET /api/workflow_templates``: the file names in
``example_workflows/`` without ``.json``), and its frontend shows that name as the card's title (and,
before frontend 1.28, again as its description, with ``-`` and ``_`` turned into spaces); it asks
for the card's picture at ``/api/workflow_templates/<pack folder>/<name>.jpg``. So the UI-format
example is ``example_workflows/<title>.json`` with its thumbnail ``<title>.jpg`` beside it, and its
API-format twin, which shells, batch files and tests name, keeps a plain name:
``example_workflows/api/<api name>.json``.
"""
from __future__ import annotations

from pathlib import Path

from .locate import REPO

EXAMPLES = REPO / "example_workflows"
# API name -> title. A title says what the example does in a few words (the card shows one line, about
# 35 characters); no "-" or "_" (older frontends show them as spaces in the description).
TITLES = {
    "t2v_fast_motion_inpaint": "T2V inpaint, fast motion",
    "t2v_inpaint_mask_subgraph": "T2V inpaint, mask as a subgraph",
    "vace_inpainting": "VACE inpaint with a reference",
    "i2v_first_last_keyframes": "I2V first, middle and last frame",
    "i2v_keyframes_context_windows": "I2V long clip in context windows",
    "long_clip_chunked_vae_decode": "Long clip, chunked VAE decode",
    "animate_long_video_chunks": "Wan Animate, long video in chunks",
    "masked_lora_training": "Masked LoRA training",
    "masked_lora_training_comfyui_0_3": "Masked LoRA training, ComfyUI 0.3",
    "masked_lora_training_dataset": "Masked LoRA from a folder",
    "masked_lora_training_dataset_comfyui_0_3": "Masked LoRA from a folder, ComfyUI 0.3",
}


def ui_example(api_name: str) -> Path:
    """The UI-format example (the template) of the API-format example ``api_name``."""
    if api_name not in TITLES:
        raise KeyError(f"example {api_name!r} has no title: add it to TITLES in {__name__} "
                       f"(the template browser shows the title as the example's name)")
    return EXAMPLES / f"{TITLES[api_name]}.json"


def api_twin(ui_file: Path) -> Path:
    """The API-format twin of a UI-format example (a template file)."""
    names = {title: api for api, title in TITLES.items()}
    stem = Path(ui_file).stem
    if stem not in names:
        raise KeyError(f"template {Path(ui_file).name!r} has no API twin: add its title to TITLES in {__name__}")
    return EXAMPLES / "api" / f"{names[stem]}.json"


def thumbnail(ui_file: Path) -> Path:
    """The picture the template browser shows for a UI-format example."""
    return Path(ui_file).with_suffix(".jpg")
