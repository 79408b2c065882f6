"""The training set end to end in the core (masking/training/dataset_build.py, trainer_inputs.py), with a
fake VAE whose every call is counted: masks travel with their items, the cache makes a rerun encode
nothing, a changed file re-encodes only its item, and the trainer's list inputs become buckets whose
weights belong to their items."""
from __future__ import annotations

import einops
import pytest
import torch

from comfyui_wanmasking.masking.geometry import WAN21
from comfyui_wanmasking.masking.training.dataset_build import SetSettings, build_training_set, cache_settings
from comfyui_wanmasking.masking.training.dataset_cache import TrainingSetCache
from comfyui_wanmasking.masking.training.trainer_inputs import NAMES_KEY, WEIGHTS_KEY, assemble_training_data
from comfyui_wanmasking.tests.unit.dataset_helpers import fresh_copy, pair_tiny, tiny_set, write_image  # noqa: F401

SETTINGS = SetSettings(width=32, height=32, buckets=True, length=9)


class FakeVae:
    """[F, H, W, 3] -> [1, 16, T, H/8, W/8]: each latent cell is the mean of its causal group's block
    (frame 0 alone, then groups of 4), repeated over 16 channels, so a test can read the pixels back."""

    def __init__(self):
        self.calls = 0

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        grey = pixels.mean(-1)
        groups = [grey[:1]] + [grey[1 + 4 * t: 5 + 4 * t] for t in range((grey.shape[0] - 1) // 4)]
        cells = torch.stack([einops.reduce(g, "f (h a) (w b) -> h w", "mean", a=8, b=8) for g in groups])
        return cells.unsqueeze(0).unsqueeze(0).expand(1, 16, -1, -1, -1).clone()


def captions(text: str) -> list:
    return [[torch.full((1, 2, 4), float(len(text))), {"text_length": len(text)}]]


def build(report, cache=None, vae=None):
    vae = vae or FakeVae()
    return build_training_set(report, SETTINGS, WAN21, encode_pixels=vae, encode_caption=captions, cache=cache,
                              caption_encoder_id="fake"), vae


def by_name(built) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {n: (b.latents[i], b.weights[i]) for b in built.buckets for i, n in enumerate(b.names)}


def test_every_item_is_encoded_once_with_its_own_weights(tiny_set):
    report = pair_tiny(tiny_set)
    built, vae = build(report)
    assert vae.calls == len(tiny_set["items"]) and sorted(built.encoded) == sorted(tiny_set["items"])
    items = by_name(built)
    for name, (latent, weights) in items.items():
        assert weights.shape == (1, *latent.shape[1:]), name          # the item's own latent grid
    assert torch.all(items["clip_plain"][1] == 1.0)                   # no mask: full weight
    assert float(items["portrait_alpha"][1].min()) == 0.0             # alpha tiers reach the grid
    group = items["group_alpha"][1][0, 0]                             # subject = left quarter
    assert float(group[:, group.shape[1] // 2:].max()) == 0.0
    assert {b.key for b in built.buckets} == {tuple(lat.shape[1:]) for lat, _ in items.values()}
    assert "Encoded 8 of 8 items, 0 from the cache" in built.text()


def test_the_mask_video_gives_the_frames_of_its_clip(tiny_set):
    """clip_perframe's mask is a square that moves with the clip's bright square. The background is still,
    so over time the fake VAE's latent changes only where the square goes: that change must line up with
    the change of the weights, frame by frame (and not with the weights played backwards)."""
    items = by_name(build(pair_tiny(tiny_set))[0])
    latent, weights = items["clip_perframe"]
    moving = (latent[0] - latent[0].mean(0)).flatten()
    heavy = weights[0] - weights[0].mean(0)

    def corr(a, b):
        return float(torch.corrcoef(torch.stack([a, b.flatten()]))[0, 1])

    assert corr(moving, heavy) > 0.8, corr(moving, heavy)
    assert corr(moving, heavy.flip(0)) < corr(moving, heavy) - 0.5


def test_a_rerun_loads_the_cache_bit_exactly_and_a_changed_file_reencodes_only_its_item(tiny_set, tmp_path):
    tiny = fresh_copy(tiny_set, tmp_path / "set")
    key = cache_settings(SETTINGS, WAN21, "vae-id", {"alpha_mask": True})
    first, _ = build(pair_tiny(tiny), TrainingSetCache(tmp_path / "cache", key))
    second, vae = build(pair_tiny(tiny), TrainingSetCache(tmp_path / "cache", key))
    assert vae.calls == 0 and second.captions_encoded == 0 and sorted(second.cached) == sorted(tiny["items"])
    for name, (latent, weights) in by_name(first).items():
        again = by_name(second)[name]
        assert torch.equal(latent, again[0]) and torch.equal(weights, again[1]), name
    mask = tiny["mask_folder"] / "photo_wide.png"
    write_image(mask, (255 - torch.arange(64, dtype=torch.uint8).repeat(32, 1)).numpy())
    third, vae = build(pair_tiny(tiny), TrainingSetCache(tmp_path / "cache", key))
    assert vae.calls == 1 and third.encoded == ["photo_wide"]
    assert not torch.equal(by_name(third)["photo_wide"][1], by_name(first)["photo_wide"][1])
    other = cache_settings(SetSettings(width=32, height=32, buckets=True, length=5), WAN21, "vae-id", {})
    _, vae = build(pair_tiny(tiny), TrainingSetCache(tmp_path / "cache", other))
    assert vae.calls == len(tiny["items"])                            # new settings: everything again


def latent_dicts(built):
    latents, conds = built.latent_outputs()
    return latents, conds


def test_the_trainer_takes_the_set_as_buckets_with_the_weights_of_each_item(tiny_set):
    built, _ = build(pair_tiny(tiny_set))
    latents, conds = latent_dicts(built)
    assert all(WEIGHTS_KEY in d and NAMES_KEY in d for d in latents)
    data = assemble_training_data(latents, conds, None, require_mask=True, bucket_mode=True)
    assert data.count == len(tiny_set["items"]) and data.sources["latents"] == data.count
    original = by_name(built)
    for bucket in data.buckets:
        for i, name in enumerate(bucket.names):
            assert torch.equal(bucket.weights[i], original[name][1]), name
            assert torch.equal(bucket.latents[i], original[name][0]), name
    assert "8 items in" in data.summary()


def test_the_trainer_refuses_what_would_misalign(tiny_set):
    built, _ = build(pair_tiny(tiny_set))
    latents, conds = latent_dicts(built)
    with pytest.raises(ValueError, match="bucket_mode on"):
        assemble_training_data(latents, conds, None, bucket_mode=False)
    with pytest.raises(ValueError, match="already carry"):
        assemble_training_data(latents, conds, torch.ones(1, 8, 8), bucket_mode=True)
    with pytest.raises(ValueError, match="conditionings for 8 training items"):
        assemble_training_data(latents, conds[:1], None, bucket_mode=True)
    plain = [{"samples": torch.zeros(2, 16, 3, 4, 4)}, {"samples": torch.zeros(1, 16, 2, 4, 4)}]
    one = [[[torch.zeros(1, 2, 4), {}]]]
    with pytest.raises(ValueError, match="cannot be matched to the items by order"):
        assemble_training_data(plain, one, torch.ones(3, 32, 32), bucket_mode=True)
    with pytest.raises(ValueError, match="require_mask"):
        assemble_training_data(plain, one, None, require_mask=True, bucket_mode=True)


def test_plain_latents_keep_todays_single_batch_path():
    """One LATENT of same-size clips and a loss_mask per item: one tensor, weights by item order, as before."""
    latents = [{"samples": torch.randn(2, 16, 3, 4, 4)}]
    mask = torch.zeros(2 * 9, 32, 32)
    mask[9:] = 1.0                                     # item 0 weight 0, item 1 weight 1
    data = assemble_training_data(latents, [[[torch.zeros(1, 2, 4), {}]]], mask, bucket_mode=False)
    assert data.buckets is None and data.latents.shape == (2, 16, 3, 4, 4)
    assert float(data.weights[0].max()) == 0.0 and float(data.weights[1].min()) == 1.0
    assert len(data.conds) == 2 and data.sources["loss_mask"] == 2
