"""A training folder -> items paired with their masks, captions and subject masks (no pixels decoded).

The mask of an item follows the musubi / blissful-tuner guide's fallback chain ("Fallback Chain" in its
dataset configuration section)::

    alpha_mask and the image has alpha  -> "alpha"   (the alpha channel, exact: alpha / 255)
    else <mask_folder>/<name>.<any ext> -> "file"    (an image, or a per-frame mask video for a clip)
    else                                -> "none"    (full weight, or an error with require_mask)

Items are the image and video files directly in the folder (not recursive, so a mask folder inside it
is skipped); ``<name>.txt`` beside an item is its caption, "" when absent (as ComfyUI's native dataset
loaders). Everything wrong is found here, from the headers, before any pixel is decoded, and reported
at once: one ``ValueError`` listing every problem with its file and its fix.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import av
from PIL import Image, UnidentifiedImageError

log = logging.getLogger("WanMasking")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".webm", ".mkv", ".flv")  # native LoadVideoDataSetFromFolder's list
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
EXIF_ORIENTATION = 0x0112
EXIF_SWAPS_AXES = (5, 6, 7, 8)  # transposed / rotated by 90 or 270 degrees: width and height swap


@dataclass(frozen=True)
class MediaInfo:
    """What the header of an image or video says.

    Attributes:
        kind: "image" or "video".
        width, height: pixels (images: after the EXIF orientation, as the pixels are read).
        frames: 1 for an image; the number of video packets (= frames) for a video.
        has_alpha: the image has an alpha channel (RGBA, LA, or a palette with transparency).
        fps: the video's average frame rate, None for images.
    """

    kind: str
    width: int
    height: int
    frames: int
    has_alpha: bool
    fps: float | None


@dataclass(frozen=True)
class DatasetItem:
    """One training item: an image (a 1-frame clip) or a video, with what pairs with it."""

    name: str
    path: Path
    info: MediaInfo
    caption: str
    caption_path: Path | None
    mask_source: str
    mask_path: Path | None
    mask_info: MediaInfo | None
    subject_path: Path | None
    subject_info: MediaInfo | None = None


@dataclass
class PairingReport:
    """The outcome of :func:`pair_training_folder`: items sorted by name, what matched nothing, warnings."""

    items: list[DatasetItem]
    orphan_masks: list[Path] = field(default_factory=list)
    orphan_subjects: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Items per mask source: {"alpha": a, "file": f, "none": n}."""
        out = {"alpha": 0, "file": 0, "none": 0}
        for item in self.items:
            out[item.mask_source] += 1
        return out

    def text(self) -> str:
        """One human-readable report of the pairing."""
        images = sum(item.info.kind == "image" for item in self.items)
        counts = self.counts()
        lines = [f"{len(self.items)} items ({images} images, {len(self.items) - images} videos); masks: "
                 f"{counts['alpha']} alpha, {counts['file']} file, {counts['none']} none"]
        for item in self.items:
            info = item.info
            mask = item.mask_source
            if item.mask_source == "file":
                mask += f" {item.mask_path.name}" + (" (per-frame video)" if item.mask_info.kind == "video" else "")
            elif item.mask_source == "none":
                mask += " (full weight)"
            subject = f", subject {item.subject_path.name}" if item.subject_path else ""
            lines.append(f"  {item.name}: {info.kind} {info.width}x{info.height}, {info.frames} frame(s), "
                         f"mask {mask}, caption {'yes' if item.caption else 'no'}{subject}")
        if any(item.subject_path for item in self.items):
            keep = [item.name for item in self.items if item.subject_path is None]
            if keep:
                lines.append(f"  no subject mask (weights kept as they are): {', '.join(keep)}")
        for title, paths in (("orphan masks (match no item, unused)", self.orphan_masks),
                             ("orphan subject masks (match no item, unused)", self.orphan_subjects)):
            if paths:
                lines.append(f"{title}: {', '.join(p.name for p in paths)}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


# ---- probing --------------------------------------------------------------------------------

def media_kind(path: Path) -> str | None:
    """"image" / "video" by the file's extension (case-insensitive), None for other files."""
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_EXTENSIONS else "video" if suffix in VIDEO_EXTENSIONS else None


def image_has_alpha(image: Image.Image) -> bool:
    """True for RGBA / LA / PA images and palette or gray images with a transparency entry."""
    return image.mode in ALPHA_MODES or (image.mode in ("P", "L", "RGB") and "transparency" in image.info)


def probe_media(path: Path) -> MediaInfo:
    """Read the header of an image or video (no pixels decoded; videos are demuxed to count frames).

    Raises:
        ValueError: the file is not an image/video by extension, or cannot be read.
    """
    path = Path(path)
    kind = media_kind(path)
    if kind is None:
        raise ValueError(f"{path}: not an image or video by its extension. Images: {', '.join(IMAGE_EXTENSIONS)}; "
                         f"videos: {', '.join(VIDEO_EXTENSIONS)}. Fix: convert it to one of these.")
    try:
        if kind == "image":
            with Image.open(path) as image:
                width, height = image.size
                if image.getexif().get(EXIF_ORIENTATION, 1) in EXIF_SWAPS_AXES:
                    width, height = height, width
                if getattr(image, "n_frames", 1) > 1:
                    log.warning("%s: has %d frames (animated / multi-page); only the first is used.",
                                path, image.n_frames)
                return MediaInfo("image", width, height, 1, image_has_alpha(image), None)
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError("it has no video stream")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            rate = stream.average_rate or stream.guessed_rate
            frames = sum(1 for packet in container.demux(stream) if packet.size)  # the flush packet is empty
    except (OSError, UnidentifiedImageError, av.error.FFmpegError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{path}: unreadable as {'an image' if kind == 'image' else 'a video'} ({exc}). "
                         f"Fix: re-save or re-encode it (PNG for images and masks, MP4 for clips, FFV1 .mkv for "
                         f"mask videos), or move it out of the folder.") from exc
    if frames < 1 or width < 1 or height < 1:
        raise ValueError(f"{path}: unreadable as a video ({frames} frames of {width}x{height} found). "
                         f"Fix: re-encode it, or move it out of the folder.")
    return MediaInfo("video", width, height, frames, False, float(rate) if rate else None)


# ---- pairing --------------------------------------------------------------------------------

def aspect_mismatch(info: MediaInfo, other: MediaInfo) -> bool:
    """True when ``other``'s aspect ratio differs from ``info``'s by more than 1% (the guide's rule)."""
    item_aspect = info.width / info.height
    return abs(other.width / other.height - item_aspect) > 0.01 * item_aspect


def media_by_name(folder: Path, what: str, errors: list[str]) -> dict[str, Path]:
    """Image and video files in ``folder`` by basename; two files with one basename are an error."""
    found: dict[str, list[Path]] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and media_kind(p)):
        found.setdefault(path.stem, []).append(path)
    for name, paths in found.items():
        if len(paths) > 1:
            errors.append(f"{folder}: {len(paths)} {what} files share the basename '{name}' "
                          f"({', '.join(p.name for p in paths)}), so which one pairs is ambiguous. "
                          f"Fix: rename or remove all but one.")
    return {name: paths[0] for name, paths in found.items()}


