"""WanMaskTrainingSet: a masked LoRA training set from a folder of clips and images, each with its
own weighted mask (alpha channel, or a mask file by basename), encoded once and cached.

Outputs one LATENT and one conditioning list per bucket, as native ResolutionBucket does, and each
bucket's LATENT carries its items' loss weights, so WanMaskTrainLoRA (and native Train LoRA in
bucket mode, without the weights) takes them as they are.
"""
from __future__ import annotations

import logging
from pathlib import Path

from comfy_api.latest import io

from . import comfy_compat as compat
from .inputs import LENGTH_TIP, category, check_choices, first_error, expert, schema
from ..masking import conventions
from ..masking.geometry import WAN21, WAN22
from ..masking.training.dataset_build import FRAME_SELECTIONS, SHORT_CLIPS, SetSettings, build_training_set, \
    cache_settings
from ..masking.training.dataset_cache import TrainingSetCache, fingerprint_state_dict
from ..masking.training.dataset_files import pair_training_folder

log = logging.getLogger("WanMasking")
NONE = "(none)"


def _folders() -> list[str]:
    return compat.input_subfolders()


def resolve_input_folder(name: str, input_name: str) -> Path | None:
    """An input subfolder by its listed name; None for "(none)"; ValueError when it is not there or
    leaves the input folder."""
    if name in (None, "", NONE):
        return None
    root = Path(compat.input_directory()).resolve()
    path = (root / name).resolve()
    if root not in path.parents:
        raise ValueError(f"{input_name}: {name!r} is outside ComfyUI's input folder ({root}). Fix: pick a subfolder "
                         "of the input folder.")
    if not path.is_dir():
        raise ValueError(f"{input_name}: no folder {name!r} in ComfyUI's input folder ({root}). Fix: put your clips "
                         "and images in input/<name>/ and press R in the browser to refresh the list.")
    return path


