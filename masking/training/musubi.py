"""Hand a paired masked training set to musubi-tuner / blissful-tuner, in the layout its guide documents.

Written under ``out_dir``::

    <name><ext>                 each item, copied unchanged (bit-exact); method "alpha": images with a
                                mask become <name>.png RGBA (exact RGB, the mask as alpha, never composited)
    <name>.txt                  its caption (copied; an empty file when it had none)
    weighted_masks/<name>.png   8-bit gray masks, round(m * 255) (video: one mask for all frames)
    weighted_masks/<name>.mkv   a per-frame video mask, FFV1 gray8 (lossless), video_masks="per_frame"
    dataset.toml                [general] + one [[datasets]] for the images, one for the videos

A subject mask (group photos) is multiplied into the exported mask, as the guide's
``apply_instance_mask_to_weighted_mask.py`` does, since musubi has no subject masks of its own.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .dataset_files import DatasetItem, aspect_mismatch
from .dataset_media import image_arrays, read_masks, write_mask_video

log = logging.getLogger("WanMasking")

METHODS = ("mask_folder", "alpha")
VIDEO_MASK_MODES = ("per_frame", "static")
MASK_FOLDER = "weighted_masks"


def check_export(items: list[DatasetItem], out_dir: Path, method: str, video_masks: str) -> None:
    """Raise before anything is written: bad options, an out_dir in use, masks that do not fit."""
    if method not in METHODS:
        raise ValueError(f"musubi export: method '{method}' is not one of {METHODS}. Fix: 'mask_folder' writes "
                         f"{MASK_FOLDER}/<name>.png, 'alpha' puts image masks into RGBA PNGs.")
    if video_masks not in VIDEO_MASK_MODES:
        raise ValueError(f"musubi export: video_masks '{video_masks}' is not one of {VIDEO_MASK_MODES}. Fix: "
                         f"'per_frame' writes FFV1 .mkv masks, 'static' one PNG per video (the max over frames).")
    if not items:
        raise ValueError("musubi export: no items to export. Fix: pair a training folder first.")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"musubi export: {out_dir} exists and is not an empty folder; files there would mix "
                         f"with the export. Fix: give a new or empty folder.")
    names = [item.name for item in items]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"musubi export: items share the name(s) {', '.join(twice)}; musubi pairs by basename. "
                         f"Fix: rename them apart.")
    problems = []
    for item in items:
        for what, path, info in (("mask", item.mask_path, item.mask_info), ("subject mask", item.subject_path,
                                                                           item.subject_info)):
            if info is not None and aspect_mismatch(item.info, info):
                problems.append(f"{path}: the {what} is {info.width}x{info.height} but {item.path.name} is "
                                f"{item.info.width}x{item.info.height}, aspect ratios more than 1% apart. "
                                f"Fix: make the {what} {item.info.width}x{item.info.height}.")
    if problems:
        raise ValueError("musubi export: " + " ".join(problems))


def export_mask(item: DatasetItem) -> tuple[torch.Tensor | None, bool]:
    """The item's exported mask [F, H, W] in [0, 1] (mask x subject; None when it has neither), and whether it
    is per-frame (from a mask or subject video)."""
    frames = list(range(item.info.frames))
    if item.mask_source == "none" and item.subject_path is None:
        return None, False
    mask, subject = read_masks(item, frames)
    if subject is not None:
        mask = subject if mask is None else mask * subject
    per_frame = any(info is not None and info.kind == "video" for info in (item.mask_info, item.subject_info))
    return mask, per_frame


def levels(mask: torch.Tensor) -> np.ndarray:
    """[..., H, W] in [0, 1] -> uint8 round(m * 255)."""
    return (mask.float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).numpy()


def write_gray_png(path: Path, mask: torch.Tensor) -> None:
    Image.fromarray(levels(mask)).save(path)


def static_mask(item: DatasetItem, mask: torch.Tensor) -> torch.Tensor:
    """One mask for a whole video: the per-pixel max over frames, with a warning naming the frames that differ."""
    differ = [i for i in range(1, mask.shape[0]) if not torch.equal(mask[i], mask[0])]
    if differ:
        log.warning("musubi export: %s has a per-frame mask but musubi uses one mask per video; wrote the per-pixel "
                    "max over its %d frames (frames %s differ from frame 0).", item.name, mask.shape[0], differ)
    return mask.amax(dim=0)


def write_alpha_png(item: DatasetItem, mask: torch.Tensor | None, path: Path) -> None:
    """An RGBA PNG with the item's exact RGB and the mask as alpha (RGB only when ``mask`` is None)."""
    rgb, _, scale = image_arrays(item.path)
    if scale != 255:
        log.warning("musubi export: %s is a 16-bit image; the RGBA PNG holds it as 8-bit.", item.path)
        rgb = np.round(rgb.astype(np.float64) * (255.0 / scale)).astype(np.uint8)
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    array = rgb if mask is None else np.concatenate([rgb, levels(mask[0])[..., None]], axis=-1)
    Image.fromarray(array).save(path)