def check_companion(item_path: Path, info: MediaInfo, path: Path, what: str, errors: list[str]) -> MediaInfo | None:
    """Probe a mask / subject file of an item and check it fits the item; problems go to ``errors``."""
    try:
        other = probe_media(path)
    except ValueError as exc:
        errors.append(str(exc))
        return None
    size = f"{other.width}x{other.height}"
    if other.kind == "video" and info.kind == "image":
        errors.append(f"{path}: a {what} video ({other.frames} frames) for the image {item_path.name}. "
                      f"Fix: give an image {what} (e.g. {path.stem}.png).")
    elif other.kind == "video" and other.frames != info.frames:
        errors.append(f"{path}: the {what} video has {other.frames} frames but the clip {item_path.name} has "
                      f"{info.frames}; frame i of the {what} must weight frame i of the clip. Fix: re-export the "
                      f"{what} video with {info.frames} frames, or give one image {what} for every frame.")
    elif aspect_mismatch(info, other):
        errors.append(f"{path}: the {what} is {size} (aspect {other.width / other.height:.4f}) but "
                      f"{item_path.name} is {info.width}x{info.height} (aspect {info.width / info.height:.4f}); "
                      f"more than 1% apart, so it would be stretched onto the wrong pixels. "
                      f"Fix: make the {what} {info.width}x{info.height} (or the same aspect ratio).")
    else:
        return other
    return None


def distinct_folder(folder: Path, other: Path | None, what: str, errors: list[str]) -> Path | None:
    """``other`` if it is an existing folder other than the item folder; problems go to ``errors``."""
    if other is None:
        return None
    other = Path(other)
    if not other.is_dir():
        errors.append(f"{what}: {other} is not a folder. Fix: give the folder holding the {what} files by "
                      f"basename (e.g. {folder / 'weighted_masks'}), or leave it empty.")
        return None
    if other.resolve() == folder.resolve():
        errors.append(f"{what}: {other} is the item folder itself, so every item would be its own mask. "
                      f"Fix: put the masks in a subfolder (e.g. {folder / 'weighted_masks'}).")
        return None
    return other


def read_caption(path: Path, errors: list[str]) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(f"{path}: caption unreadable ({exc}). Fix: save it as UTF-8 text.")
        return ""


