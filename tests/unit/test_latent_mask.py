"""Pixel mask -> latent noise mask conversion, for every reducer, and its inverse."""
import logging

import pytest
import torch
import torch.nn.functional as F

from comfyui_wanmasking.masking.geometry import WAN21, WAN22
from comfyui_wanmasking.masking.latent_mask import (
    SPATIAL_MODES, TEMPORAL_MODES, latent_mask_to_pixel, pixel_mask_to_latent, validate_mask,
)
from comfyui_wanmasking.tests.helpers.masks import moving_square


def latent_shape(t, h, w, b=1, c=16):
    return (b, c, t, h, w)


def native_reshape(mask, shape):
    """What comfy.utils.reshape_mask does for a 5D latent, channel 0 (see reference spec §1.3)."""
    m = mask.reshape(1, 1, -1, mask.shape[-2], mask.shape[-1])
    return F.interpolate(m, size=shape[2:], mode="trilinear")


# ---- shapes and layouts -----------------------------------------------------------------

def test_output_is_5d_at_exact_latent_size():
    out = pixel_mask_to_latent(torch.ones(17, 64, 48), latent_shape(5, 8, 6, b=2), WAN21)
    assert out.shape == (2, 1, 5, 8, 6) and out.dtype == torch.float32


def test_single_frame_broadcasts_to_all_latent_frames():
    m = torch.zeros(1, 64, 64)
    m[0, :8, :8] = 1
    out = pixel_mask_to_latent(m, latent_shape(5, 8, 8), WAN21)
    assert out[0, 0, :, 0, 0].tolist() == [1.0] * 5
    assert out.sum() == 5


def test_latent_frame_count_mask_is_used_per_latent_frame():
    m = torch.zeros(5, 64, 64)
    m[3] = 1
    out = pixel_mask_to_latent(m, latent_shape(5, 8, 8), WAN21)
    assert out[0, 0, :, 0, 0].tolist() == [0, 0, 0, 1, 0]


def test_2d_mask_is_one_frame():
    out = pixel_mask_to_latent(torch.ones(64, 64), latent_shape(3, 8, 8), WAN21)
    assert out.min() == 1


# ---- temporal -----------------------------------------------------------------------------

def test_frame0_alone_lands_on_latent0_only():
    m = torch.zeros(81, 64, 64)
    m[0] = 1
    for mode in ("max", "mean", "min"):
        out = pixel_mask_to_latent(m, latent_shape(21, 8, 8), WAN21, temporal=mode)
        assert out[0, 0, :, 0, 0].tolist() == [1.0] + [0.0] * 20, mode
    # native trilinear never reads frame 0: the mask disappears
    native = pixel_mask_to_latent(m, latent_shape(21, 8, 8), WAN21, temporal="trilinear", spatial="bilinear")
    assert native.max() == 0


def test_group_reducers_on_one_group():
    m = torch.zeros(9, 8, 8)
    m[5] = 1  # one of latent 2's four frames (5..8)
    got = {mode: pixel_mask_to_latent(m, latent_shape(3, 1, 1), WAN21, temporal=mode)[0, 0, :, 0, 0].tolist()
           for mode in ("max", "mean", "min")}
    assert got == {"max": [0, 0, 1], "mean": [0, 0, 0.25], "min": [0, 0, 0]}


def test_mask_on_frames_1_to_4_lands_on_latent1_not_latent0():
    m = torch.zeros(81, 8, 8)
    m[1:5] = 1
    ours = pixel_mask_to_latent(m, latent_shape(21, 1, 1), WAN21, temporal="max")[0, 0, :, 0, 0]
    assert ours.nonzero().flatten().tolist() == [1]
    native = native_reshape(m, latent_shape(21, 1, 1))[0, 0, :, 0, 0]
    assert native[0] > 0 and native[1] == 0  # the native misalignment this pack fixes


def test_fast_motion_is_fully_regenerated_with_temporal_max():
    m = moving_square(frames=81, size=64, side=8, speed=6, top=20)
    shape = latent_shape(21, 8, 8)
    effective = latent_mask_to_pixel(pixel_mask_to_latent(m, shape, WAN21, temporal="max"), WAN21)[0]
    # every pixel the object covers, on every frame, is regenerated
    assert torch.all(effective[m > 0] == 1)
    # native trilinear leaves part of the object in the kept region
    native_eff = latent_mask_to_pixel((native_reshape(m, shape) > 0.5).float(), WAN21)[0]
    assert (native_eff[m > 0] == 0).float().mean() > 0.2


