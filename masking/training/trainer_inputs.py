"""What the trainer node receives, turned into one training set: items, their loss weights and
conditionings, one shape or in buckets.

The trainer takes every input as a list (as ComfyUI 0.33's native Train LoRA): ``latents`` is a
list of LATENT dicts (one per connected output or list item: a single clip batch, items of
MakeTrainingDataset, buckets of ResolutionBucket or WanMaskTrainingSet), ``positive`` a list of
CONDITIONING lists. LATENT dicts from WanMaskTrainingSet carry each item's raw loss weights
(:data:`WEIGHTS_KEY`, [B, 1, T, h, w]) and names (:data:`NAMES_KEY`), so weights can never be
matched to the wrong item.

Shapes: a LATENT dict's samples [B, C, T, h, w]; one item's latent [C, T, h, w]; raw weights [1, T, h, w].
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from ..geometry import geometry_for_channels
from .buckets import Bucket, bucket_items
from .weights import latent_loss_weights

log = logging.getLogger("WanMasking")

WEIGHTS_KEY = "wanmask_loss_weights"
"""LATENT dict key: raw loss weights [B, 1, T, h, w] of the dict's items (1 = full weight)."""
NAMES_KEY = "wanmask_items"
"""LATENT dict key: the items' names (list of B strings), for reports and draw counts."""


@dataclass
class TrainingData:
    """The set the trainer trains on.

    Attributes:
        names: one name per item, in order (bucket after bucket when ``buckets`` is set).
        conds: one conditioning entry per item, same order.
        latents / weights: [N, C, T, h, w] and [N, 1, T, h, w] when every item has one shape and
            bucket mode is off (native's standard mode); None in bucket mode.
        buckets: the items grouped by latent shape (bucket mode), else None.
        sources: how many items got their weights from where ("latents", "loss_mask", "full").
    """

    names: list[str]
    conds: list
    latents: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    buckets: list[Bucket] | None = None
    sources: dict[str, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.names)

    def all_weights(self) -> torch.Tensor:
        """Every raw weight of the set, flattened to [1, 1, 1, 1, K] (shapes may differ between buckets)."""
        parts = [self.weights] if self.buckets is None else [b.weights for b in self.buckets]
        return torch.cat([p.reshape(-1) for p in parts]).reshape(1, 1, 1, 1, -1)

    def summary(self) -> str:
        """Lines for the trainer's banner: items, shapes / buckets, where the weights came from."""
        origin = ", ".join(f"{n} from {k}" for k, n in self.sources.items() if n)
        if self.buckets is None:
            return (f"  loss weights: {list(self.weights.shape)} (items, 1, latent frames, h, w), "
                    f"mean raw weight {float(self.weights.mean()):.4f}; {origin}")
        lines = [f"  {self.count} items in {len(self.buckets)} buckets (latent frames x h x w); weights {origin}"]
        lines += [f"    bucket {b.key[0]}x{b.key[1]}x{b.key[2]}: {len(b.names)} items, mean raw weight "
                  f"{float(b.weights.mean()):.4f}" for b in self.buckets]
        return "\n".join(lines)


def flatten_conditioning(positive: list, count: int) -> list:
    """One conditioning entry per item from the ``positive`` list input.

    ``positive`` holds CONDITIONING lists: one list for every item ([[entry]]), or lists whose entries
    add up to one per item (a list per item, or per bucket as ResolutionBucket gives them)."""
    if len(positive) == 1 and len(positive[0]) == 1:
        return list(positive[0]) * count
    flat = [entry for cond in positive for entry in cond]
    if len(flat) != count:
        raise ValueError(f"positive: {len(flat)} conditionings for {count} training items. Fix: connect one "
                         "conditioning for all items, or one per item (the conditioning output of the node that "
                         "made the latents).")
    return flat


def _check_5d(samples: torch.Tensor, where: str) -> None:
    if samples.dim() != 5:
        raise ValueError(f"latents: {where} has shape {list(samples.shape)}, not Wan video latents [N,C,T,h,w]. "
                         "Fix: encode the clips with a Wan VAE (VAEEncode, WanMaskTrainingSet).")


def split_items(latents: list[dict]) -> tuple[list[str], list[torch.Tensor], list[torch.Tensor | None]]:
    """(names, latents [C,T,h,w] per item, carried raw weights [1,T,h,w] per item or None)."""
    names, items, carried = [], [], []
    for d_index, latent in enumerate(latents):
        samples = latent["samples"]
        _check_5d(samples, f"list item {d_index}")
        weights = latent.get(WEIGHTS_KEY)
        if weights is not None and (weights.dim() != 5 or weights.shape[0] != samples.shape[0]
                                    or weights.shape[2:] != samples.shape[2:]):
            raise ValueError(f"latents: list item {d_index} carries loss weights {list(weights.shape)} that do not "
                             f"fit its samples {list(samples.shape)}. Fix: connect the latents of "
                             "WanMaskTrainingSet unchanged.")
        given = latent.get(NAMES_KEY) or []
        for i in range(samples.shape[0]):
            names.append(given[i] if i < len(given) else f"item {len(names)}")
            items.append(samples[i])
            carried.append(None if weights is None else weights[i].float())
    return names, items, carried


