"""Image and mask preparation shared by the Wan embed builders: size fitting and frame-count fitting.

Shapes: IMAGE [N, H, W, C] in 0..1 (ComfyUI), MASK [N, H, W] in 0..1. Nothing here ever changes
the number of frames or the size silently: every adaptation logs a warning on the
``WanMasking`` logger naming the input and what was done.
"""
from __future__ import annotations

import logging

import einops
import torch
import torch.nn.functional as F

from ..masking.mask_input import validate_mask

log = logging.getLogger("WanMasking")


def center_crop_resize(x: torch.Tensor, height: int, width: int, mode: str = "bilinear") -> torch.Tensor:
    """Center-crop ``x`` [N, C, H, W] to the aspect of ``width/height``, then resize to (height, width).

    The crop keeps the middle of the longer side (same rule as ComfyUI's "center" crop), the resize
    is ``torch.nn.functional.interpolate`` with ``mode`` (bilinear, area, nearest-exact...).
    An input that already has the target size is returned unchanged.
    """
    old_h, old_w = x.shape[-2], x.shape[-1]
    if (old_h, old_w) == (height, width):
        return x
    old_aspect, new_aspect = old_w / old_h, width / height
    top = left = 0
    if old_aspect > new_aspect:
        left = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        top = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
    x = x[..., top:old_h - top, left:old_w - left]
    return F.interpolate(x, size=(height, width), mode=mode)


def fit_image(images: torch.Tensor, height: int, width: int, input_name: str, mode: str = "bilinear") -> torch.Tensor:
    """Check an IMAGE and bring it to (height, width).

    Args:
        images: IMAGE [N, H, W, C] (or [H, W, C]) in 0..1; only the first 3 channels are kept.
        height, width: target pixel size.
        input_name: named in messages.
        mode: interpolation mode for the resize (after a center crop to the target aspect).

    Returns:
        float32 [N, height, width, 3]. A size change is logged as a warning.
    """
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{input_name}: expected an IMAGE tensor, got {type(images).__name__}.")
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[-1] < 3 or images.shape[0] < 1:
        raise ValueError(f"{input_name}: expected an IMAGE [frames,H,W,3], got shape {list(images.shape)}. "
                         "Fix: connect an IMAGE output (Load Image, Load Video), not a MASK or a latent.")
    images = images[..., :3].float()
    if tuple(images.shape[1:3]) != (height, width):
        log.warning("%s: %dx%d (WxH) differs from width x height %dx%d; center-cropped to the aspect and "
                    "resized (%s).", input_name, images.shape[2], images.shape[1], width, height, mode)
        x = einops.rearrange(images, "n h w c -> n c h w")
        images = einops.rearrange(center_crop_resize(x, height, width, mode), "n c h w -> n h w c")
    return images


def fit_mask(mask: torch.Tensor, height: int, width: int, input_name: str, mode: str = "bilinear") -> torch.Tensor:
    """Check a MASK and bring it to (height, width): float32 [N, height, width], values clamped to 0..1.

    A size change (center crop + ``mode`` resize) and any clamping are logged as warnings.
    """
    mask = validate_mask(mask, input_name)
    if tuple(mask.shape[1:]) != (height, width):
        log.warning("%s: %dx%d (WxH) differs from width x height %dx%d; center-cropped to the aspect and "
                    "resized (%s).", input_name, mask.shape[2], mask.shape[1], width, height, mode)
        mask = center_crop_resize(mask.unsqueeze(1), height, width, mode).squeeze(1)
    return mask


def fit_frames(x: torch.Tensor, length: int, input_name: str, pad: str | float) -> torch.Tensor:
    """Make ``x`` [N, ...] exactly ``length`` frames long, with a warning whenever N != length.

    Args:
        x: frames on dim 0.
        length: wanted frame count.
        input_name: named in the warning.
        pad: ``"repeat"`` pads by repeating the last frame; ``"broadcast"`` only accepts N == 1 or
            N == length (a single frame is used for every frame, without a warning) and pads longer
            gaps by repeating the last frame; a float pads with that constant value.

    Returns:
        [length, ...]. Extra frames are trimmed from the end (warning), missing ones padded (warning).
    """
    n = x.shape[0]
    if n == length:
        return x
    if pad == "broadcast" and n == 1:
        return x.expand(length, *x.shape[1:])
    if n > length:
        log.warning("%s: %d frames for a %d-frame clip; the last %d frame(s) are not used.",
                    input_name, n, length, n - length)
        return x[:length]
    if isinstance(pad, str):
        fill = x[-1:].expand(length - n, *x.shape[1:])
        how = "repeating its last frame"
    else:
        fill = torch.full((length - n, *x.shape[1:]), float(pad), dtype=x.dtype, device=x.device)
        how = f"the value {pad}"
    log.warning("%s: %d frames for a %d-frame clip; padded at the end with %d frame(s) of %s.",
                input_name, n, length, length - n, how)
    return torch.cat([x, fill], dim=0)