def toml_string(value: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML ones)."""
    return json.dumps(value, ensure_ascii=False)


def dataset_toml(items: list[DatasetItem], out_dir: Path, method: str, resolution: tuple[int, int]) -> str:
    """musubi's dataset config for the export: image and video datasets over the same folder (its loaders
    glob by extension), separate cache directories (musubi requires them distinct)."""
    folder, masks = toml_string(out_dir.resolve().as_posix()), toml_string((out_dir / MASK_FOLDER).resolve().as_posix())
    cache = out_dir.resolve() / "cache"
    lines = ["# Written by ComfyUI-WanMasking (musubi export). cache_directory and resolution are placeholders:",
             "# set them for your run, and use a fresh cache_directory after changing masks.",
             "[general]", 'caption_extension = ".txt"', f"resolution = [{resolution[0]}, {resolution[1]}]",
             "batch_size = 1", "enable_bucket = true", "bucket_no_upscale = false", ""]
    if any(item.info.kind == "image" for item in items):
        lines += ["[[datasets]]", f"image_directory = {folder}",
                  f"cache_directory = {toml_string((cache / 'images').as_posix())}"]
        lines += ["alpha_mask = true"] if method == "alpha" else [f"mask_directory = {masks}"]
        lines.append("")
    videos = [item.info.frames for item in items if item.info.kind == "video"]
    if videos:
        frames = 1 + 4 * ((min(videos) - 1) // 4)  # every clip holds this many 1+4k frames
        lines += ["[[datasets]]", f"video_directory = {folder}",
                  f"cache_directory = {toml_string((cache / 'videos').as_posix())}",
                  f"mask_directory = {masks}", f"target_frames = [{frames}]", 'frame_extraction = "head"', ""]
    return "\n".join(lines)


def export_musubi(items: list[DatasetItem], out_dir: Path, *, method: str = "mask_folder",
                  video_masks: str = "per_frame", resolution: tuple[int, int] | None = None) -> Path:
    """Write a paired set in musubi-tuner / blissful-tuner's masked-training layout (see the module docstring).

    Args:
        items: from :func:`pair_training_folder` (``report.items``).
        out_dir: a new or empty folder.
        method: "mask_folder" (masks in weighted_masks/, ``mask_directory``) or "alpha" (image masks
            as the alpha of RGBA PNGs, ``alpha_mask = true``; videos still use weighted_masks/).
        video_masks: for a per-frame video mask, "per_frame" (FFV1 gray .mkv, lossless) or "static"
            (one PNG, the per-pixel max over frames, with a warning: musubi uses one mask per video).
        resolution: (W, H) for dataset.toml; None = the largest item size, rounded up to 16.

    Returns:
        the path of dataset.toml.
    """
    out_dir = Path(out_dir)
    check_export(items, out_dir, method, video_masks)
    (out_dir / MASK_FOLDER).mkdir(parents=True, exist_ok=True)
    empty_captions, per_frame_written = [], []
    for item in items:
        mask, per_frame = export_mask(item)
        if item.info.kind == "image" and method == "alpha":
            if mask is not None or item.info.has_alpha:
                if mask is None:
                    log.warning("musubi export: %s has alpha but no mask (alpha_mask was off); written as RGB PNG "
                                "so musubi's alpha_mask does not read its alpha as a mask.", item.path.name)
                write_alpha_png(item, mask, out_dir / f"{item.name}.png")
            else:
                shutil.copyfile(item.path, out_dir / item.path.name)
        else:
            shutil.copyfile(item.path, out_dir / item.path.name)
            if mask is not None and per_frame and video_masks == "per_frame":
                write_mask_video(out_dir / MASK_FOLDER / f"{item.name}.mkv", mask, item.info.fps)
                per_frame_written.append(item.name)
            elif mask is not None:
                write_gray_png(out_dir / MASK_FOLDER / f"{item.name}.png", static_mask(item, mask) if per_frame
                               else mask[0])
        if item.caption_path is not None:
            shutil.copyfile(item.caption_path, out_dir / f"{item.name}.txt")
        else:
            (out_dir / f"{item.name}.txt").write_text("", encoding="utf-8")
            empty_captions.append(item.name)
    if empty_captions:
        log.warning("musubi export: no caption for %s; wrote empty .txt files (musubi reads one per item).",
                    ", ".join(empty_captions))
    if per_frame_written:
        log.warning("musubi export: per-frame mask videos for %s (%s/<name>.mkv, FFV1). Stock musubi-tuner uses one "
                    "static mask per video; export with video_masks='static' for it.", ", ".join(per_frame_written),
                    MASK_FOLDER)
    if resolution is None:
        width = max(item.info.width for item in items)
        height = max(item.info.height for item in items)
        resolution = (-(-width // 16) * 16, -(-height // 16) * 16)
    toml = out_dir / "dataset.toml"
    toml.write_text(dataset_toml(items, out_dir, method, resolution), encoding="utf-8")
    return toml
