"""One masked-loss training step's loss, independent of any trainer (pure torch).

The trainer (e.g. the WanMaskTrainLoRA node) owns the model, the noise and the optimizer; it
hands this module the prediction, the target, the raw loss weights of the same batch items and,
with prior preservation, the teacher's prediction (the same model with the LoRA disabled, run
under ``torch.no_grad``).

Shapes: prediction / target / teacher [B, C, T, h, w]; raw weights [B, 1, T, h, w].
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .loss import MaskLossSettings, masked_loss

ElementwiseLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

LOSS_FUNCTIONS: dict[str, ElementwiseLoss] = {
    "MSE": lambda pred, target: (pred - target).square(),
    "L1": lambda pred, target: (pred - target).abs(),
    "Huber": lambda pred, target: F.huber_loss(pred, target, reduction="none"),
    "SmoothL1": lambda pred, target: F.smooth_l1_loss(pred, target, reduction="none"),
}
"""Unreduced versions of the loss functions ComfyUI's trainer offers (torch defaults: delta = beta = 1)."""


def elementwise_loss(kind: str) -> ElementwiseLoss:
    """The unreduced loss function called ``kind`` (MSE, L1, Huber, SmoothL1)."""
    if kind not in LOSS_FUNCTIONS:
        raise ValueError(f"loss_function: unknown {kind!r}; choose one of {', '.join(LOSS_FUNCTIONS)}.")
    return LOSS_FUNCTIONS[kind]


def masked_training_loss(prediction: torch.Tensor, target: torch.Tensor, raw_weights: torch.Tensor,
                         settings: MaskLossSettings, loss_fn: ElementwiseLoss,
                         teacher: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The scalar loss of one step, in fp32, and its stats (see :func:`masked_loss`).

    Args:
        prediction: the student's prediction (with grad) [B, C, T, h, w].
        target: what it should predict inside the mask, same shape.
        raw_weights: [B, 1, T, h, w] raw loss weights of the same items (1 = full weight).
        settings: masked-loss settings.
        loss_fn: unreduced loss, e.g. ``elementwise_loss("MSE")``.
        teacher: the base model's prediction (no grad), needed when ``settings.prior_weight > 0``.
    """
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {list(prediction.shape)} and target {list(target.shape)} differ in shape.")
    prediction = prediction.float()
    unreduced = loss_fn(prediction, target.float())
    prior = None
    if settings.uses_prior:
        if teacher is None:
            raise ValueError("teacher: prior_preservation_weight > 0 needs the base model's prediction "
                             "(LoRA disabled). Fix: run the teacher pass or set prior_preservation_weight to 0.")
        prior = loss_fn(prediction, teacher.detach().float())
    return masked_loss(unreduced, raw_weights.to(prediction.device), settings, prior)
