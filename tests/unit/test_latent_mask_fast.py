"""pixel_mask_to_latent's one-pass reduction against the straightforward algorithm it replaced.

The reference below is the old code, written out: pad frame 0 into the 4 slots of latent 0, reduce
every latent's 4 slots with einops, then pool with torch. The fast path must give the same numbers
for every reducer pair, layout and size: bit-identical where only max/min/nearest are involved,
within 1e-6 where a mean is (the sums run in another order).
"""
import logging

import einops
import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from comfyui_wanmasking.masking.geometry import WAN21, WAN22, FrameLayout
from comfyui_wanmasking.masking.latent_mask import (
    SPATIAL_MODES, TEMPORAL_MODES, grow, pixel_mask_to_latent, reduce_time, split_batch,
)
from comfyui_wanmasking.masking.mask_input import validate_mask

log = logging.getLogger("WanMasking")


# ---- the reference: the algorithm before the one-pass rewrite ------------------------------

def reference_validate(mask, input_name="mask"):
    """Old validate_mask: isnan, any, then min and max, each a full pass."""
    if mask.dim() == 2:
        mask = mask.unsqueeze(0)
    if mask.is_floating_point() and torch.isnan(mask).any():
        raise ValueError(
            f"{input_name}: {int(torch.isnan(mask).sum())} NaN value(s) in a mask of shape {list(mask.shape)}. "
            f"Fix: check the node that made the mask (a division by zero, an empty normalization)."
        )
    mask = mask.float()
    lo, hi = float(mask.min()), float(mask.max())
    if lo < 0.0 or hi > 1.0:
        log.warning("%s: values span [%.4g, %.4g]; clamped to [0, 1].", input_name, lo, hi)
        mask = mask.clamp(0.0, 1.0)
    return mask


def reference_time(x, t, layout, mode, geometry):
    if mode == "trilinear":
        return F.interpolate(x.unsqueeze(1), size=(t, *x.shape[-2:]), mode="trilinear").squeeze(1)
    if layout is FrameLayout.BROADCAST:
        return x.expand(-1, t, -1, -1)
    if layout is FrameLayout.LATENT:
        return x
    s = geometry.time_stride
    slots = torch.cat([x[:, :1]] * (s - 1) + [x], dim=1)  # frame 0 into all of latent 0's slots
    return einops.reduce(slots, "b (t s) h w -> b t h w", mode, s=s)


def reference_space(x, size, mode):
    if mode == "max":
        return F.adaptive_max_pool2d(x, size)
    if mode == "area":
        return F.adaptive_avg_pool2d(x, size)
    if mode == "min":
        return -F.adaptive_max_pool2d(-x, size)
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest-exact")
    return F.interpolate(x, size=size, mode="bilinear")


def reference(mask, latent_shape, geometry, temporal="max", spatial="max", grow_cells=0):
    b, _, t, h, w = latent_shape
    mask = reference_validate(mask)
    per_sample, layout = split_batch(mask, b, t, geometry)
    if temporal == "trilinear" and spatial == "bilinear":
        out = F.interpolate(per_sample.unsqueeze(1), size=(t, h, w), mode="trilinear").squeeze(1)
    else:
        out = reference_space(reference_time(per_sample, t, layout, temporal, geometry), (h, w), spatial)
    out = grow(out, grow_cells).clamp(0.0, 1.0)
    return out.expand(b, -1, -1, -1).unsqueeze(1).contiguous()


def exact(temporal, spatial):
    """Pairs whose every step picks an input value (no sum): these must match bit for bit."""
    return temporal != "mean" and spatial != "area"


def assert_same(got, want, temporal, spatial):
    assert got.shape == want.shape and got.dtype == want.dtype == torch.float32
    if exact(temporal, spatial):
        assert torch.equal(got, want), (temporal, spatial, (got - want).abs().max().item())
    else:
        diff = (got - want).abs().max().item()
        assert diff <= 1e-6, (temporal, spatial, diff)


def random_mask(*shape, seed=0, kind="soft"):
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(*shape, generator=g)
    if kind == "binary":
        return (m > 0.7).float()
    if kind == "levels":  # few distinct values: many ties inside a window
        return (m * 4).floor() / 4
    if kind == "wide":  # outside [0, 1]: clamped, with a warning
        return m * 3 - 1
    return m


# ---- every pair, every layout -----------------------------------------------------------

PAIRS = [(t, s) for t in TEMPORAL_MODES for s in SPATIAL_MODES]

