"""VACE context builder: inactive/reactive halves, 64-channel packing, reference + trim, bad input."""
import logging

import pytest
import torch

from comfyui_wanmasking.masking.geometry import WAN22
from comfyui_wanmasking.tests.unit.test_wan_fakes import FakeEncoder
from comfyui_wanmasking.wan.vace import binarize, build_vace_embeds, pack_vace_mask

L, H, W = 17, 32, 32  # T = 5, latent 4x4


def build(**kw):
    enc = kw.pop("encoder", FakeEncoder())
    kw.setdefault("length", L)
    kw.setdefault("height", H)
    kw.setdefault("width", W)
    kw.setdefault("latent_mean", torch.linspace(-1, 1, 16))
    return build_vace_embeds(enc, **kw), enc


def test_inactive_and_reactive_split_the_video_by_the_mask():
    video = torch.rand(L, H, W, 3)
    mask = torch.zeros(L, H, W)
    mask[:, :, 16:] = 1  # right half reactive
    out, enc = build(control_video=video, control_masks=mask)
    inactive, reactive = enc.calls
    assert torch.allclose(inactive[:, :, :16], video[:, :, :16]) and torch.all(inactive[:, :, 16:] == 0.5)
    assert torch.allclose(reactive[:, :, 16:], video[:, :, 16:]) and torch.all(reactive[:, :, :16] == 0.5)
    # in the VAE's [-1, 1] space: inactive = (1-m)*v, reactive = m*v
    v = video * 2 - 1
    m = mask[..., None]
    assert torch.allclose(inactive * 2 - 1, (1 - m) * v, atol=1e-6)
    assert torch.allclose(reactive * 2 - 1, m * v, atol=1e-6)
    assert out.vace_frames.shape == (1, 32, 5, 4, 4)
    assert out.vace_mask.shape == (1, 64, 5, 4, 4)
    assert out.trim_latent == 0 and out.latent_frames == 5


def test_vace_mask_is_an_8x8_unshuffle_with_channel_8dy_plus_dx():
    mask = torch.zeros(L, H, W)
    mask[:, 8 + 3, 16 + 5] = 1  # cell (1, 2), pixel (dy=3, dx=5)
    out, _ = build(control_masks=mask, threshold=0.5)
    hot = out.vace_mask[0].nonzero()
    assert set(hot[:, 0].tolist()) == {3 * 8 + 5}
    assert set(map(tuple, hot[:, 2:].tolist())) == {(1, 2)}


def test_vace_mask_time_uses_nearest_exact_frames_1_5_9_13_17_of_81():
    mask = torch.zeros(81, 8, 8)
    for f in range(81):
        mask[f, 0, 0] = f / 100
    packed = pack_vace_mask(mask, 21)
    picked = (packed[0, 0, :, 0, 0] * 100).round().int().tolist()
    assert picked[:8] == [1, 5, 9, 13, 17, 21, 25, 28]
    assert picked[-1] == 79


def test_reference_is_prepended_with_empty_half_and_zero_mask():
    mean = torch.linspace(-1, 1, 16)
    out, enc = build(reference_image=torch.full((2, H, W, 3), 0.25), latent_mean=mean)
    assert len(enc.calls) == 3 and enc.calls[2].shape == (1, H, W, 3)
    assert out.vace_frames.shape == (1, 32, 6, 4, 4) and out.vace_mask.shape == (1, 64, 6, 4, 4)
    assert out.trim_latent == 1 and out.latent_frames == 6
    assert torch.allclose(out.vace_frames[0, :16, 0], torch.tensor(0.25 * 2 - 1))
    assert torch.equal(out.vace_frames[0, 16:, 0], mean.reshape(16, 1, 1).expand(16, 4, 4))
    assert (out.vace_mask[:, :, 0] == 0).all() and (out.vace_mask[:, :, 1:] == 1).all()


def test_missing_inputs_mean_gray_video_and_all_reactive():
    out, enc = build()
    assert all(torch.all(c == 0.5) for c in enc.calls)
    assert (out.vace_mask == 1).all()


def test_soft_mask_is_binarized_with_a_warning(caplog):
    mask = torch.full((L, H, W), 0.6)
    mask[:, :8] = 0.3
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        out, _ = build(control_masks=mask, threshold=0.5)
    assert "binarized at threshold 0.5" in caplog.text
    assert set(out.vace_mask.unique().tolist()) == {0.0, 1.0}
    assert (out.vace_mask[:, :, :, 0] == 0).all() and (out.vace_mask[:, :, :, 1:] == 1).all()
    assert torch.equal(binarize(mask, 0.0), mask)


def test_wrong_frame_counts_are_padded_or_trimmed_with_warnings(caplog):
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        out, enc = build(control_video=torch.full((9, H, W, 3), 0.9), control_masks=torch.zeros(20, H, W))
    assert "control_video: 9 frames for a 17-frame clip; padded at the end with 8 frame(s) of the value 0.5" in caplog.text
    assert "control_masks: 20 frames for a 17-frame clip; the last 3 frame(s) are not used" in caplog.text
    inactive = enc.calls[0]
    assert torch.allclose(inactive[:9], torch.tensor(0.9)) and torch.all(inactive[9:] == 0.5)


def test_single_frame_mask_applies_to_every_frame():
    m = torch.zeros(1, H, W)
    m[:, :, :16] = 1
    out, _ = build(control_masks=m)
    assert (out.vace_mask[0, :, :, :, :2] == 1).all() and (out.vace_mask[0, :, :, :, 2:] == 0).all()


@pytest.mark.parametrize("kw,pattern", [
    (dict(length=15), r"length: 15 frames is not of the form 1\+4k"),
    (dict(height=24), r"width/height: 32x24 \(WxH\) is not a multiple of 16"),
    (dict(geometry=WAN22, encoder=FakeEncoder(WAN22)), r"vae: VACE needs the Wan 2.1 VAE"),
    (dict(control_masks=torch.zeros(L, H, W, 3)), r"control_masks: expected a MASK"),
])
def test_bad_input(kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        build(**kw)
