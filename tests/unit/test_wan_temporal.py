"""WanMaskTemporal core: keep ranges -> MASK [F, H, W] with 1 = generate."""
import pytest
import torch

from comfyui_wanmasking.wan.temporal import keep_frames, temporal_mask


def test_keep_first_and_last_frames():
    m = temporal_mask(81, 16, 24, "0-0, 77-80")
    assert m.shape == (81, 16, 24) and m.dtype == torch.float32
    kept = (m.flatten(1).amax(1) == 0).nonzero().flatten().tolist()
    assert kept == [0, 77, 78, 79, 80]
    assert (m[1:77] == 1).all()


def test_empty_keep_generates_everything_and_negative_ranges_count_from_the_end():
    assert (keep_frames(9, "") == 1).all()
    assert keep_frames(9, "-2:-1").tolist() == [1] * 7 + [0, 0]
    assert keep_frames(9, "4").tolist() == [1, 1, 1, 1, 0, 1, 1, 1, 1]


@pytest.mark.parametrize("keep,pattern", [
    ("0-9", r"keep: frame index 9 in '0-9' is outside the clip of 9 frames"),
    ("a-b", r"keep: 'a-b' in 'a-b' is not a frame range"),
    ("5-2", r"ends before it starts"),
])
def test_bad_ranges(keep, pattern):
    with pytest.raises(ValueError, match=pattern):
        keep_frames(9, keep)