CASES = {
    # name: (mask shape, latent shape, geometry)
    "pixel frames, exact grid": ((17, 24, 40), (1, 16, 5, 3, 5), WAN21),
    "pixel frames, odd grid": ((9, 56, 72), (1, 16, 3, 7, 9), WAN21),
    "one latent frame": ((1, 16, 24), (1, 16, 1, 2, 3), WAN21),
    "latent frames": ((5, 24, 40), (1, 16, 5, 3, 5), WAN21),
    "broadcast": ((1, 24, 40), (1, 16, 5, 3, 5), WAN21),
    "2d mask": ((24, 40), (1, 16, 3, 3, 5), WAN21),
    "another size, not a multiple": ((13, 22, 37), (1, 16, 4, 3, 5), WAN21),
    "another size, one axis a multiple": ((9, 24, 37), (1, 16, 3, 3, 5), WAN21),
    "another size, 2x the grid": ((9, 48, 80), (1, 16, 3, 3, 5), WAN21),
    "another size, odd factors": ((9, 21, 25), (1, 16, 3, 7, 5), WAN21),
    "smaller than the grid": ((9, 4, 6), (1, 16, 3, 8, 12), WAN21),
    "per-sample pixel frames": ((2 * 9, 16, 24), (2, 16, 3, 2, 3), WAN21),
    "per-sample latent frames": ((3 * 4, 16, 24), (3, 16, 4, 2, 3), WAN21),
    "shared over a batch": ((9, 16, 24), (2, 16, 3, 2, 3), WAN21),
    "Wan 2.2 16px cells": ((13, 48, 32), (1, 48, 4, 3, 2), WAN22),
    "Wan 2.2, per sample": ((2 * 5, 32, 48), (2, 48, 2, 2, 3), WAN22),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("temporal,spatial", PAIRS)
def test_equals_the_padded_reference(case, temporal, spatial):
    mask_shape, latent_shape, geometry = CASES[case]
    for seed, kind in ((0, "soft"), (1, "binary"), (2, "levels")):
        m = random_mask(*mask_shape, seed=seed, kind=kind)
        got = pixel_mask_to_latent(m, latent_shape, geometry, temporal, spatial)
        assert_same(got, reference(m, latent_shape, geometry, temporal, spatial), temporal, spatial)


@pytest.mark.parametrize("grow_cells", [-2, -1, 1, 3])
@pytest.mark.parametrize("temporal,spatial", [("max", "max"), ("mean", "area"), ("min", "min"), ("max", "area"),
                                              ("mean", "max"), ("min", "nearest"), ("trilinear", "bilinear")])
def test_grow_equals_the_reference(grow_cells, temporal, spatial):
    m = random_mask(2 * 17, 48, 64, seed=3, kind="binary")
    shape = (2, 16, 5, 6, 8)
    got = pixel_mask_to_latent(m, shape, WAN21, temporal, spatial, grow_cells)
    assert_same(got, reference(m, shape, WAN21, temporal, spatial, grow_cells), temporal, spatial)


@pytest.mark.parametrize("temporal,spatial", PAIRS)
def test_out_of_range_values_are_clamped_first_as_before(temporal, spatial, caplog):
    m = random_mask(9, 24, 40, seed=4, kind="wide")
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        got = pixel_mask_to_latent(m, (1, 16, 3, 3, 5), WAN21, temporal, spatial)
    ours = caplog.messages
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        want = reference(m, (1, 16, 3, 3, 5), WAN21, temporal, spatial)
    assert ours == caplog.messages and "clamped to [0, 1]" in ours[0]
    assert_same(got, want, temporal, spatial)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64, torch.uint8, torch.bool])
def test_other_dtypes_equal_the_reference(dtype):
    m = random_mask(9, 24, 40, seed=5, kind="binary").to(dtype)
    for temporal, spatial in (("max", "max"), ("mean", "area")):
        got = pixel_mask_to_latent(m, (1, 16, 3, 3, 5), WAN21, temporal, spatial)
        assert_same(got, reference(m, (1, 16, 3, 3, 5), WAN21, temporal, spatial), temporal, spatial)


def test_non_contiguous_mask_equals_the_reference():
    image = random_mask(17, 24, 40, 3, seed=6)
    m = image[..., 1]  # what 'Convert Image to Mask' hands over: a strided view
    assert not m.is_contiguous()
    for temporal, spatial in (("max", "max"), ("mean", "area"), ("min", "bilinear")):
        got = pixel_mask_to_latent(m, (1, 16, 5, 3, 5), WAN21, temporal, spatial)
        assert_same(got, reference(m, (1, 16, 5, 3, 5), WAN21, temporal, spatial), temporal, spatial)


def test_chunks_of_any_size_give_the_same_numbers(monkeypatch):
    import comfyui_wanmasking.masking.latent_mask as latent_mask
    m = random_mask(2 * 25, 16, 24, seed=7)
    shape = (2, 16, 7, 2, 3)
    for temporal, spatial in (("max", "max"), ("mean", "area"), ("min", "bilinear"), ("max", "area")):
        want = reference(m, shape, WAN21, temporal, spatial)
        for pixels in (1, 16 * 24, 3 * 16 * 24, 1 << 30):  # 1 latent frame, 3 (a ragged last chunk), all
            monkeypatch.setattr(latent_mask, "CHUNK_PIXELS", pixels)
            assert_same(pixel_mask_to_latent(m, shape, WAN21, temporal, spatial), want, temporal, spatial)


