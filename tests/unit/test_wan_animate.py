"""Wan-Animate builder: bg/mask pairing, causal packing of the character mask, reference and trim."""
import logging

import pytest
import torch

from masking.geometry import WAN21
from tests.unit.test_wan_fakes import FakeEncoder
from wan.animate import FACE_SIZE, build_animate_embeds, check_background_pairing

L, H, W = 17, 32, 32  # T = 5, latent 4x4


def build(**kw):
    enc = kw.pop("encoder", FakeEncoder())
    return build_animate_embeds(enc, length=L, height=H, width=W, geometry=WAN21, **kw), enc


def test_character_mask_frames_land_in_the_slots_of_their_own_causal_group():
    mask = torch.zeros(L, H, W)
    mask[6] = 1  # only frame 6 has character: latent 2 (frames 5..8), channel 1
    out, _ = build(bg_images=torch.rand(L, H, W, 3), mask=mask)
    cm = out.concat_mask
    assert cm.shape == (1, 4, 1 + 5, 4, 4)
    assert (cm[:, :, 0] == 0).all()  # reference latent: given
    hot = (cm[0, :, 1:, 0, 0] == 1).nonzero().tolist()
    assert hot == [[1, 2]]  # channel 1 of clip latent 2 = slot 9 = frame 6
    assert WAN21.slot_of_frame(6) == 4 * 2 + 1


def test_frame0_of_the_mask_fills_all_four_slots_of_latent_1():
    mask = torch.zeros(L, H, W)
    mask[0] = 1
    out, _ = build(bg_images=torch.rand(L, H, W, 3), mask=mask)
    assert (out.concat_mask[0, :, 1] == 1).all() and (out.concat_mask[0, :, 2:] == 0).all()


def test_background_is_encoded_and_reference_prepended_with_trim_1():
    bg = torch.full((L, H, W, 3), 0.3)
    out, enc = build(reference_image=torch.full((1, H, W, 3), 0.8), bg_images=bg, mask=torch.ones(L, H, W))
    ref_px, clip_px = enc.calls[:2]
    assert ref_px.shape == (1, H, W, 3) and torch.allclose(ref_px, torch.tensor(0.8))
    assert torch.allclose(clip_px, bg)
    assert out.concat_latent_image.shape == (1, 16, 6, 4, 4)
    assert out.trim_latent == 1 and out.latent_frames == 6


def test_without_background_everything_is_generated_on_gray_and_missing_reference_is_black():
    out, enc = build()
    assert torch.all(enc.calls[0] == 0.0)  # black reference
    assert torch.all(enc.calls[1] == 0.5)  # gray clip
    assert (out.concat_mask[:, :, 1:] == 1).all()


@pytest.mark.parametrize("bg,mask,missing", [(torch.rand(L, H, W, 3), None, "mask"), (None, torch.ones(L, H, W), "bg_images")])
def test_only_one_of_bg_images_and_mask_is_refused(bg, mask, missing):
    with pytest.raises(ValueError, match=rf"^{missing}: .* is connected but {missing} is not"):
        check_background_pairing(bg, mask)
    enc = FakeEncoder()
    with pytest.raises(ValueError, match=missing):
        build_animate_embeds(enc, length=L, height=H, width=W, geometry=WAN21, bg_images=bg, mask=mask)
    assert enc.calls == []  # refused before any encode


def test_pose_is_padded_by_repeating_its_last_frame_and_face_is_512_in_minus1_1(caplog):
    pose = torch.rand(9, H, W, 3)
    face = torch.full((L, 40, 40, 3), 1.0)
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        out, enc = build(pose_video=pose, face_video=face)
    assert "pose_video: 9 frames for a 17-frame clip; padded at the end with 8 frame(s) of repeating its last frame" in caplog.text
    pose_px = enc.calls[-1]
    assert torch.equal(pose_px[9:], pose[-1:].expand(8, H, W, 3))
    assert out.pose_video_latent.shape == (1, 16, 5, 4, 4)
    assert out.face_video_pixels.shape == (1, 3, L, FACE_SIZE, FACE_SIZE)
    assert torch.allclose(out.face_video_pixels, torch.tensor(1.0))


def test_single_background_image_and_mask_frame_apply_to_every_frame():
    out, enc = build(bg_images=torch.full((1, H, W, 3), 0.2), mask=torch.ones(1, H, W))
    assert enc.calls[1].shape == (L, H, W, 3) and torch.allclose(enc.calls[1], torch.tensor(0.2))
    assert (out.concat_mask[:, :, 1:] == 1).all() and out.frame_mask.shape == (L, 4, 4)
