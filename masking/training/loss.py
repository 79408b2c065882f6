"""The masked loss reducer: region-normalized weighted means, with optional prior preservation.

Given an unreduced loss ``l`` [B, C, T, h, w] (e.g. squared error to the training target), the
raw loss weights ``r`` [B, 1, T, h, w] (1 = full training weight, 0 = none; see
:mod:`masking.training.weights`) and settings (gamma, min_weight, ...)::

    w       = r**gamma * (1 - min_weight) + min_weight                 target weights
    p       = 1 - w             (continuous mode)                      prior weights
            = [r < threshold]   (threshold mode; then also w = w * (1 - p), no overlap)
    L       = sum(l * w) / sum(w)  +  prior_weight * sum(l_prior * p) / sum(p)

``l_prior`` is the loss between the student and a teacher prediction (the base model, LoRA
off). Sums run over every element with the weights broadcast over C ("global"), or per sample
and then averaged over the batch (``normalize_per_sample``; samples with zero weight add 0).
Normalizing by the weight sum, not the element count, keeps the loss scale independent of how
much of the frame the mask covers.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .weights import apply_gamma_floor, check_gamma, check_min_weight

log = logging.getLogger("WanMasking")

EPS = 1e-8


def check_prior_weight(prior_weight: float, input_name: str = "prior_preservation_weight") -> float:
    """Raise unless prior_weight >= 0."""
    prior_weight = float(prior_weight)
    if not prior_weight >= 0.0:
        raise ValueError(f"{input_name} must be >= 0, got {prior_weight}. 0 turns prior preservation off; "
                         f"0.5-1.0 is the usual range.")
    return prior_weight


def check_prior_threshold(threshold: float | None, input_name: str = "prior_mask_threshold") -> float | None:
    """Raise unless threshold is None (continuous mode) or in the open range (0, 1)."""
    if threshold is None:
        return None
    threshold = float(threshold)
    if not (0.0 < threshold < 1.0):
        raise ValueError(f"{input_name} must be in range (0, 1), got {threshold}. Prior preservation then applies "
                         f"where the raw mask is below it (0.05-0.15 keeps only true background); leave it unset "
                         f"(0 in the node) for continuous mode (prior weight 1 - w).")
    return threshold


@dataclass(frozen=True)
class MaskLossSettings:
    """Validated masked-loss settings (the constructor raises ValueError on bad values).

    Attributes:
        gamma: exponent on the raw weights, > 0.
        min_weight: weight floor in [0, 1).
        prior_weight: weight of the prior-preservation term, >= 0 (0 = off).
        prior_threshold: None = continuous prior mask (1 - w); a value in (0, 1) = prior only where
            the raw mask is below it, and no target weight there.
        normalize_per_sample: weighted mean per sample, then the batch mean (else one global mean).
    """

    gamma: float = 1.0
    min_weight: float = 0.0
    prior_weight: float = 0.0
    prior_threshold: float | None = None
    normalize_per_sample: bool = False

    def __post_init__(self):
        check_gamma(self.gamma)
        check_min_weight(self.min_weight)
        check_prior_weight(self.prior_weight)
        check_prior_threshold(self.prior_threshold)

    @property
    def uses_prior(self) -> bool:
        return self.prior_weight > 0.0

    def warnings(self) -> list[str]:
        """Settings that are valid but probably not what the user wants."""
        out = []
        if self.uses_prior and self.min_weight > 0:
            out.append(f"min_weight={self.min_weight} with prior preservation: the floor shrinks the prior region "
                       f"(continuous mode: prior weight 1-w <= {1 - self.min_weight:g}). 0.0 is recommended.")
        if self.uses_prior and not self.normalize_per_sample:
            out.append("prior preservation without normalize_per_sample: with varying mask coverage across a batch "
                       "the prior term's strength varies per sample. Consider normalize_per_sample.")
        if self.prior_threshold is not None and not self.uses_prior:
            out.append(f"prior_mask_threshold={self.prior_threshold} has no effect while prior_preservation_weight is 0.")
        if not self.uses_prior and self.min_weight == 0.0:
            out.append("min_weight=0 without prior preservation: the model is free to predict anything outside the "
                       "mask ('phantom limbs'). Use min_weight 0.05 or prior preservation.")
        return out

    def banner(self) -> str:
        """The multi-line banner a trainer prints so users can see masked loss is active."""
        rule = "=" * 60
        lines = [rule, "WAN MASKED PRIOR PRESERVATION TRAINING ENABLED" if self.uses_prior
                 else "WAN MASK-WEIGHTED LOSS TRAINING ENABLED", rule,
                 f"  min_weight: {self.min_weight}", f"  gamma: {self.gamma}",
                 f"  prior_preservation_weight: {self.prior_weight}"]
        if self.uses_prior:
            mode = (f"{self.prior_threshold} (threshold mode)" if self.prior_threshold is not None
                    else "None (continuous mode, prior weight = 1 - w)")
            lines.append(f"  prior_mask_threshold: {mode}")
        lines.append(f"  normalize_per_sample: {self.normalize_per_sample}")
        lines.append("-" * 60)
        lines.append("Loss weights: 1 (white) = full training weight, 0 (black) = none.")
        if self.uses_prior:
            lines.append("PRIOR PRESERVATION: outside the mask the LoRA is pulled toward the base model")
            lines.append("                    (one extra forward pass per step, LoRA off).")
        lines.extend(f"NOTE: {w}" for w in self.warnings())
        lines.append(rule)
        return "\n".join(lines)


def prior_region_warning(raw_weights: torch.Tensor, settings: MaskLossSettings) -> str | None:
    """A message when prior preservation is on but its region is empty for the whole training set,
    e.g. a floor already baked into the weights (WanMaskLossWeights) lifts every cell above the
    threshold, or the mask is 1 everywhere. None when the prior region is not empty."""
    if not settings.uses_prior:
        return None
    _, prior = region_masks(raw_weights, settings)
    if float(prior.sum()) > EPS:
        return None
    if settings.prior_threshold is not None:
        return (f"prior_mask_threshold={settings.prior_threshold}: no loss weight is below it (smallest "
                f"{float(raw_weights.min()):.4g}), so prior preservation does nothing. If the weights already carry a "
                f"floor (min_weight baked in by WanMaskLossWeights), feed the raw mask or raise the threshold.")
    return ("prior preservation: every loss weight is 1, so the prior region (1 - w) is empty and prior "
            "preservation does nothing. Give a mask with background below 1.")


def _as_5d(loss: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """loss [B,C,T,h,w] or [B,C,h,w]; weights [B,1,T,h,w] or [B,T,h,w] (or 4D/3D for image loss)."""
    if loss.dim() == 4:
        loss = loss.unsqueeze(2)
        if weights.dim() in (3, 4) and weights.shape[1:] == loss.shape[-2:]:
            weights = weights.reshape(weights.shape[0], 1, 1, *weights.shape[-2:])
    if loss.dim() != 5:
        raise ValueError(f"loss: expected an unreduced loss [B,C,T,h,w] or [B,C,h,w], got {list(loss.shape)}.")
    if weights.dim() == 4:
        weights = weights.unsqueeze(1)
    if weights.dim() != 5 or weights.shape[1] != 1 or weights.shape[0] != loss.shape[0] \
            or weights.shape[2:] != loss.shape[2:]:
        raise ValueError(
            f"loss weights: shape {list(weights.shape)} does not match the loss {list(loss.shape)}. Expected "
            f"[{loss.shape[0]}, 1, {', '.join(str(s) for s in loss.shape[2:])}] (one weight per latent cell, "
            f"shared by all channels). Fix: build the weights for these latents (latent_loss_weights)."
        )
    return loss, weights


def region_masks(raw: torch.Tensor, settings: MaskLossSettings) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Target and prior weights from raw weights (any shape, values in [0, 1]).

    Returns:
        (target, prior): prior is None when prior preservation is off. In threshold mode the
        target is zeroed wherever the prior applies, so the regions never overlap.
    """
    raw = raw.float().clamp(0.0, 1.0)
    target = apply_gamma_floor(raw, settings.gamma, settings.min_weight)
    if not settings.uses_prior:
        return target, None
    if settings.prior_threshold is None:
        return target, 1.0 - target
    prior = (raw < settings.prior_threshold).float()
    return target * (1.0 - prior), prior


