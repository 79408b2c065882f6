"""The causal frame/pixel mapping every part of the pack relies on."""
import pytest
import torch

from comfyui_wanmasking.masking.geometry import WAN21, WAN22, FrameLayout, geometry_for_channels


def test_frame_groups_are_frame0_alone_then_fours():
    assert list(WAN21.frame_group(0)) == [0]
    assert list(WAN21.frame_group(1)) == [1, 2, 3, 4]
    assert list(WAN21.frame_group(20)) == [77, 78, 79, 80]


def test_every_pixel_frame_belongs_to_exactly_its_group():
    index = WAN21.frame_to_latent_index(81)
    for t in range(21):
        assert [f for f in range(81) if index[f] == t] == list(WAN21.frame_group(t))
        for f in WAN21.frame_group(t):
            assert WAN21.latent_index_of_frame(f) == t


def test_frame_counts():
    assert WAN21.latent_frames(81) == 21 and WAN21.pixel_frames(21) == 81
    assert WAN21.latent_frames(1) == 1 and WAN21.pixel_frames(1) == 1
    assert WAN21.check_pixel_frames(17, "video") == 5
    with pytest.raises(ValueError, match=r"video: 80 frames is not of the form 1\+4k.*drop the last 3.*Use 77 or 81"):
        WAN21.check_pixel_frames(80, "video")


def test_slots_repeat_frame0_four_times():
    x = torch.arange(9).float()  # 9 pixel frames -> 3 latents -> 12 slots
    slots = WAN21.frames_to_slots(x, dim=0)
    assert slots.tolist() == [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert WAN21.slot_of_frame(0) == 3 and WAN21.slot_of_frame(5) == 8
    for f in range(9):  # slot of frame f is inside its latent's 4 slots
        assert WAN21.slot_of_frame(f) // 4 == WAN21.latent_index_of_frame(f)


@pytest.mark.parametrize("n,expected", [(1, FrameLayout.BROADCAST), (21, FrameLayout.LATENT), (81, FrameLayout.PIXEL)])
def test_resolve_frames(n, expected):
    assert WAN21.resolve_frames(n, 21, "mask") is expected


def test_single_latent_frame_is_latent_layout():
    assert WAN21.resolve_frames(1, 1, "mask") is FrameLayout.LATENT


def test_resolve_frames_error_names_input_counts_and_fix():
    with pytest.raises(ValueError) as e:
        WAN21.resolve_frames(80, 21, "mask")
    msg = str(e.value)
    assert "mask: 80 frames" in msg and "21" in msg and "81" in msg and "Fix" in msg


def test_spatial_strides_and_checks():
    assert WAN21.latent_size(480, 832) == (60, 104)
    assert WAN22.latent_size(704, 1280) == (44, 80)
    assert WAN21.model_multiple == 16 and WAN22.model_multiple == 32
    with pytest.raises(ValueError, match=r"width: 830x480.*multiple of 16.*832x480"):
        WAN21.check_spatial(480, 830, "width")
    WAN22.check_spatial(704, 1280, "size")
    with pytest.raises(ValueError, match="multiple of 32"):
        WAN22.check_spatial(720, 1280, "size")


def test_geometry_for_channels():
    assert geometry_for_channels(16) is WAN21
    assert geometry_for_channels(48) is WAN22
    with pytest.raises(ValueError, match=r"samples: a latent with 4 channels is not a Wan video latent"):
        geometry_for_channels(4)