def test_trilinear_reproduces_native_numbers():
    g = torch.Generator().manual_seed(0)
    m = torch.rand(81, 40, 56, generator=g)
    shape = latent_shape(21, 5, 7)
    ours = pixel_mask_to_latent(m, shape, WAN21, temporal="trilinear", spatial="bilinear")
    assert torch.equal(ours, native_reshape(m, shape))


def test_trilinear_weights_match_the_reference_table():
    # F=81 -> T=21: latent 0 reads frames 1 (0.571) and 2 (0.429); latent 3 reads frame 13 only
    shape = latent_shape(21, 1, 1)
    def weight(frame, t):
        m = torch.zeros(81, 8, 8)
        m[frame] = 1
        return pixel_mask_to_latent(m, shape, WAN21, temporal="trilinear", spatial="bilinear")[0, 0, t, 0, 0].item()
    assert weight(1, 0) == pytest.approx(4 / 7, abs=1e-3)
    assert weight(2, 0) == pytest.approx(3 / 7, abs=1e-3)
    assert weight(0, 0) == 0
    assert weight(13, 3) == pytest.approx(1.0, abs=1e-5)


# ---- spatial ------------------------------------------------------------------------------

def test_thin_2px_line_survives_max_and_area_but_not_native():
    m = torch.zeros(1, 64, 64)
    m[0, :, 9:11] = 1  # a vertical 2-px line inside latent column 1 (px 8..15), off its centre
    shape = latent_shape(1, 8, 8)
    assert pixel_mask_to_latent(m, shape, WAN21, spatial="max")[0, 0, 0, :, 1].tolist() == [1.0] * 8
    assert pixel_mask_to_latent(m, shape, WAN21, spatial="area")[0, 0, 0, :, 1].tolist() == [0.25] * 8
    assert pixel_mask_to_latent(m, shape, WAN21, spatial="min").max() == 0
    assert native_reshape(m, shape).max() == 0  # native point-samples px 11 and 12 only


def test_spatial_reducers_on_one_block():
    m = torch.zeros(1, 8, 8)
    m[0, :4, :] = 1  # top half of one 8x8 block
    got = {mode: pixel_mask_to_latent(m, latent_shape(1, 1, 1), WAN21, spatial=mode).item()
           for mode in ("max", "area", "min")}
    assert got == {"max": 1.0, "area": 0.5, "min": 0.0}
    assert pixel_mask_to_latent(m, latent_shape(1, 1, 1), WAN21, spatial="nearest").item() == 0.0  # px (4,4)


def test_wan22_16px_cells_on_a_2x2_latent():
    m = torch.zeros(1, 32, 32)
    m[0, 17, 30] = 1  # one pixel in cell (1, 1) of a 16 px grid
    out = pixel_mask_to_latent(m, latent_shape(1, 2, 2, c=48), WAN22, spatial="max")
    assert out[0, 0, 0].tolist() == [[0, 0], [0, 1]]
    area = pixel_mask_to_latent(m, latent_shape(1, 2, 2, c=48), WAN22, spatial="area")
    assert area[0, 0, 0, 1, 1].item() == pytest.approx(1 / 256)


def test_16x16_latent_grid():
    m = torch.zeros(1, 128, 128)
    m[0, 64:72, 8:16] = 1
    out = pixel_mask_to_latent(m, latent_shape(1, 16, 16), WAN21)
    assert out[0, 0, 0].nonzero().tolist() == [[8, 1]]


def test_mask_of_another_size_is_resized_with_a_warning(caplog):
    m = torch.zeros(1, 16, 16)
    m[0, :8, :8] = 1  # top-left quarter
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        out = pixel_mask_to_latent(m, latent_shape(1, 8, 8), WAN21)
    assert out[0, 0, 0, :4, :4].min() == 1 and out[0, 0, 0, 4:, :].max() == 0
    assert "resized to the latent grid" in caplog.text


# ---- grow ---------------------------------------------------------------------------------

def test_grow_and_shrink_in_latent_cells():
    m = torch.zeros(1, 64, 64)
    m[0, 24:40, 24:40] = 1  # cells 3..4
    shape = latent_shape(1, 8, 8)
    assert pixel_mask_to_latent(m, shape, WAN21, grow_cells=1).sum() == 16  # 2x2 -> 4x4
    assert pixel_mask_to_latent(m, shape, WAN21, grow_cells=-1).sum() == 0
    big = torch.zeros(1, 64, 64)
    big[0, 8:56, 8:56] = 1  # 6x6 cells -> 4x4
    assert pixel_mask_to_latent(big, shape, WAN21, grow_cells=-1).sum() == 16


