"""Mask -> loss weights: the guide's transformation tables, resizing, and per-frame video masks on the
causal latent grid (frame 0 alone, then groups of 4)."""
import logging

import pytest
import torch

from comfyui_wanmasking.masking.geometry import WAN21, WAN22, FrameLayout
from comfyui_wanmasking.masking.training.weights import (
    PRESETS, TIERS, apply_gamma_floor, check_gamma, check_min_weight, compose_tiers, frames_to_latent,
    latent_loss_weights, normalize_mask, resize_weights, tier_preview, tier_weights,
)

# The guide's "Transformation Examples" table (seeds/003, "Mask Value Transformations"):
# (gamma, min_weight) -> Face, Body, Hair, Background, to 3 decimals.
GUIDE_TABLE = {
    "Default (gamma=1.0, min=0.0)": ((1.0, 0.0), (1.000, 0.502, 0.314, 0.000)),
    "Softer (gamma=0.5)": ((0.5, 0.0), (1.000, 0.709, 0.560, 0.000)),
    "Sharper (gamma=2.0)": ((2.0, 0.0), (1.000, 0.252, 0.099, 0.000)),
    "With floor (min=0.1)": ((1.0, 0.1), (1.000, 0.552, 0.383, 0.100)),
    "Recommended (gamma=0.7, min=0.05)": ((0.7, 0.05), (1.000, 0.622, 0.473, 0.050)),
}


def _row(gamma, min_weight, normalized):
    w = apply_gamma_floor(torch.tensor(normalized, dtype=torch.float64), gamma, min_weight)
    return [round(v, 3) for v in w.tolist()]


# ---- the guide's tables --------------------------------------------------------------------

def test_normalized_weight_column_of_the_tier_table():
    """'Our Weighted Mask Values': 255/128/80/0 -> 1.000/0.502/0.314/0.000."""
    assert {k: round(v, 3) for k, v in tier_weights().items()} == {
        "face": 1.0, "body": 0.502, "hair": 0.314, "background": 0.0}
    assert TIERS == {"face": 255, "body": 128, "hair": 80, "background": 0}


@pytest.mark.parametrize("name", [n for n in GUIDE_TABLE if not n.startswith("Recommended")])
def test_guide_table_rows_reproduced_to_3_decimals(name):
    """The guide computed its table from the rounded normalized column (0.502, 0.314); from those
    inputs every row matches exactly, and from the exact 8-bit values within one unit of the 3rd decimal."""
    (gamma, min_weight), expected = GUIDE_TABLE[name]
    assert _row(gamma, min_weight, [1.0, 0.502, 0.314, 0.0]) == list(expected)
    exact = list(tier_weights(gamma, min_weight).values())
    assert max(abs(a - b) for a, b in zip(exact, expected)) <= 0.0011


def test_guide_recommended_row_and_its_arithmetic_slip():
    """Recommended (gamma 0.7, min 0.05): face, hair and background match the guide to 3 decimals
    (hair within one unit: 0.472 vs 0.473), but the guide's body 0.622 does not follow from its own
    formula: 0.502**0.7 * 0.95 + 0.05 = 0.636. We follow the formula and pin both numbers here."""
    (gamma, min_weight), (face, body, hair, bg) = GUIDE_TABLE["Recommended (gamma=0.7, min=0.05)"]
    ours = tier_weights(gamma, min_weight)
    assert round(ours["face"], 3) == face and round(ours["background"], 3) == bg
    assert abs(ours["hair"] - hair) <= 0.0011
    assert round(ours["body"], 3) == 0.636 and body == 0.622
    assert round(0.502 ** 0.7 * 0.95 + 0.05, 3) == 0.636


def test_gamma_section_examples_to_2_decimals():
    """--mask_gamma section: 0.5 -> Body 0.71, Hair 0.56; 1.0 -> 0.50, 0.31; 2.0 -> 0.25, 0.10."""
    for gamma, body, hair in ((0.5, 0.71, 0.56), (1.0, 0.50, 0.31), (2.0, 0.25, 0.10)):
        w = tier_weights(gamma, 0.0)
        assert (round(w["face"], 2), round(w["body"], 2), round(w["hair"], 2), w["background"]) == (1.0, body, hair, 0.0)


