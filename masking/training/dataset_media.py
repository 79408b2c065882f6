"""Pixels of a paired training item: its frames, its mask and its subject mask, exactly as stored.

Conventions: pixels [F, H, W, 3] float32 in [0, 1]; masks [F, H, W] float32 in [0, 1] (1 = full
training weight); F = len(indices). RGB is never composited against the alpha channel; an alpha mask
is alpha / 255 exactly; mask files are read as one channel ("L"; 16-bit gray scaled by 1/65535).
Videos are decoded with PyAV, only up to the last wanted frame.
"""
from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image, ImageOps

from .dataset_files import DatasetItem, MediaInfo, image_has_alpha, probe_media
from .weights import resize_weights

log = logging.getLogger("WanMasking")

SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def open_image(path: Path) -> Image.Image:
    """The image, loaded and turned upright by its EXIF orientation (as ComfyUI's loaders do)."""
    try:
        with Image.open(path) as image:
            image.load()
            return ImageOps.exif_transpose(image)
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{path}: unreadable image ({exc}). Fix: re-save it as PNG.") from exc


def sixteen_bit(image: Image.Image, path: Path) -> np.ndarray:
    """[H, W] integers 0..65535 of a 16-bit gray image ("I;16*" / "I" modes)."""
    values = np.asarray(image).astype(np.int64)
    if values.min() < 0 or values.max() > 65535:
        raise ValueError(f"{path}: a 32-bit integer image with values {values.min()}..{values.max()}, outside the "
                         f"16-bit range. Fix: save it as 8-bit or 16-bit gray PNG.")
    return values


def image_arrays(path: Path) -> tuple[np.ndarray, np.ndarray | None, int]:
    """The exact stored RGB [H, W, 3] and alpha [H, W] (None without alpha) of an image as integers, and
    their full scale (255, or 65535 for 16-bit gray). Alpha is never applied to the RGB."""
    image = open_image(path)
    if image.mode in SIXTEEN_BIT_MODES:
        gray = sixteen_bit(image, path)
        return np.repeat(gray[..., None], 3, axis=-1), None, 65535
    if image_has_alpha(image):
        rgba = np.asarray(image if image.mode == "RGBA" else image.convert("RGBA"))
        return rgba[..., :3], rgba[..., 3], 255
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    return rgb, None, 255


def gray_image(path: Path) -> torch.Tensor:
    """[H, W] float32 in [0, 1]: a mask image as one channel ("L"; 16-bit gray / 65535; float as is)."""
    image = open_image(path)
    if image.mode in SIXTEEN_BIT_MODES:
        return torch.from_numpy(sixteen_bit(image, path) / 65535.0).float()
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float32)
        if values.min() < 0.0 or values.max() > 1.0:
            raise ValueError(f"{path}: a float mask with values {values.min():.4g}..{values.max():.4g}, outside "
                             f"[0, 1]. Fix: save it as an 8-bit gray PNG (255 = full weight).")
        return torch.from_numpy(values.copy())
    return torch.from_numpy(np.asarray(image.convert("L")).astype(np.float32) / 255.0)


def video_frames(path: Path, indices: list[int], *, gray: bool, what: str = "clip") -> torch.Tensor:
    """Frames ``indices`` of a video, decoding only up to the last one.

    Returns:
        gray: [F, H, W] float32 in [0, 1] (8-bit / 255, >8-bit / 65535); else [F, H, W, 3] RGB in [0, 1].
    """
    wanted = set(indices)
    last, found, decoded = max(indices), {}, 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                decoded = i + 1
                if i in wanted:
                    if gray:
                        deep = frame.format.components[0].bits > 8
                        if i == 0 and not frame.format.name.startswith("gray"):
                            log.warning("%s: the %s video is %s, not gray; its luma is read (a lossy codec may "
                                        "shift mask levels). Fix: encode mask videos as FFV1 gray (.mkv).",
                                        path, what, frame.format.name)
                        values = frame.to_ndarray(format="gray16le" if deep else "gray")
                        found[i] = values.astype(np.float32) / (65535.0 if deep else 255.0)
                    else:
                        found[i] = frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0
                if i >= last:
                    break
    except (OSError, av.error.FFmpegError, IndexError) as exc:
        raise ValueError(f"{path}: the {what} video cannot be decoded ({exc}). Fix: re-encode it "
                         f"(MP4 for clips, FFV1 gray .mkv for mask videos).") from exc
    missing = sorted(wanted - set(found))
    if missing:
        raise ValueError(f"{path}: the {what} video decodes to only {decoded} frame(s) "
                         f"(its header counted more); frames {missing} are missing. Fix: re-encode the video "
                         f"(e.g. ffmpeg -i in -c:v libx264 out.mp4) so its frames decode.")
    return torch.from_numpy(np.stack([found[i] for i in indices]))