# ---- batch --------------------------------------------------------------------------------

def test_per_sample_masks_for_a_batch():
    m = torch.zeros(2 * 9, 8, 8)
    m[0] = 1  # sample 0: frame 0
    m[9 + 8] = 1  # sample 1: frame 8 (latent 2)
    out = pixel_mask_to_latent(m, latent_shape(3, 1, 1, b=2), WAN21)
    assert out[:, 0, :, 0, 0].tolist() == [[1, 0, 0], [0, 0, 1]]


def test_shared_mask_broadcasts_over_the_batch():
    out = pixel_mask_to_latent(torch.ones(9, 8, 8), latent_shape(3, 1, 1, b=3), WAN21)
    assert out.shape == (3, 1, 3, 1, 1) and out.min() == 1


# ---- bad input ----------------------------------------------------------------------------

def test_bad_frame_count_names_input_and_fix():
    with pytest.raises(ValueError, match=r"mask: 80 frames does not fit a latent with 21 latent frames.*81"):
        pixel_mask_to_latent(torch.ones(80, 8, 8), latent_shape(21, 1, 1), WAN21)


def test_bad_batch_count_mentions_per_sample_option():
    with pytest.raises(ValueError, match=r"mask: 10 frames.*latent batch of 2.*6 or 18 frames"):
        pixel_mask_to_latent(torch.ones(10, 8, 8), latent_shape(3, 1, 1, b=2), WAN21)


@pytest.mark.parametrize("shape", [(8,), (1, 1, 8, 8), (1, 2, 3, 8, 8)])
def test_non_2d_3d_mask_is_rejected(shape):
    with pytest.raises(ValueError, match=r"mask: expected a MASK of shape \[H,W\] or \[frames,H,W\]"):
        validate_mask(torch.ones(shape))


def test_nan_is_rejected():
    m = torch.ones(1, 8, 8)
    m[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"mask: 1 NaN value"):
        pixel_mask_to_latent(m, latent_shape(1, 1, 1), WAN21)


def test_out_of_range_is_clamped_with_a_warning(caplog):
    m = torch.full((1, 8, 8), 2.0)
    m[0, 0, 0] = -1
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        v = validate_mask(m)
    assert v.min() == 0 and v.max() == 1 and "clamped" in caplog.text


def test_unknown_modes_are_rejected():
    with pytest.raises(ValueError, match="temporal: unknown mode"):
        pixel_mask_to_latent(torch.ones(1, 8, 8), latent_shape(1, 1, 1), WAN21, temporal="median")
    with pytest.raises(ValueError, match="spatial: unknown mode"):
        pixel_mask_to_latent(torch.ones(1, 8, 8), latent_shape(1, 1, 1), WAN21, spatial="median")


def test_every_mode_combination_keeps_range_and_shape():
    m = torch.rand(9, 24, 24, generator=torch.Generator().manual_seed(1))
    for t in TEMPORAL_MODES:
        for s in SPATIAL_MODES:
            out = pixel_mask_to_latent(m, latent_shape(3, 3, 3), WAN21, temporal=t, spatial=s)
            assert out.shape == (1, 1, 3, 3, 3) and 0 <= out.min() and out.max() <= 1, (t, s)


# ---- inverse ------------------------------------------------------------------------------

def test_inverse_paints_full_blocks_and_whole_groups():
    lm = torch.zeros(1, 1, 3, 2, 2)
    lm[0, 0, 1, 0, 1] = 1
    lm[0, 0, 0, 1, 0] = 0.5
    px = latent_mask_to_pixel(lm, WAN21)
    assert px.shape == (1, 9, 16, 16)
    assert px[0, 1:5, 0:8, 8:16].min() == 1  # latent 1 -> frames 1..4, cell (0,1) -> full 8x8 block
    assert px[0, 0, 8:16, 0:8].unique().tolist() == [0.5]  # latent 0 -> frame 0 only, no smoothing
    assert px.sum() == 4 * 64 + 0.5 * 64


def test_round_trip_is_identity_for_latent_masks():
    lm = (torch.rand(2, 1, 4, 3, 5, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    for g, c in ((WAN21, 16), (WAN22, 48)):
        px = latent_mask_to_pixel(lm, g)
        back = pixel_mask_to_latent(px.reshape(-1, *px.shape[-2:]), lm.shape[:1] + (c,) + lm.shape[2:], g)
        assert torch.equal(back, lm)