def test_min_weight_section_example():
    """--mask_min_weight 0.1: Face 1.0, Body 0.55, Hair 0.38, Background 0.1."""
    w = tier_weights(1.0, 0.1)
    assert [round(v, 2) for v in w.values()] == [1.0, 0.55, 0.38, 0.1]


def test_presets_hold_the_guides_recommended_settings():
    assert PRESETS["recommended"] == (0.7, 0.05)
    assert PRESETS["face focused"] == (1.5, 0.02)
    assert PRESETS["style/clothing"] == (0.5, 0.1)
    assert PRESETS["prior preservation"] == (0.7, 0.0)
    for gamma, min_weight in PRESETS.values():
        check_gamma(gamma), check_min_weight(min_weight)


def test_gamma_is_applied_before_the_floor():
    w = torch.tensor([0.25])
    assert apply_gamma_floor(w, 2.0, 0.5).item() == pytest.approx(0.0625 * 0.5 + 0.5)
    assert apply_gamma_floor(w, 2.0, 0.5).item() != pytest.approx((0.25 * 0.5 + 0.5) ** 2)


# ---- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize("gamma", [0.0, -1.0, float("nan"), float("inf")])
def test_gamma_must_be_positive(gamma):
    with pytest.raises(ValueError, match=r"gamma must be > 0"):
        check_gamma(gamma)


@pytest.mark.parametrize("min_weight", [-0.01, 1.0, 1.5])
def test_min_weight_must_be_in_0_1(min_weight):
    with pytest.raises(ValueError, match=r"min_weight must be in range \[0, 1\)"):
        check_min_weight(min_weight)


def test_min_weight_zero_and_just_below_one_are_valid():
    assert check_min_weight(0.0) == 0.0 and check_min_weight(0.999) == 0.999


# ---- normalization -------------------------------------------------------------------------

def test_uint8_masks_are_divided_by_255():
    m = torch.tensor([[255, 128], [80, 0]], dtype=torch.uint8)
    out = normalize_mask(m)
    assert out.shape == (1, 2, 2) and out.dtype == torch.float32
    assert torch.allclose(out[0], torch.tensor([[1.0, 128 / 255], [80 / 255, 0.0]]))


def test_float_8bit_levels_are_divided_by_255_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        out = normalize_mask(torch.tensor([[255.0, 128.0], [80.0, 0.0]]))
    assert out.max() == 1.0 and out[0, 0, 1] == pytest.approx(128 / 255)
    assert "divided by 255" in caplog.text


def test_unit_range_masks_are_kept():
    m = torch.rand(3, 4, 4)
    assert torch.equal(normalize_mask(m), m)


@pytest.mark.parametrize("bad,match", [
    (torch.tensor([[-0.5, 1.0]]), r"values span"),
    (torch.tensor([[300.0, 0.0]]), r"values span"),
    (torch.tensor([[1.5, 0.0]]), r"not whole 8-bit numbers"),
    (torch.tensor([[float("nan"), 0.0]]), r"NaN"),
    (torch.zeros(1, 2, 2, 3), r"expected a MASK of shape"),
])
def test_bad_masks_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        normalize_mask(bad, "loss_mask")


# ---- resizing ------------------------------------------------------------------------------

def test_downscale_is_area_mean():
    m = torch.tensor([[[1.0, 0.0, 0.5, 0.5], [0.0, 1.0, 0.5, 0.5]]])  # 2x4 -> 1x2
    assert torch.allclose(resize_weights(m, (1, 2)), torch.tensor([[[0.5, 0.5]]]))


def test_upscale_is_nearest_and_keeps_discrete_tiers():
    tiers = torch.tensor([[[1.0, 128 / 255], [80 / 255, 0.0]]])
    up = resize_weights(tiers, (6, 6))
    assert set(up.unique().tolist()) == set(tiers.unique().tolist())
    assert torch.equal(up[0, :3, :3], torch.ones(3, 3))
    assert torch.equal(up[0, 3:, 3:], torch.zeros(3, 3))


def test_mixed_axes_shrink_by_area_and_grow_by_nearest():
    m = torch.tensor([[[0.0, 1.0], [1.0, 1.0]]])  # H 2 -> 1 (area), W 2 -> 4 (nearest)
    assert torch.allclose(resize_weights(m, (1, 4)), torch.tensor([[[0.5, 0.5, 1.0, 1.0]]]))


