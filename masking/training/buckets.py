"""Training items grouped by latent shape, and the seeded draws of bucketed training.

Items of a real dataset come in several sizes and lengths; a batch can only stack items of one
latent shape. :func:`bucket_items` groups the items by (T, h, w) into :class:`Bucket` s (on the
CPU; the loop moves one batch at a time to the training device), and :class:`BucketDraws` draws
each step's bucket and items as ComfyUI's native bucket mode does: a bucket by a multinomial over
the bucket sizes, then a ``randperm`` inside it (cut to the batch size), then one ``rand`` per
item for its sigma -- here all from ONE generator seeded with ``seed``, so runs repeat.

Global item index = offset of the bucket (items of the buckets before it) + index inside the
bucket, i.e. the index into the conditionings flattened bucket after bucket, as native.

Shapes: an item's latent [C, T, h, w] and raw loss weights [1, T, h, w]; a bucket's
latents [B, C, T, h, w] and weights [B, 1, T, h, w].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, NamedTuple

import torch


@dataclass
class Bucket:
    """Items of one latent shape, on the CPU.

    Attributes:
        latents: [B, C, T, h, w] clean latents.
        weights: [B, 1, T, h, w] raw loss weights (gamma / floor are applied at loss time).
        names: the B item names, in input order.
        conds: one conditioning entry per item (opaque to the core).
        key: (T, h, w), the latent shape shared by the items.
    """

    latents: torch.Tensor
    weights: torch.Tensor
    names: list[str]
    conds: list
    key: tuple[int, int, int]

    @property
    def size(self) -> int:
        return len(self.names)


def bucket_items(names: list[str], latents: list[torch.Tensor], weights: list[torch.Tensor],
                 conds: list) -> list[Bucket]:
    """Group items by latent shape.

    Args:
        names: one unique name per item.
        latents: latents[i] [C, T, h, w].
        weights: weights[i] [1, T, h, w], on the same (T, h, w) grid as latents[i].
        conds: one conditioning entry per item (kept as given, in the item's bucket).

    Returns:
        Buckets sorted by key (T, h, w); items keep their input order inside a bucket. Tensors are
        stacked on the CPU.
    """
    counts = {"names": len(names), "latents": len(latents), "weights": len(weights), "conds": len(conds)}
    if len(set(counts.values())) != 1:
        raise ValueError(f"bucket_items: the item lists differ in length ({counts}). Fix: give one name, latent, "
                         f"loss-weight grid and conditioning per item.")
    if not names:
        raise ValueError("bucket_items: no items. Fix: give at least one training item.")
    seen: set[str] = set()
    channels = None
    groups: dict[tuple[int, int, int], list[int]] = {}
    for i, (name, lat, w) in enumerate(zip(names, latents, weights)):
        if name in seen:
            raise ValueError(f"item {name!r}: the name appears twice. Fix: give every training item its own name.")
        seen.add(name)
        if lat.dim() != 4:
            raise ValueError(f"item {name!r}: latent shape {list(lat.shape)}, expected [C, T, h, w]. Fix: encode the "
                             f"item on its own (no batch dimension) with a Wan VAE.")
        if w.dim() != 4 or w.shape[0] != 1 or w.shape[1:] != lat.shape[1:]:
            raise ValueError(f"item {name!r}: loss weights of shape {list(w.shape)} for a latent of shape "
                             f"{list(lat.shape)}; expected [1, {', '.join(str(s) for s in lat.shape[1:])}]. Fix: build "
                             f"the weights for this item's latent (latent_loss_weights).")
        if channels is None:
            channels = (name, lat.shape[0])
        elif lat.shape[0] != channels[1]:
            raise ValueError(f"item {name!r}: latent with {lat.shape[0]} channels, item {channels[0]!r} has "
                             f"{channels[1]}. Fix: encode every item with the same VAE.")
        groups.setdefault(tuple(int(s) for s in lat.shape[1:]), []).append(i)
    return [Bucket(latents=torch.stack([latents[i].detach().cpu() for i in members]),
                   weights=torch.stack([weights[i].detach().cpu() for i in members]),
                   names=[names[i] for i in members], conds=[conds[i] for i in members], key=key)
            for key, members in sorted(groups.items())]


def bucket_offsets(sizes: list[int]) -> list[int]:
    """Global index of each bucket's first item: [0, s0, s0 + s1, ...] (one per bucket)."""
    offsets, total = [], 0
    for size in sizes:
        offsets.append(total)
        total += size
    return offsets


class BucketDraw(NamedTuple):
    """One step's draw: the bucket, the item indices inside it and in the whole set, and one
    schedule fraction in [0, 1) per item (the loop maps it to a sigma)."""

    bucket: int
    relative: list[int]
    indices: list[int]
    percents: list[float]


class BucketDraws:
    """The seeded draws of bucketed training, as native's bucket mode on one generator.

    Per step: ``multinomial(sizes, 1)`` picks the bucket (weighted by its item count),
    ``randperm(size)[:min(batch_size, size)]`` the items, then one ``rand((1,))`` per item the
    schedule fraction. Every iteration starts over from ``seed``, so iterating twice gives the
    same draws.

    Args:
        sizes: items per bucket, in bucket order (each >= 1).
        batch_size: items per step (a smaller bucket gives all its items).
        seed: seeds the generator.
    """

    def __init__(self, sizes: list[int], batch_size: int, seed: int):
        if not sizes or any(int(s) < 1 for s in sizes):
            raise ValueError(f"bucket sizes {list(sizes)}: every bucket needs at least one item. Fix: drop empty "
                             f"buckets (bucket_items never makes one).")
        if batch_size < 1:
            raise ValueError(f"batch_size {batch_size}: need at least 1 item per step. Fix: set batch_size >= 1.")
        self.sizes = [int(s) for s in sizes]
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.offsets = bucket_offsets(self.sizes)

    def __iter__(self) -> Iterator[BucketDraw]:
        """Endless draws from a fresh generator seeded with ``seed``."""
        rng = torch.Generator().manual_seed(self.seed)
        probs = torch.tensor(self.sizes, dtype=torch.float32)
        while True:
            bucket = int(torch.multinomial(probs, 1, generator=rng).item())
            relative = torch.randperm(self.sizes[bucket], generator=rng)[:self.batch_size].tolist()
            percents = [torch.rand((1,), generator=rng).item() for _ in relative]
            yield BucketDraw(bucket, relative, [self.offsets[bucket] + r for r in relative], percents)

    def take(self, steps: int) -> list[BucketDraw]:
        """The first ``steps`` draws."""
        it = iter(self)
        return [next(it) for _ in range(steps)]

    def check(self, draw: BucketDraw, step: int) -> None:
        """Raise unless ``draw`` fits these buckets (used for replayed draws)."""
        bucket, relative, indices, percents = draw
        ok = 0 <= bucket < len(self.sizes) and len(relative) > 0 and len(set(relative)) == len(relative) \
            and all(0 <= r < self.sizes[bucket] for r in relative) \
            and list(indices) == [self.offsets[bucket] + r for r in relative] and len(percents) == len(relative)
        if not ok:
            raise ValueError(f"draws: step {step} draws {draw!r}, which does not fit buckets of sizes {self.sizes}. "
                             f"Fix: give draws of these buckets (bucket index, distinct item indices inside it, "
                             f"global indices = bucket offset + item index, one percent per item).")
