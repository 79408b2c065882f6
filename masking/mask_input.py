"""Checks for a ComfyUI MASK input, shared by every node family (one wording for every error)."""
from __future__ import annotations

import logging

import torch

log = logging.getLogger("WanMasking")


def check_mask_shape(mask: torch.Tensor, input_name: str = "mask") -> torch.Tensor:
    """Return a MASK as [N, H, W] (dtype unchanged); raise for a non-tensor, anything but 2D/3D, or NaN."""
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{input_name}: expected a MASK tensor, got {type(mask).__name__}.")
    if mask.dim() not in (2, 3):
        raise ValueError(
            f"{input_name}: expected a MASK of shape [H,W] or [frames,H,W], got shape {list(mask.shape)}. "
            f"Fix: pass a MASK (not an IMAGE or a latent); convert an IMAGE with 'Convert Image to Mask'."
        )
    if mask.dim() == 2:
        mask = mask.unsqueeze(0)
    if mask.is_floating_point() and torch.isnan(mask).any():
        raise ValueError(
            f"{input_name}: {int(torch.isnan(mask).sum())} NaN value(s) in a mask of shape {list(mask.shape)}. "
            f"Fix: check the node that made the mask (a division by zero, an empty normalization)."
        )
    return mask


def validate_mask(mask: torch.Tensor, input_name: str = "mask") -> torch.Tensor:
    """Check a MASK and return it as float32 [N, H, W] in [0, 1].

    Raises ValueError as :func:`check_mask_shape`. Values outside [0, 1] are clamped, with a warning.
    """
    mask = check_mask_shape(mask, input_name).float()
    lo, hi = float(mask.min()), float(mask.max())
    if lo < 0.0 or hi > 1.0:
        log.warning("%s: values span [%.4g, %.4g]; clamped to [0, 1].", input_name, lo, hi)
        mask = mask.clamp(0.0, 1.0)
    return mask
