"""Wan-Animate builder: bg/mask pairing, causal packing of the character mask, reference and trim."""
import logging

import pytest
import torch

from comfyui_wanmasking.masking.geometry import WAN21
from comfyui_wanmasking.tests.unit.test_wan_fakes import FakeEncoder
from comfyui_wanmasking.wan.animate import FACE_SIZE, build_animate_embeds, check_background_pairing

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


# ---- long videos by chunks: continue_motion and video_frame_offset ------------------------------------

def frames(n, h=H, w=W, c=3):
    """Frame f filled with the value f / 100, so a test can tell which source frame landed where."""
    return (torch.arange(n, dtype=torch.float32) / 100).view(n, 1, 1, 1).expand(n, h, w, c).contiguous()


def test_continue_motion_frames_open_the_clip_as_given_in_exactly_their_slots():
    motion = torch.full((7, H, W, 3), 0.9)  # 7 frames given; the last 5 are used
    out, enc = build(continue_motion=motion, continue_motion_max_frames=5, video_frame_offset=40)
    clip_px = enc.calls[1]
    assert torch.allclose(clip_px[:5], torch.tensor(0.9)) and torch.allclose(clip_px[5:], torch.tensor(0.5))
    assert (out.frame_mask[:5] == 0).all() and (out.frame_mask[5:] == 1).all()
    slots = out.concat_mask[0, :, 1:].transpose(0, 1).reshape(-1, 4, 4)  # [4T, h, w], slot 4t+c
    given = [s for s in range(slots.shape[0]) if (slots[s] == 0).all()]
    assert given == [0, 1, 2, 3, 4, 5, 6, 7]  # frame 0 in slots 0..3, frames 1..4 in slots 4..7
    assert out.trim_image == 5 and out.video_frame_offset == 40 - 5 + L


def test_three_motion_frames_leave_the_rest_of_their_latent_group_generated():
    out, _ = build(continue_motion=torch.rand(3, H, W, 3), continue_motion_max_frames=5)
    slots = out.concat_mask[0, :, 1:].transpose(0, 1).reshape(-1, 4, 4)
    assert [int(slots[s, 0, 0]) for s in range(8)] == [0, 0, 0, 0, 0, 0, 1, 1]  # frames 3, 4 generated
    assert out.trim_image == 3


def test_video_frame_offset_seeks_every_driving_video_back_by_the_motion_frames():
    src = 60
    mask = torch.zeros(src, H, W)
    mask[30:] = 1
    out, enc = build(continue_motion=torch.rand(5, H, W, 3), video_frame_offset=25, pose_video=frames(src),
                     face_video=frames(src, 8, 8), bg_images=frames(src), mask=mask)
    start = 25 - 5
    clip_px, pose_px = enc.calls[1], enc.calls[2]
    assert torch.allclose(pose_px[:, 0, 0, 0], torch.arange(start, start + L) / 100)
    assert torch.allclose(clip_px[5:, 0, 0, 0], torch.arange(start + 5, start + L) / 100)  # bg after the motion
    assert torch.allclose(out.face_video_pixels[0, 0, :, 0, 0], torch.arange(start, start + L) / 100 * 2 - 1)
    # mask: source frames >= 30 are character; motion frames (0..4) stay given whatever the mask says
    assert out.frame_mask[:, 0, 0].tolist() == [0.0] * 5 + [0.0] * 5 + [1.0] * (L - 10)
    assert out.video_frame_offset == start + L


def test_offset_without_motion_seeks_as_is_and_a_still_background_is_not_seeked():
    out, enc = build(video_frame_offset=10, pose_video=frames(40), bg_images=frames(1), mask=torch.ones(1, H, W))
    assert torch.allclose(enc.calls[2][:, 0, 0, 0], torch.arange(10, 10 + L) / 100)
    assert torch.allclose(enc.calls[1], torch.tensor(0.0))  # the single bg frame (value 0) for every frame
    assert out.trim_image == 0 and out.video_frame_offset == 10 + L


def test_a_driving_video_that_ended_is_an_error_not_dropped():
    enc = FakeEncoder()
    with pytest.raises(ValueError, match=r"^pose_video: 30 frame\(s\), but this chunk starts at frame 35 .* the video "
                                         r"has ended\. Fix: stop chunking here"):
        build_animate_embeds(enc, length=L, height=H, width=W, geometry=WAN21, pose_video=frames(30),
                             continue_motion=torch.rand(5, H, W, 3), video_frame_offset=40)
    assert enc.calls == []


def test_motion_frames_filling_the_clip_are_an_error():
    with pytest.raises(ValueError, match=r"^continue_motion: 20 motion frame\(s\) \(20 given, continue_motion_max_frames 21\) fill the whole 17-frame clip"):
        build(continue_motion=torch.rand(20, H, W, 3), continue_motion_max_frames=21)


def test_offset_below_the_motion_count_reads_from_frame_0_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        out, enc = build(continue_motion=torch.rand(5, H, W, 3), video_frame_offset=2, pose_video=frames(40))
    assert "video_frame_offset: 2 is less than the 5 continue_motion frame(s)" in caplog.text
    assert torch.allclose(enc.calls[2][:, 0, 0, 0], torch.arange(0, L) / 100)
    assert out.video_frame_offset == L