def weighted_mean(loss: torch.Tensor, weights: torch.Tensor, per_sample: bool) -> torch.Tensor:
    """sum(loss*w)/sum(w) with w [B,1,...] broadcast over the loss's channels [B,C,...], in fp32.

    Global: one ratio over everything (0 with a warning when all weights are 0). Per sample:
    one ratio per sample, samples with zero weight count as 0, then the batch mean.
    """
    channels = loss.shape[1]
    # The weights are shared by all channels: sum the loss over channels first (C times less work).
    per_cell = loss.float().sum(dim=1, keepdim=True)
    weights = weights.float()
    if per_sample:
        num = (per_cell * weights).flatten(1).sum(dim=1)
        den = weights.flatten(1).sum(dim=1) * channels
        return torch.where(den > EPS, num / den.clamp_min(EPS), torch.zeros_like(num)).mean()
    den = weights.sum() * channels
    if float(den) <= EPS:
        log.warning("All loss weights are zero in this batch: the loss is 0 and nothing is learned. "
                    "Check the mask (1 = full weight) or raise min_weight.")
        return (per_cell * weights).sum() * 0.0
    return (per_cell * weights).sum() / den


def masked_loss(loss: torch.Tensor, raw_weights: torch.Tensor, settings: MaskLossSettings,
                prior_loss: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Reduce an unreduced loss with loss weights and optional prior preservation.

    Args:
        loss: unreduced loss to the training target, [B, C, T, h, w] (or [B, C, h, w]).
        raw_weights: [B, 1, T, h, w] or [B, T, h, w] raw weights in [0, 1] (before gamma/floor).
        settings: the validated settings.
        prior_loss: unreduced loss to the teacher prediction, same shape as ``loss``; required
            when ``settings.prior_weight > 0``.

    Returns:
        (scalar fp32 loss, stats) with stats "target", "prior" (the two terms, prior already
        multiplied by its weight) and the means of the target and prior masks.
    """
    loss, raw_weights = _as_5d(loss, raw_weights)
    raw_weights = raw_weights.to(loss.device)
    target_w, prior_w = region_masks(raw_weights, settings)
    l_target = weighted_mean(loss, target_w, settings.normalize_per_sample)
    stats = {"target": float(l_target.detach()), "prior": 0.0, "target_mask_mean": float(target_w.mean()),
             "prior_mask_mean": 0.0 if prior_w is None else float(prior_w.mean())}
    if prior_w is None:
        return l_target, stats
    if prior_loss is None:
        raise ValueError("prior_loss: prior_preservation_weight > 0 needs the loss to the teacher (base model) "
                         "prediction. Fix: run the teacher pass, or set prior_preservation_weight to 0.")
    prior_loss = prior_loss.unsqueeze(2) if prior_loss.dim() == 4 else prior_loss
    if prior_loss.shape != loss.shape:
        raise ValueError(f"prior_loss: shape {list(prior_loss.shape)} does not match the loss {list(loss.shape)}.")
    if float(prior_w.sum()) <= EPS:
        l_prior = l_target.new_zeros(())
    else:
        l_prior = weighted_mean(prior_loss, prior_w, settings.normalize_per_sample) * settings.prior_weight
    stats["prior"] = float(l_prior.detach())
    return l_target + l_prior, stats