def _weights_from_mask(loss_mask, items: list[torch.Tensor], require_mask: bool) -> list[torch.Tensor]:
    """Per-item raw weights from the loss_mask input: for one shape as today (one mask for all, or one
    per item, item after item); for several shapes, one single-frame mask resized onto each item."""
    shapes = {tuple(t.shape) for t in items}
    geometry = geometry_for_channels(items[0].shape[0], "latents")
    if len(shapes) == 1:
        w = latent_loss_weights(loss_mask, (len(items), *items[0].shape), geometry, require_mask, "loss_mask")
        return list(w)
    if loss_mask is None:   # no weights anywhere: full weight, or the require_mask error, for the whole set
        latent_loss_weights(None, (len(items), *items[0].shape), geometry, require_mask, "loss_mask")
        return [torch.ones(1, *t.shape[1:]) for t in items]
    if loss_mask.dim() == 2 or loss_mask.shape[0] == 1:
        return [latent_loss_weights(loss_mask, (1, *t.shape), geometry, require_mask, "loss_mask")[0] for t in items]
    raise ValueError(f"loss_mask: the latents have {len(shapes)} shapes, so a mask batch cannot be matched to the "
                     "items by order. Fix: build the set with WanMaskTrainingSet (each item's mask travels with "
                     "it), or give one single-frame mask for every item.")


def concat_masks(masks: list[torch.Tensor]) -> torch.Tensor | None:
    """Loss masks given as a list (one per list item, [H,W] or [F,H,W]) -> one [sum F, H, W] mask, item
    after item (the per-item layout :func:`weights.latent_loss_weights` reads); None for an empty list."""
    if not masks:
        return None
    return torch.cat([m if m.dim() == 3 else m.unsqueeze(0) for m in masks], 0)


def assemble_training_data(latents: list[dict], positive: list, loss_mask=None, *, require_mask: bool = True,
                           bucket_mode: bool = False) -> TrainingData:
    """The trainer's list inputs as one training set.

    Args:
        latents: list of LATENT dicts (see the module docstring).
        positive: list of CONDITIONING lists.
        loss_mask: the loss_mask input (a MASK, or a list of MASKs, concatenated item after item), or None.
        require_mask: items without weights are an error (True) or train at full weight (False, warned).
        bucket_mode: group the items by latent shape; off, every item must have one shape.
    """
    if isinstance(loss_mask, list):
        loss_mask = concat_masks(loss_mask)
    names, items, carried = split_items(latents)
    if not items:
        raise ValueError("latents: the list is empty. Fix: connect the latents to train on.")
    conds = flatten_conditioning(positive, len(items))
    sources = {"latents": sum(w is not None for w in carried), "loss_mask": 0, "full": 0}
    if sources["latents"] and loss_mask is not None:
        raise ValueError("loss_mask: the latents already carry their items' loss weights (WanMaskTrainingSet), "
                         "so a loss_mask would have to replace them. Fix: disconnect loss_mask, or change the "
                         "masks in the training set.")
    if sources["latents"] == len(items):
        weights = carried
    elif sources["latents"]:
        missing = [n for n, w in zip(names, carried) if w is None]
        if require_mask:
            raise ValueError(f"latents: {len(missing)} items carry no loss weights ({', '.join(missing[:5])}) and "
                             "require_mask is on. Fix: build every item with WanMaskTrainingSet, or turn "
                             "require_mask off to train those at full weight.")
        log.warning("latents: %d item(s) carry no loss weights (%s); they train at full weight 1.0 (require_mask "
                    "is off).", len(missing), ", ".join(missing[:5]))
        weights = [w if w is not None else torch.ones(1, *t.shape[1:]) for w, t in zip(carried, items)]
        sources["full"] = len(missing)
    else:
        weights = _weights_from_mask(loss_mask, items, require_mask)
        sources["loss_mask" if loss_mask is not None else "full"] = len(items)
    shapes = {tuple(t.shape) for t in items}
    if len(shapes) > 1 and not bucket_mode:
        raise ValueError(f"latents: {len(items)} items of {len(shapes)} shapes "
                         f"({', '.join('x'.join(map(str, s[1:])) for s in sorted(shapes))} frames x h x w). "
                         "Fix: turn bucket_mode on to train them together, or resize and trim them to one shape.")
    if not bucket_mode:
        return TrainingData(names, conds, torch.stack(items), torch.stack(weights), None, sources)
    buckets = bucket_items(names, items, weights, conds)
    order = [n for b in buckets for n in b.names]
    flat_conds = [c for b in buckets for c in b.conds]
    return TrainingData(order, flat_conds, None, None, buckets, sources)
