"""Named conventions: which value means what, for every kind of mask and fill in this pack.

Every node's tooltip quotes these strings, so the UI, the docstrings and the errors agree.
"""
from __future__ import annotations

NOISE_MASK = "1 = regenerate, 0 = keep the input latent (ComfyUI noise_mask)"
"""Latent noise masks and every MASK input that feeds one."""

NATIVE_CONCAT_MASK = "1 = generate, 0 = given frame (native concat_mask; ComfyUI feeds the model 1 - mask)"
"""The I2V concat mask as native nodes store it in conditioning."""

WRAPPER_I2V_MASK = "1 = given/keep, 0 = generate (WanVideoWrapper I2V mask, the model's own convention)"
"""The wrapper's I2V mask: the opposite polarity of NATIVE_CONCAT_MASK."""

VACE_MASK = "1 = reactive (generate), 0 = inactive (keep); must be binary"
"""VACE control masks."""

FILL_GRAY = 0.5
"""Native null fill for unknown frames, in IMAGE space [0, 1] (0.0 in the VAE's [-1, 1] input)."""

FILL_BLACK = 0.0
"""The wrapper's null fill for unknown frames, in IMAGE space [0, 1] (-1.0 in the VAE's input)."""

LOSS_WEIGHT = "1 (white, 8-bit 255) = full training weight, 0 (black) = no training signal (a weight, not a crop)"
"""Loss-weight masks for masked-loss training (WanMaskLossWeights, WanMaskTrainLoRA)."""