def pair_training_folder(folder: Path, mask_folder: Path | None = None, *, alpha_mask: bool = True,
                         require_mask: bool = False, subject_folder: Path | None = None) -> PairingReport:
    """Pair every item of a training folder with its caption, mask and subject mask.

    Args:
        folder: the items (images and videos, not recursive) and their ``<name>.txt`` captions.
        mask_folder: mask files by basename (any image or video extension); None = no mask files.
        alpha_mask: an image's alpha channel is its mask (first in the fallback chain).
        require_mask: an item with no mask is an error (else it trains at full weight, with a warning).
        subject_folder: binary instance masks by basename for group photos; an item without one keeps
            its weights.

    Returns:
        :class:`PairingReport` with the items sorted by name. Warnings are logged and kept in it.

    Raises:
        ValueError: listing every problem (empty or missing folder, unreadable files, duplicate basenames,
        aspect ratios more than 1% apart, a mask video for an image or with another frame count, items
        without a mask when ``require_mask``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"training folder: {folder} is not a folder. Fix: give the folder holding the images "
                         f"/ videos and their .txt captions.")
    errors: list[str] = []
    warnings: list[str] = []
    mask_folder = distinct_folder(folder, mask_folder, "mask folder", errors)
    subject_folder = distinct_folder(folder, subject_folder, "subject folder", errors)
    item_paths = media_by_name(folder, "item", errors)
    if not item_paths:
        raise ValueError(f"training folder {folder}: no images or videos found (not recursive). Images: "
                         f"{', '.join(IMAGE_EXTENSIONS)}; videos: {', '.join(VIDEO_EXTENSIONS)}. "
                         f"Fix: put the training items directly in this folder.")
    mask_paths = media_by_name(mask_folder, "mask", errors) if mask_folder else {}
    subject_paths = media_by_name(subject_folder, "subject", errors) if subject_folder else {}

    items, unmasked, alpha_ignored, alpha_over_file = [], [], [], []
    for name, path in sorted(item_paths.items()):
        try:
            info = probe_media(path)
        except ValueError as exc:
            errors.append(str(exc))
            continue
        caption_path = folder / f"{name}.txt"
        caption_path = caption_path if caption_path.is_file() else None
        caption = read_caption(caption_path, errors) if caption_path else ""
        source, mask_path, mask_info = "none", None, None
        if alpha_mask and info.has_alpha:
            source = "alpha"
            if name in mask_paths:
                alpha_over_file.append(mask_paths[name].name)
        elif name in mask_paths:
            source, mask_path = "file", mask_paths[name]
            mask_info = check_companion(path, info, mask_path, "mask", errors)
        else:
            unmasked.append(name)
        if info.has_alpha and not alpha_mask:
            alpha_ignored.append(name)
        subject_path = subject_paths.get(name)
        subject_info = check_companion(path, info, subject_path, "subject mask", errors) if subject_path else None
        items.append(DatasetItem(name, path, info, caption, caption_path, source, mask_path, mask_info,
                                 subject_path, subject_info))

    if unmasked and require_mask:
        errors.append(f"require_mask is on but {len(unmasked)} item(s) have no mask: {', '.join(unmasked)} "
                      f"(no alpha channel{' read' if alpha_mask else ' (alpha_mask is off)'}, no file with that "
                      f"basename in {mask_folder or 'the mask folder (none given)'}). Fix: add "
                      f"<name>.png masks there, use RGBA images with alpha_mask on, or turn require_mask off "
                      f"to train them at full weight.")
    if errors:
        raise ValueError(f"training folder {folder}: {len(errors)} problem(s):\n- " + "\n- ".join(errors))

    if unmasked:
        warnings.append(f"{len(unmasked)} item(s) have no mask (no alpha, no mask file) and train at full weight "
                        f"1.0: {', '.join(unmasked)}")
    if alpha_ignored:
        warnings.append(f"alpha_mask is off: the alpha channel of {', '.join(alpha_ignored)} is ignored "
                        f"(RGB used as is, never composited)")
    if alpha_over_file:
        warnings.append(f"alpha comes first in the fallback chain: mask file(s) {', '.join(alpha_over_file)} "
                        f"unused because their items have alpha (turn alpha_mask off to use the files)")
    names = set(item_paths)
    orphan_masks = [p for n, p in sorted(mask_paths.items()) if n not in names]
    orphan_subjects = [p for n, p in sorted(subject_paths.items()) if n not in names]
    for what, orphans in (("mask", orphan_masks), ("subject mask", orphan_subjects)):
        if orphans:
            warnings.append(f"{len(orphans)} {what} file(s) match no item and are unused: "
                            f"{', '.join(p.name for p in orphans)} (basenames must equal the item's)")
    stray = sorted(p.name for p in folder.iterdir() if p.is_file() and not media_kind(p)
                   and p.suffix.lower() != ".txt" and not p.name.startswith("."))
    if stray:
        warnings.append(f"{folder}: skipped file(s) that are not images or videos by extension: {', '.join(stray)}")
    for warning in warnings:
        log.warning("training folder %s: %s", folder, warning)
    return PairingReport(items, orphan_masks, orphan_subjects, warnings)
