"""A masked training set from a paired folder: frames selected, resized, encoded once, with each
item's loss weights on its own latent grid, cached, and bucketed by latent shape (pure torch).

The steps for one item, with the mask read and transformed alongside its clip at every one, so the
two cannot come apart::

    select_frames (1+4k, seeded) -> read_item (the same frames of clip, mask and subject)
    -> fit_item (the same scale and crop) -> encode (VAE callable) + latent_loss_weights (causal grouping)
    -> cache (safetensors, keyed by the sources' sha256 and the settings) -> bucket_items

Model calls come in as callables (``encode_pixels``, ``encode_caption``), so this runs without ComfyUI.

Shapes: pixels [F, H, W, 3]; mask / subject [F, H, W]; one item's latent [C, T, h, w] and raw
weights [1, T, h, w]; a bucket's LATENT dict {"samples": [B, C, T, h, w], WEIGHTS_KEY: [B, 1, T, h, w]}.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from ..geometry import VaeGeometry
from .buckets import Bucket, bucket_items
from .dataset_cache import TrainingSetCache, file_sha256
from .dataset_files import DatasetItem, PairingReport
from .dataset_frames import bucket_resolution, fit_item, select_frames
from .dataset_media import read_item
from .trainer_inputs import NAMES_KEY, WEIGHTS_KEY
from .weights import latent_loss_weights

log = logging.getLogger("WanMasking")

FRAME_SELECTIONS = ("contiguous", "spread")
SHORT_CLIPS = ("trim", "error")


@dataclass(frozen=True)
class SetSettings:
    """Everything that changes what an item encodes to (the cache is keyed by it).

    Attributes:
        width, height: target pixel size; with ``buckets`` the target area (each item keeps its aspect).
        buckets: resolution buckets (True) or every item center-cropped to width x height (False).
        length: pixel frames per clip, 1+4k; longer clips give ``length`` frames, shorter ones follow ``short_clips``.
        frame_selection: "contiguous" (a seeded start) or "spread" (evenly over the clip).
        short_clips: "trim" (the longest 1+4k the clip has, warned) or "error".
        seed: seeds the contiguous start per item.
    """

    width: int = 832
    height: int = 480
    buckets: bool = True
    length: int = 81
    frame_selection: str = "contiguous"
    short_clips: str = "trim"
    seed: int = 0

    def __post_init__(self):
        if self.frame_selection not in FRAME_SELECTIONS:
            raise ValueError(f"frame_selection: {self.frame_selection!r} is not one of {', '.join(FRAME_SELECTIONS)}.")
        if self.short_clips not in SHORT_CLIPS:
            raise ValueError(f"short_clips: {self.short_clips!r} is not one of {', '.join(SHORT_CLIPS)}.")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"width x height: {self.width}x{self.height} must be at least 1x1.")


@dataclass
class BuiltSet:
    """The encoded set: buckets (CPU) plus what was encoded and what came from the cache."""

    buckets: list[Bucket]
    encoded: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    captions_encoded: int = 0

    def latent_outputs(self) -> tuple[list[dict], list[list]]:
        """(one LATENT dict per bucket, carrying its items' weights and names; one conditioning list per
        bucket with one entry per item), as native ResolutionBucket hands them to Train LoRA."""
        latents = [{"samples": b.latents, WEIGHTS_KEY: b.weights, NAMES_KEY: list(b.names)} for b in self.buckets]
        return latents, [list(b.conds) for b in self.buckets]

    def text(self) -> str:
        n = sum(len(b.names) for b in self.buckets)
        lines = [f"Encoded {len(self.encoded)} of {n} items, {len(self.cached)} from the cache; "
                 f"{self.captions_encoded} caption(s) encoded.",
                 f"{len(self.buckets)} bucket(s) (latent frames x h x w):"]
        lines += [f"  {b.key[0]}x{b.key[1]}x{b.key[2]}: {', '.join(b.names)}" for b in self.buckets]
        return "\n".join(lines)


def item_sources(item: DatasetItem) -> dict[str, str]:
    """sha256 of every file an item is made from (clip, mask, caption, subject), by role."""
    paths = {"item": item.path, "mask": item.mask_path, "caption": item.caption_path, "subject": item.subject_path}
    return {role: file_sha256(path) for role, path in paths.items() if path is not None}


def target_size(item: DatasetItem, settings: SetSettings, geometry: VaeGeometry) -> tuple[int, int]:
    """(h, w) in pixels: the item's bucket (aspect kept, area <= width*height) or width x height."""
    multiple = geometry.spatial_stride * geometry.patch
    if settings.buckets:
        return bucket_resolution(item.info.width, item.info.height, settings.width * settings.height, multiple)
    if settings.width % multiple or settings.height % multiple:
        raise ValueError(f"width x height: {settings.width}x{settings.height} is not a multiple of {multiple} "
                         f"(the {geometry.name} VAE and the model's 2x2 patches). Fix: use multiples of {multiple}.")
    return settings.height, settings.width