def check_indices(item: DatasetItem, indices: list[int]) -> list[int]:
    indices = [int(i) for i in indices]
    frames = item.info.frames
    if not indices or min(indices) < 0 or max(indices) >= frames:
        raise ValueError(f"{item.path}: frame indices {indices} do not fit its {frames} frame(s). "
                         f"Fix: choose frames with select_frames(total={frames}, ...).")
    return indices


def companion_frames(path: Path, info: MediaInfo, indices: list[int], what: str) -> torch.Tensor:
    """A mask / subject file's frames for ``indices``: [F, Hm, Wm]; an image repeats for every index."""
    if info.kind == "video":
        return video_frames(path, indices, gray=True, what=what)
    return gray_image(path).unsqueeze(0).expand(len(indices), -1, -1).contiguous()


def fit_size(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[F, Hm, Wm] -> [F, H, W] with ``resize_weights`` (area down / nearest up); unchanged when equal."""
    return mask if tuple(mask.shape[-2:]) == tuple(size) else resize_weights(mask, size)


def read_masks(item: DatasetItem, indices: list[int], alpha: np.ndarray | None = None
               ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The mask and subject mask of frames ``indices`` of an item, at the item's pixel size.

    Args:
        alpha: the item's alpha channel uint8 [H, W] when the caller decoded the image already.

    Returns:
        mask [F, H, W] in [0, 1] or None (source "none"); subject [F, H, W] in {0, 1} or None.
    """
    indices = check_indices(item, indices)
    size = (item.info.height, item.info.width)
    mask = None
    if item.mask_source == "alpha":
        if alpha is None:
            alpha = image_arrays(item.path)[1]
        if alpha is None:
            raise ValueError(f"{item.path}: paired with its alpha channel as mask, but the pixels have no alpha. "
                             f"Fix: pair the folder again (the file changed).")
        mask = torch.from_numpy(alpha.astype(np.float32) / 255.0).unsqueeze(0).expand(len(indices), -1, -1)
        mask = fit_size(mask, size).contiguous()
    elif item.mask_source == "file":
        info = item.mask_info or probe_media(item.mask_path)
        mask = fit_size(companion_frames(item.mask_path, info, indices, "mask"), size)
    subject = None
    if item.subject_path is not None:
        info = item.subject_info or probe_media(item.subject_path)
        subject = (fit_size(companion_frames(item.subject_path, info, indices, "subject mask"), size) >= 0.5).float()
    return mask, subject


def read_item(item: DatasetItem, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Read frames ``indices`` of an item, with the same frames of its mask and subject mask.

    Args:
        item: from :func:`pair_training_folder`.
        indices: pixel frame indices (from :func:`select_frames`); [0] for an image.

    Returns:
        pixels [F, H, W, 3] float32 in [0, 1] (exact RGB, alpha never composited);
        mask [F, H, W] float32 in [0, 1], None when the item has no mask (source "none");
        subject [F, H, W] float32 in {0, 1} (stored value >= 0.5), None without a subject mask.
        Masks of another size than the item are resized to it (area down / nearest up).
    """
    indices = check_indices(item, indices)
    alpha = None
    if item.info.kind == "image":
        rgb, alpha, scale = image_arrays(item.path)
        pixels = torch.from_numpy(rgb.astype(np.float32) / scale).unsqueeze(0).expand(len(indices), -1, -1, -1)
        pixels = pixels.contiguous()
    else:
        pixels = video_frames(item.path, indices, gray=False)
    if tuple(pixels.shape[1:3]) != (item.info.height, item.info.width):
        raise ValueError(f"{item.path}: decodes to {pixels.shape[2]}x{pixels.shape[1]} but its header said "
                         f"{item.info.width}x{item.info.height}. Fix: pair the folder again (the file changed).")
    mask, subject = read_masks(item, indices, alpha)
    return pixels, mask, subject


def write_mask_video(path: Path, frames: torch.Tensor, fps: float | None = None) -> Path:
    """Write a per-frame mask [F, H, W] in [0, 1] as a lossless FFV1 gray8 video (use .mkv): round(m * 255)."""
    levels = (frames.float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).numpy()
    rate = max(1, round(fps or 16))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=rate)
        stream.height, stream.width = levels.shape[1:]
        stream.pix_fmt = "gray"
        for level in levels:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(level), format="gray")))
        container.mux(stream.encode())
    return path