def test_downscale_preserves_the_mean_weight():
    m = torch.rand(2, 64, 48)
    assert torch.allclose(resize_weights(m, (8, 6)).mean(), m.mean(), atol=1e-6)


# ---- per-frame video masks on the latent grid -----------------------------------------------

def test_frame_zero_alone_then_groups_of_four_are_averaged():
    frames = torch.arange(9, dtype=torch.float32).reshape(1, 9, 1, 1)  # pixel frame f has value f
    out = frames_to_latent(frames, FrameLayout.PIXEL, 3, WAN21)
    assert out.flatten().tolist() == [0.0, 2.5, 6.5]  # {0}, mean{1..4}, mean{5..8}


def test_video_mask_reduced_with_causal_grouping_and_area():
    t, h, w = 5, 8, 8
    mask = torch.zeros(17, 64, 64)
    mask[0, :8, :8] = 1            # frame 0 -> latent 0, one full cell
    mask[5, :8, :8] = 1            # frame 5 -> latent 2 (frames 5..8): 1/4 of the group
    mask[9:13, :4, :8] = 1         # frames 9..12 -> latent 3: half of the cell in every frame
    out = latent_loss_weights(mask, (1, 16, t, h, w), WAN21)
    assert out.shape == (1, 1, t, h, w)
    assert out[0, 0, :, 0, 0].tolist() == [1.0, 0.0, 0.25, 0.5, 0.0]
    assert out[0, 0, :, 1:, :].abs().sum() == 0 and out[0, 0, :, :, 1:].abs().sum() == 0


def test_causal_grouping_differs_from_naive_uniform_grouping():
    """A mask only on pixel frame 4 belongs to latent 1 (frames 1..4), not latent 2 (frames 4..7 in a
    naive groups-of-4-from-0 split)."""
    mask = torch.zeros(9, 16, 16)
    mask[4] = 1
    out = latent_loss_weights(mask, (1, 16, 3, 2, 2), WAN21)
    assert out[0, 0, :, 0, 0].tolist() == [0.0, 0.25, 0.0]


def test_single_image_mask_is_broadcast_to_every_frame_and_item():
    m = torch.zeros(64, 64)
    m[:32] = 1
    out = latent_loss_weights(m, (3, 16, 4, 8, 8), WAN21)
    assert out.shape == (3, 1, 4, 8, 8)
    assert torch.equal(out[:, 0, :, :4], torch.ones(3, 4, 4, 8)) and out[:, 0, :, 4:].sum() == 0


def test_latent_frame_count_mask_is_used_per_latent_frame():
    m = torch.zeros(3, 8, 8)
    m[1] = 1
    out = latent_loss_weights(m, (1, 16, 3, 8, 8), WAN21)
    assert out[0, 0, :, 0, 0].tolist() == [0.0, 1.0, 0.0]


def test_one_video_mask_per_item_item_after_item():
    m = torch.cat([torch.ones(9, 16, 16), torch.zeros(9, 16, 16)])
    out = latent_loss_weights(m, (2, 16, 3, 2, 2), WAN21)
    assert out[0].min() == 1 and out[1].max() == 0