def item_weights(mask: torch.Tensor | None, subject: torch.Tensor | None, latent_shape: tuple[int, ...],
                 geometry: VaeGeometry, name: str) -> torch.Tensor:
    """Raw loss weights [1, T, h, w] of one item from its fitted per-frame mask [F, H, W] (None = full
    weight), times its subject mask (group photos: everyone else gets weight 0)."""
    shape = (1, *latent_shape)
    weights = torch.ones(1, *latent_shape[1:]) if mask is None else \
        latent_loss_weights(mask, shape, geometry, True, f"mask of {name}")[0]
    if subject is not None:
        weights = weights * latent_loss_weights(subject, shape, geometry, True, f"subject mask of {name}")[0]
    return weights


def encode_item(item: DatasetItem, settings: SetSettings, geometry: VaeGeometry,
                encode_pixels: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, torch.Tensor]:
    """{"latent": [C, T, h, w], "weights": [1, T, h, w]} of one item, on the CPU."""
    indices = select_frames(item.info.frames, settings.length, mode=settings.frame_selection, seed=settings.seed,
                            name=item.name, short=settings.short_clips, geometry=geometry)
    pixels, mask, subject = read_item(item, indices)
    pixels, mask, subject = fit_item(pixels, mask, subject, target_size(item, settings, geometry))
    latent = encode_pixels(pixels).detach().cpu()
    if latent.dim() == 5 and latent.shape[0] == 1:
        latent = latent[0]
    expected = geometry.latent_frames(len(indices))
    if latent.dim() != 4 or latent.shape[1] != expected:
        raise ValueError(f"{item.path.name}: the VAE gave a latent of shape {list(latent.shape)} for {len(indices)} "
                         f"frames; expected [C, {expected}, h, w]. Fix: use the Wan VAE of the model.")
    return {"latent": latent.contiguous(), "weights": item_weights(mask, subject, tuple(latent.shape), geometry,
                                                                   item.name).contiguous()}


def build_training_set(report: PairingReport, settings: SetSettings, geometry: VaeGeometry, *,
                       encode_pixels: Callable[[torch.Tensor], torch.Tensor],
                       encode_caption: Callable[[str], list], cache: TrainingSetCache | None = None,
                       caption_encoder_id: str = "", on_item: Callable[[int, str], None] | None = None) -> BuiltSet:
    """Encode every paired item (or load it from ``cache``) and bucket the set.

    Args:
        report: the pairing of the folder (:func:`dataset_files.pair_training_folder`); its errors were raised
            before this runs, so nothing is encoded for a folder with a bad file.
        settings: frame selection and size.
        geometry: the VAE's geometry (strides, causal groups).
        encode_pixels: pixels [F, H, W, 3] in [0, 1] -> latent [C, T, h, w] or [1, C, T, h, w].
        encode_caption: caption -> CONDITIONING (a list of [tensor, dict]).
        cache: where latents, weights and conditionings are kept between runs (None: no cache).
        caption_encoder_id: identifies the text encoder (conditionings are cached per caption and encoder).
        on_item: called after each item with (index, name): progress and interrupt checks.
    """
    names, latents, weights, conds = [], [], [], []
    built = BuiltSet(buckets=[])
    caption_conds: dict[str, list] = {}
    for index, item in enumerate(report.items):
        sources = item_sources(item)
        tensors = cache.load_item(item.name, sources) if cache is not None else None
        if tensors is None:
            tensors = encode_item(item, settings, geometry, encode_pixels)
            if cache is not None:
                cache.store_item(item.name, sources, tensors)
            built.encoded.append(item.name)
        else:
            built.cached.append(item.name)
        if item.caption not in caption_conds:
            cond = cache.load_cond(item.caption, caption_encoder_id) if cache is not None else None
            if cond is None:
                cond = encode_caption(item.caption)
                built.captions_encoded += 1
                if cache is not None:
                    cache.store_cond(item.caption, caption_encoder_id, cond)
            caption_conds[item.caption] = cond
        names.append(item.name)
        latents.append(tensors["latent"])
        weights.append(tensors["weights"])
        conds.append(caption_conds[item.caption][0])
        if on_item is not None:
            on_item(index, item.name)
    if cache is not None:
        dropped = cache.prune(set(names))
        if dropped:
            log.info("Training-set cache: dropped %d item(s) no longer in the folder: %s", len(dropped),
                     ", ".join(dropped))
        cache.save_manifest()
    built.buckets = bucket_items(names, latents, weights, conds)
    return built


def cache_settings(settings: SetSettings, geometry: VaeGeometry, vae_id: str, pairing: dict) -> dict:
    """The cache key: the set settings, the VAE's identity and geometry, and how masks were paired."""
    return {"set": asdict(settings), "vae": vae_id, "geometry": geometry.name, "pairing": pairing}
