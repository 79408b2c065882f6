"""WanMaskTrainingSet: a masked LoRA training set from a folder of clips and images, each with its
own weighted mask (alpha channel, or a mask file by basename), encoded once and cached.
WanMaskSaveMusubiDataset: the same paired folder written in musubi-tuner / blissful-tuner's layout.

Outputs one LATENT and one conditioning list per bucket, as native ResolutionBucket does, and each
bucket's LATENT carries its items' loss weights, so WanMaskTrainLoRA (and native Train LoRA in
bucket mode, without the weights) takes them as they are.
"""
from __future__ import annotations

import logging
from pathlib import Path

from comfy_api.latest import io

from . import comfy_compat as compat
from .inputs import LENGTH_TIP, MAX_RES, category, check_choices, check_pixel_length, expert, first_error, schema
from ..masking import conventions
from ..masking.geometry import WAN21, WAN22
from ..masking.training.dataset_build import FRAME_SELECTIONS, SHORT_CLIPS, SetSettings, build_training_set, \
    cache_settings
from ..masking.training.dataset_cache import TrainingSetCache, fingerprint_state_dict
from ..masking.training.dataset_files import pair_training_folder
from ..masking.training.musubi import METHODS, VIDEO_MASK_MODES, export_musubi

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


def pairing_inputs(folders: list[str]) -> list[io.Input]:
    """folder, mask_folder, alpha_mask, require_mask: how a folder's items are paired with their masks
    (the same for the training set and the musubi export)."""
    return [
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
    ]


def subject_folder_input(folders: list[str]) -> io.Input:
    """subject_folder (expert, last): group photos' instance masks by basename."""
    return expert(io.Combo.Input("subject_folder", options=[NONE] + folders, default=NONE, tooltip=
        "Group photos: binary instance masks of your subject by basename (white = subject). Weights outside "
        "the subject become 0, so bystanders teach nothing (the musubi export multiplies them into the masks). "
        "Items without one keep their weights."))


def pair_input_folders(who: str, folder: str, mask_folder: str, alpha_mask: bool, require_mask: bool,
                       subject_folder: str):
    """The pairing of an input subfolder's items with their masks (errors raised before any work; the
    pairing logs its own warnings once). ``who`` names the node in the folder errors."""
    items_dir = resolve_input_folder(folder, "folder")
    if items_dir is None:
        raise ValueError(f"{who}: folder: pick the input subfolder that holds the clips and images.")
    report = pair_training_folder(items_dir, resolve_input_folder(mask_folder, "mask_folder"), alpha_mask=alpha_mask,
                                  require_mask=require_mask,
                                  subject_folder=resolve_input_folder(subject_folder, "subject_folder"))
    return report


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
                *pairing_inputs(folders),
                io.Vae.Input("vae", tooltip="The Wan VAE of the model to train (Wan 2.1 or Wan 2.2 5B)."),
                io.Clip.Input("clip", tooltip="The text encoder for the captions (umt5 for Wan)."),
                io.Int.Input("width", default=832, min=16, max=8192, step=16, tooltip=
                    "Target width in pixels. With resolution_buckets each item keeps its aspect ratio at about "
                    "width x height pixels; without, every item is center-cropped to width x height."),
                io.Int.Input("height", default=480, min=16, max=8192, step=16, tooltip="Target height in pixels."),
                io.Boolean.Input("resolution_buckets", default=True, tooltip=
                    "On: one bucket per aspect ratio (sides multiples of 16, or 32 for the Wan 2.2 5B VAE), so "
                    "items of several sizes train together without distortion. Off: one size for all."),
                io.Int.Input("length", default=81, min=1, max=MAX_RES, step=4, tooltip=
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
                subject_folder_input(folders),
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
    def validate_inputs(cls, length=None, frame_selection=None, short_clips=None):
        return first_error(lambda: check_pixel_length(length),
                           lambda: check_choices(cls, frame_selection=frame_selection, short_clips=short_clips))

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        # The folder's files can change between runs with the same widget values: always re-check
        # (the cache makes an unchanged rerun cheap).
        return float("nan")

    @classmethod
    def execute(cls, folder, mask_folder, alpha_mask, require_mask, vae, clip, width, height, resolution_buckets,
                length, frame_selection, short_clips, seed, cache, subject_folder=NONE) -> io.NodeOutput:
        report = pair_input_folders("WanMaskTrainingSet", folder, mask_folder, alpha_mask, require_mask,
                                    subject_folder)
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


class WanMaskSaveMusubiDataset(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        folders = _folders()
        return schema(
            node_id="WanMaskSaveMusubiDataset",
            display_name="Wan Mask Save Dataset (musubi-tuner layout)",
            category=category("training"),
            search_aliases=["musubi", "blissful tuner", "export dataset", "weighted_masks", "dataset toml"],
            description="Writes a paired masked set (the same pairing as WanMaskTrainingSet) into ComfyUI's output "
                        "folder in musubi-tuner / blissful-tuner's layout: the items copied unchanged, captions, "
                        "weighted_masks/<name>.png (8-bit gray), or RGBA PNGs with the mask in alpha (the guide's "
                        "Method 2, exact RGB, never composited), and dataset.toml with mask_directory / alpha_mask "
                        "filled in. Aspect ratios more than 1% apart are refused. A subject mask is multiplied in.",
            inputs=[
                *pairing_inputs(folders),
                io.String.Input("output_folder", default="wanmask_musubi_set", tooltip=
                    "Subfolder of ComfyUI's output folder to write; it must be new or empty."),
                io.Combo.Input("method", options=list(METHODS), default="mask_folder", tooltip=
                    "mask_folder: masks in weighted_masks/ by basename (Method 1). alpha: images become RGBA PNGs "
                    "with the mask in alpha (Method 2); videos still use weighted_masks/."),
                io.Combo.Input("video_masks", options=list(VIDEO_MASK_MODES), default="per_frame", tooltip=
                    "A clip with a per-frame mask video: per_frame keeps it (FFV1 .mkv, this pack reads it; stock "
                    "musubi uses one mask per video), static writes one PNG (the per-pixel max over frames)."),
                subject_folder_input(folders),
            ],
            outputs=[io.String.Output(display_name="dataset_toml", tooltip="Path of the written dataset.toml.")],
            is_output_node=True,
            is_experimental=True,
        )

    @classmethod
    def validate_inputs(cls, method=None, video_masks=None):
        return first_error(lambda: check_choices(cls, method=method, video_masks=video_masks))

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        return float("nan")

    @classmethod
    def execute(cls, folder, mask_folder, alpha_mask, require_mask, output_folder, method, video_masks,
                subject_folder=NONE) -> io.NodeOutput:
        root = Path(compat.output_directory()).resolve()
        out_dir = (root / output_folder).resolve()
        if root not in out_dir.parents:
            raise ValueError(f"output_folder: {output_folder!r} leaves ComfyUI's output folder ({root}). Fix: give a "
                             "plain subfolder name such as 'my_character_set'.")
        report = pair_input_folders("WanMaskSaveMusubiDataset", folder, mask_folder, alpha_mask, require_mask,
                                    subject_folder)
        toml = export_musubi(report.items, out_dir, method=method, video_masks=video_masks)
        log.info("WanMaskSaveMusubiDataset: wrote %d items to %s\n%s", len(report.items), out_dir, report.text())
        return io.NodeOutput(str(toml), ui={"text": [f"{len(report.items)} items -> {toml}"]})