class WanMaskTrainingSet(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        folders = _folders()
        return schema(
            node_id="WanMaskTrainingSet",
            display_name="Wan Mask Training Set (folder + masks)",
            category=category("training"),
            search_aliases=["masked dataset", "training dataset", "weighted masks", "lora dataset", "alpha mask"],
            description="A masked LoRA training set from a folder of clips and images in ComfyUI's input folder. "
                        "Each item gets its own loss-weight mask: the image's alpha channel (alpha_mask), else a "
                        "file with the same basename in mask_folder (an image = one mask for every frame, a video = "
                        "one mask per frame), else full weight (or an error with require_mask). Captions come from "
                        "<name>.txt. Frames are selected (1+4k), resized and cropped the same way on clip and mask, "
                        "encoded once and cached with the masks on the latent grid; a rerun loads the cache. "
                        f"Masks: {conventions.LOSS_WEIGHT}. Connect latents and positive to WanMaskTrainLoRA with "
                        "bucket_mode on.",
            inputs=[
                io.Combo.Input("folder", options=folders, tooltip=
                    "Subfolder of ComfyUI's input folder with the clips (.mp4 .avi .mov .webm .mkv .flv) and images "
                    "(.png .jpg .webp ...); captions as <name>.txt beside them. Subfolders are not read."),
                io.Combo.Input("mask_folder", options=[NONE] + folders, default=NONE, tooltip=
                    "Input subfolder with the weighted masks, matched by basename (clip001.mp4 <-> clip001.png). "
                    "8-bit gray: face 255, body 128, hair 80, background 0. A mask video (same frame count as its "
                    "clip) gives a mask per frame. (none): alpha channels only."),
                io.Boolean.Input("alpha_mask", default=True, tooltip=
                    "Use an RGBA image's alpha channel as its mask (first in the fallback chain: alpha, then "
                    "mask_folder, then full weight). The RGB values are used as they are, never composited."),
                io.Boolean.Input("require_mask", default=False, tooltip=
                    "On: an item with neither alpha nor a mask file is an error, before anything is encoded. "
                    "Off: it trains at full weight 1.0 (the report says which)."),
                io.Vae.Input("vae", tooltip="The Wan VAE of the model to train (Wan 2.1 or Wan 2.2 5B)."),
                io.Clip.Input("clip", tooltip="The text encoder for the captions (umt5 for Wan)."),
                io.Int.Input("width", default=832, min=16, max=8192, step=16, tooltip=
                    "Target width in pixels. With resolution_buckets each item keeps its aspect ratio at about "
                    "width x height pixels; without, every item is center-cropped to width x height."),
                io.Int.Input("height", default=480, min=16, max=8192, step=16, tooltip="Target height in pixels."),
                io.Boolean.Input("resolution_buckets", default=True, tooltip=
                    "On: one bucket per aspect ratio (sides multiples of 16, or 32 for the Wan 2.2 5B VAE), so "
                    "items of several sizes train together without distortion. Off: one size for all."),
                io.Int.Input("length", default=81, min=1, max=8192, step=4, tooltip=
                    LENGTH_TIP + " Frames taken from each clip; images are 1 frame. Clips shorter than this follow "
                    "short_clips."),
                io.Combo.Input("frame_selection", options=list(FRAME_SELECTIONS), default="contiguous", tooltip=
                    "contiguous: `length` consecutive frames from a seeded start; spread: evenly over the clip. "
                    "The mask video gives exactly the same frames."),
                io.Combo.Input("short_clips", options=list(SHORT_CLIPS), default="trim", tooltip=
                    "A clip shorter than length: trim = use its longest 1+4k frames (warned); error = refuse it."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, tooltip=
                    "Seeds the contiguous start of each clip."),
                io.Boolean.Input("cache", default=True, tooltip=
                    "Keep latents, conditionings and latent-grid weights in the datasets folder "
                    "(wanmask_cache/<folder>) as safetensors; a rerun encodes only new or changed items."),
                expert(io.Combo.Input("subject_folder", options=[NONE] + folders, default=NONE, tooltip=
                    "Group photos: binary instance masks of your subject by basename (white = subject). Weights "
                    "outside the subject become 0, so bystanders teach nothing. Items without one keep their weights.")),
            ],
            outputs=[
                io.Latent.Output(display_name="latents", is_output_list=True, tooltip=
                    "One LATENT per bucket, carrying its items' loss weights (for WanMaskTrainLoRA)."),
                io.Conditioning.Output(display_name="positive", is_output_list=True, tooltip=
                    "One conditioning list per bucket, one entry per item (its caption)."),
                io.String.Output(display_name="report", tooltip=
                    "Which mask each item got (alpha / file / none), sizes, frames, buckets, cache hits."),
            ],
            is_experimental=True,
        )

    @classmethod
    def validate_inputs(cls, frame_selection=None, short_clips=None):
        return first_error(lambda: check_choices(cls, frame_selection=frame_selection, short_clips=short_clips))

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        # The folder's files can change between runs with the same widget values: always re-check
        # (the cache makes an unchanged rerun cheap).
        return float("nan")

    @classmethod
    def execute(cls, folder, mask_folder, alpha_mask, require_mask, vae, clip, width, height, resolution_buckets,
                length, frame_selection, short_clips, seed, cache, subject_folder=NONE) -> io.NodeOutput:
        items_dir = resolve_input_folder(folder, "folder")
        if items_dir is None:
            raise ValueError("folder: pick the input subfolder that holds the clips and images.")
        masks_dir = resolve_input_folder(mask_folder, "mask_folder")
        subjects_dir = resolve_input_folder(subject_folder, "subject_folder")
        report = pair_training_folder(items_dir, masks_dir, alpha_mask=alpha_mask, require_mask=require_mask,
                                      subject_folder=subjects_dir)
        for warning in report.warnings:
            log.warning("WanMaskTrainingSet: %s", warning)
        settings = SetSettings(width=width, height=height, buckets=resolution_buckets, length=length,
                               frame_selection=frame_selection, short_clips=short_clips, seed=seed)
        geometry = WAN22 if compat.vae_spatial_stride(vae) == WAN22.spatial_stride else WAN21
        store = None
        if cache:
            pairing = {"alpha_mask": alpha_mask, "mask_folder": mask_folder, "subject_folder": subject_folder}
            key = cache_settings(settings, geometry, fingerprint_state_dict(compat.vae_state_dict(vae)), pairing)
            store = TrainingSetCache(Path(compat.dataset_cache_root()) / "wanmask_cache" / folder, key)
        bar = compat.progress_bar(len(report.items))

        def on_item(index, name):
            bar.update(1)
            compat.throw_if_interrupted()

        built = build_training_set(
            report, settings, geometry, encode_pixels=vae.encode,
            encode_caption=lambda text: compat.encode_caption(clip, text), cache=store,
            caption_encoder_id=fingerprint_state_dict(compat.clip_state_dict(clip)) if cache else "", on_item=on_item)
        text = report.text() + "\n" + built.text()
        log.info("WanMaskTrainingSet %s:\n%s", folder, text)
        latents, conds = built.latent_outputs()
        return io.NodeOutput(latents, conds, text)
