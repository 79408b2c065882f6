"""Checks for a ComfyUI MASK input, shared by every node family (one wording for every error)."""
from __future__ import annotations

import logging
import math

import torch

log = logging.getLogger("WanMasking")


def _check_dims(mask: torch.Tensor, input_name: str) -> torch.Tensor:
    """Return a MASK as [N, H, W] (dtype unchanged); raise for a non-tensor or anything but 2D/3D."""
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{input_name}: expected a MASK tensor, got {type(mask).__name__}.")
    if mask.dim() not in (2, 3):
        raise ValueError(
            f"{input_name}: expected a MASK of shape [H,W] or [frames,H,W], got shape {list(mask.shape)}. "
            f"Fix: pass a MASK (not an IMAGE or a latent); convert an IMAGE with 'Convert Image to Mask'."
        )
    if mask.dim() == 2:
        mask = mask.unsqueeze(0)
    return mask


def _nan_error(mask: torch.Tensor, input_name: str) -> ValueError:
    """The error for a mask holding NaN (counts them: one more pass, on the error path only)."""
    return ValueError(
        f"{input_name}: {int(torch.isnan(mask).sum())} NaN value(s) in a mask of shape {list(mask.shape)}. "
        f"Fix: check the node that made the mask (a division by zero, an empty normalization)."
    )


def check_mask_shape(mask: torch.Tensor, input_name: str = "mask") -> torch.Tensor:
    """Return a MASK as [N, H, W] (dtype unchanged); raise for a non-tensor, anything but 2D/3D, or NaN."""
    mask = _check_dims(mask, input_name)
    if mask.is_floating_point() and torch.isnan(mask).any():
        raise _nan_error(mask, input_name)
    return mask


def validate_mask(mask: torch.Tensor, input_name: str = "mask") -> torch.Tensor:
    """Check a MASK and return it as float32 [N, H, W] in [0, 1].

    Raises ValueError as :func:`check_mask_shape`. Values outside [0, 1] are clamped, with a warning.
    Reads the mask once (one ``aminmax``; min and max propagate NaN, so NaN shows in the range) and
    copies it only when it is not float32 or must be clamped.
    """
    mask = _check_dims(mask, input_name).float()
    if mask.numel() == 0:
        lo, hi = float(mask.min()), float(mask.max())  # raises torch's own error for an empty mask, as before
    else:
        lo, hi = torch.stack(torch.aminmax(mask)).tolist()
    if math.isnan(lo) or math.isnan(hi):
        raise _nan_error(mask, input_name)
    if lo < 0.0 or hi > 1.0:
        log.warning("%s: values span [%.4g, %.4g]; clamped to [0, 1].", input_name, lo, hi)
        mask = mask.clamp(0.0, 1.0)
    return mask