def test_wan22_uses_16px_cells():
    m = torch.zeros(9, 32, 32)
    m[:, :16, :16] = 1
    out = latent_loss_weights(m, (1, 48, 3, 2, 2), WAN22)
    assert out[0, 0, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_8bit_tier_mask_becomes_normalized_weights():
    m = torch.full((1, 16, 16), 128, dtype=torch.uint8)
    out = latent_loss_weights(m, (1, 16, 1, 2, 2), WAN21)
    assert torch.allclose(out, torch.full_like(out, 128 / 255))


@pytest.mark.parametrize("frames", [2, 8, 10, 16])
def test_frame_count_matching_neither_one_nor_the_video_is_an_error(frames):
    with pytest.raises(ValueError, match=rf"loss_mask: {frames} frames does not fit 1 training item\(s\) with 3 "
                                         r"latent frames.*Fix: make the mask as long as the clip"):
        latent_loss_weights(torch.ones(frames, 16, 16), (1, 16, 3, 2, 2), WAN21)


def test_no_mask_with_require_mask_is_an_error():
    with pytest.raises(ValueError, match=r"loss_mask: no mask is connected but require_mask is on, so 2 training "
                                         r"item\(s\) have no loss weights"):
        latent_loss_weights(None, (2, 16, 3, 2, 2), WAN21, require_mask=True)


def test_no_mask_without_require_mask_gives_full_weight_and_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        out = latent_loss_weights(None, (2, 16, 3, 2, 2), WAN21, require_mask=False)
    assert out.shape == (2, 1, 3, 2, 2) and out.min() == 1.0
    assert "full weight 1.0" in caplog.text


def test_items_without_a_mask_need_require_mask_off():
    m = torch.zeros(9, 16, 16)  # a mask for item 0 of 3
    m2 = torch.cat([m, m])      # masks for items 0 and 1 of 3
    with pytest.raises(ValueError, match=r"masks for 2 of 3 training items, so items 2..2 have no mask"):
        latent_loss_weights(m2, (3, 16, 3, 2, 2), WAN21, require_mask=True)
    out = latent_loss_weights(m2, (3, 16, 3, 2, 2), WAN21, require_mask=False)
    assert out[:2].max() == 0 and out[2].min() == 1


def test_non_video_latents_are_rejected():
    with pytest.raises(ValueError, match=r"latents: expected Wan video latents \[N,C,T,h,w\]"):
        latent_loss_weights(torch.ones(1, 16, 16), (1, 16, 2, 2), WAN21)


def test_other_aspect_ratio_is_stretched_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        latent_loss_weights(torch.ones(1, 16, 32), (1, 16, 1, 2, 2), WAN21)
    assert "another aspect ratio" in caplog.text


# ---- tiers and preview -----------------------------------------------------------------------

def test_compose_tiers_gives_face_priority_over_hair_and_body():
    body = torch.zeros(4, 4); body[:, :3] = 1
    hair = torch.zeros(4, 4); hair[0, :] = 1
    face = torch.zeros(4, 4); face[0:2, 0] = 1
    out = compose_tiers((1, 4, 4), face=face, body=body, hair=hair)
    assert out[0, 0, 0] == 1.0 and out[0, 1, 0] == 1.0          # face
    assert out[0, 0, 3] == pytest.approx(80 / 255)               # hair over background
    assert out[0, 0, 1] == pytest.approx(80 / 255)               # hair over body
    assert out[0, 2, 1] == pytest.approx(128 / 255)              # body
    assert out[0, 3, 3] == 0.0                                    # background


def test_compose_tiers_rejects_mismatched_regions():
    with pytest.raises(ValueError, match=r"face: shape \[1, 3, 3\] does not match"):
        compose_tiers((1, 4, 4), face=torch.ones(3, 3))


def test_tier_preview_colours_each_tier():
    raw = torch.tensor([[[1.0, 128 / 255, 80 / 255, 0.0, 0.7]]])
    weights = apply_gamma_floor(raw, 1.0, 0.1)
    img = tier_preview(raw, weights)
    assert img.shape == (1, 1, 5, 3)
    r, g, b = img[0, 0].unbind(-1)
    assert r[0] > g[0] and r[0] > b[0]      # face red
    assert g[1] > r[1] and g[1] > b[1]      # body green
    assert b[2] > r[2] and b[2] > g[2]      # hair blue
    assert img[0, 0, 3].max() < 0.1         # background dark
    assert torch.allclose(img[0, 0, 4], weights[0, 0, 4].expand(3))  # in-between value: grey = weight


def test_a_subject_mask_zeroes_everyone_else_in_a_group_photo():
    """Two people segmented alike (faces and bodies); the subject mask keeps the left one's tiers only."""
    face, body = torch.zeros(1, 8, 16), torch.zeros(1, 8, 16)
    body[:, 2:, 1:7] = body[:, 2:, 9:15] = 1
    face[:, 2:4, 3:5] = face[:, 2:4, 11:13] = 1
    subject = torch.zeros(1, 8, 16)
    subject[:, :, :8] = 1
    alone = compose_tiers((1, 8, 16), face=face, body=body)
    group = compose_tiers((1, 8, 16), face=face, body=body, subject=subject)
    assert torch.equal(group[..., :8], alone[..., :8])                  # the subject keeps its tiers
    assert float(alone[..., 8:].max()) == 1.0 and float(group[..., 8:].max()) == 0.0   # the bystander: 0
    with pytest.raises(ValueError, match="subject"):
        compose_tiers((1, 8, 16), face=face, subject=torch.ones(1, 4, 4))