def test_a_mask_that_requires_grad_gives_the_same_numbers_and_a_gradient():
    m = random_mask(17, 24, 40, seed=9).requires_grad_()
    for temporal, spatial in (("max", "max"), ("mean", "area"), ("min", "nearest")):
        got = pixel_mask_to_latent(m, (1, 16, 5, 3, 5), WAN21, temporal, spatial)
        assert_same(got.detach(), reference(m.detach(), (1, 16, 5, 3, 5), WAN21, temporal, spatial),
                    temporal, spatial)
        (grad,) = torch.autograd.grad(got.sum(), m)
        assert grad.abs().sum() > 0


def test_reduce_time_equals_the_padded_reference():
    x = random_mask(2, 13, 8, 8, seed=8)
    for mode in TEMPORAL_MODES:
        got = reduce_time(x, 4, FrameLayout.PIXEL, mode, WAN21)
        want = reference_time(x, 4, FrameLayout.PIXEL, mode, WAN21)
        assert_same(got, want, mode, "max")


def test_latent0_is_frame0_and_latent_t_its_four_frames():
    # Guards the group boundaries themselves: a one-hot frame lands on exactly its latent frame.
    for f in range(17):
        m = torch.zeros(17, 8, 8)
        m[f] = 1
        out = pixel_mask_to_latent(m, (1, 16, 5, 1, 1), WAN21, "max", "max")[0, 0, :, 0, 0]
        assert out.nonzero().flatten().tolist() == [WAN21.latent_index_of_frame(f)], f
        mean = pixel_mask_to_latent(m, (1, 16, 5, 1, 1), WAN21, "mean", "area")[0, 0, :, 0, 0]
        assert mean.max().item() == (1.0 if f == 0 else 0.25), f


# ---- the geometry helper ------------------------------------------------------------------

def test_causal_groups_match_frame_group():
    for geometry in (WAN21, WAN22):
        for t in (1, 2, 5, 21):
            f = geometry.pixel_frames(t)
            x = torch.arange(f).float().view(1, f, 1)
            first, rest = geometry.causal_groups(x, dim=1)
            assert first.flatten().tolist() == list(geometry.frame_group(0))
            assert rest.shape == (1, t - 1, geometry.time_stride, 1)
            for latent in range(1, t):
                assert rest[0, latent - 1, :, 0].tolist() == list(geometry.frame_group(latent))
            storage = x.untyped_storage().data_ptr()  # views of x, no copy
            assert first.untyped_storage().data_ptr() == rest.untyped_storage().data_ptr() == storage


def test_causal_groups_reject_frame_counts_not_1_plus_4k():
    with pytest.raises(ValueError, match=r"1\+4k frames"):
        WAN21.causal_groups(torch.zeros(8, 2, 2), dim=0)


# ---- validation: one pass, same words -----------------------------------------------------

def test_nan_message_is_unchanged():
    m = torch.rand(9, 8, 8)
    m[3, 1, 2] = float("nan")
    m[7, 0, 0] = float("nan")
    with pytest.raises(ValueError) as old:
        reference_validate(m)
    with pytest.raises(ValueError) as new:
        validate_mask(m)
    assert str(new.value) == str(old.value)
    assert str(new.value).startswith("mask: 2 NaN value(s) in a mask of shape [9, 8, 8]. Fix:")


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_nan_in_other_float_dtypes_is_found(dtype):
    m = torch.rand(1, 8, 8).to(dtype)
    m[0, 7, 7] = float("nan")
    with pytest.raises(ValueError, match=r"control: 1 NaN value"):
        validate_mask(m, "control")


def test_empty_mask_still_raises_torchs_error():
    with pytest.raises(RuntimeError) as old:
        reference_validate(torch.zeros(0, 8, 8))
    with pytest.raises(RuntimeError) as new:
        validate_mask(torch.zeros(0, 8, 8))
    assert str(new.value) == str(old.value)


def test_float32_mask_in_range_is_not_copied():
    m = torch.rand(9, 16, 16)
    assert validate_mask(m).data_ptr() == m.data_ptr()
    assert validate_mask(m[0]).data_ptr() == m.data_ptr()


def largest_allocation(fn):
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max((e.cpu_memory_usage for e in prof.events()), default=0)


def test_validation_allocates_nothing_mask_sized():
    m = torch.rand(33, 64, 96)
    # the old isnan pass alone allocated a bool tensor of a quarter of the mask's bytes
    assert largest_allocation(lambda: validate_mask(m)) < m.numel() * m.element_size() // 16


@pytest.mark.parametrize("temporal,spatial", [("max", "max"), ("mean", "area"), ("min", "min"), ("max", "area"),
                                              ("mean", "bilinear"), ("max", "nearest")])
def test_conversion_makes_no_full_size_copy(temporal, spatial, monkeypatch):
    import comfyui_wanmasking.masking.latent_mask as latent_mask
    monkeypatch.setattr(latent_mask, "CHUNK_PIXELS", 2 * 64 * 96)  # 2 latent frames per chunk
    m = torch.rand(33, 64, 96)
    biggest = largest_allocation(lambda: pixel_mask_to_latent(m, (1, 16, 9, 8, 12), WAN21, temporal, spatial))
    # the padded copy was (33+3)/33 of the mask; the group-reduced chunk is 2/33 of it
    assert biggest <= 2 * 64 * 96 * 4
