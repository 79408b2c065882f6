"""The per-window math of WanMaskContextWindows (wan/context_windows.py), without ComfyUI."""
from __future__ import annotations

import pytest
import torch

from comfyui_wanmasking.wan.context_windows import (
    TIME_AXES, Fuser, WanWindowing, given_frames, plan_window, region_index, slice_cond, slice_generic, strip,
)

T = 9


def frames_tensor(shape, dim):
    """A tensor whose value is its index along ``dim`` (so a slice shows which frames it holds)."""
    view = [1] * len(shape)
    view[dim] = shape[dim]
    return torch.arange(shape[dim], dtype=torch.float32).reshape(view).expand(shape).clone()


def along(t, dim):
    """The frame indices a ``frames_tensor`` slice holds along ``dim``."""
    index = [0] * t.ndim
    out = []
    for i in range(t.shape[dim]):
        index[dim] = i
        out.append(int(t[tuple(index)]))
    return out


def i2v_concat(given_slots: dict[int, list[int]], t=T, c=16):
    """c_concat [1, 4+c, t, 2, 2]: 1 - concat_mask in channels 0..3 (1 = given) at the given slots."""
    cc = torch.zeros(1, 4 + c, t, 2, 2)
    for frame, slots in given_slots.items():
        cc[:, slots, frame] = 1.0
    cc[:, 4:] = frames_tensor((1, c, t, 2, 2), 2)
    return cc


def test_plan_without_anchor_or_guides_is_the_window():
    plan = plan_window([3, 4, 5, 6, 7], T)
    assert plan.x_indices == [3, 4, 5, 6, 7] and plan.lead == 0 and plan.guides == []


def test_anchor_is_the_frame_before_the_window_and_never_before_frame_0():
    assert plan_window([3, 4, 5], T, anchor=True).x_indices == [2, 3, 4, 5]
    assert plan_window([0, 1, 2], T, anchor=True).x_indices == [0, 1, 2]


def test_guides_skip_frames_the_window_already_holds():
    plan = plan_window([3, 4, 5, 6, 7], T, anchor=True, guide_frames=[8, 0, 2, 4])
    assert plan.x_indices == [2, 3, 4, 5, 6, 7, 0, 8] and plan.guides == [0, 8]


@pytest.mark.parametrize("key,shape", [("c_concat", (1, 20, T, 2, 2)), ("vace_context", (1, 2, 96, T, 2, 2))])
def test_each_conditioning_is_sliced_on_its_own_time_axis(key, shape):
    dim = TIME_AXES[key].dim
    cond = frames_tensor(shape, dim)
    plan = plan_window([4, 5, 6, 7, 8], T, anchor=True, guide_frames=[0])
    out = slice_cond(key, cond, plan)
    assert out.shape[dim] == 7 and along(out, dim) == [3, 4, 5, 6, 7, 8, 0]
    assert out.shape[:dim] == cond.shape[:dim] and out.shape[dim + 1:] == cond.shape[dim + 1:]


def test_animate_pose_has_no_entry_for_the_reference_frame():
    """pose_latents [B, C, T-1, h, w]: entry j belongs to latent frame j+1; the model adds entry j at window
    position j+1, so window position 0 (here the anchor) gets none."""
    pose = frames_tensor((1, 16, T - 1, 2, 2), 2)
    plan = plan_window([4, 5, 6, 7, 8], T, anchor=True)
    assert along(slice_cond("pose_latents", pose, plan), 2) == [3, 4, 5, 6, 7]  # frames 4..8
    plan = plan_window([0, 1, 2, 3, 4], T)
    assert along(slice_cond("pose_latents", pose, plan), 2) == [0, 1, 2, 3]  # frames 1..4


def test_guides_without_an_entry_go_last_so_the_others_stay_aligned():
    w = WanWindowing(guides=True)
    plan = w.plan([4, 5, 6, 7, 8], T, [0, 1, 2], {"c_concat", "pose_latents"})
    assert plan.x_indices == [4, 5, 6, 7, 8, 1, 2, 0]
    pose = frames_tensor((1, 16, T - 1, 2, 2), 2)
    assert along(slice_cond("pose_latents", pose, plan), 2) == [4, 5, 6, 7, 0, 1]  # positions 1..6
    assert w.plan([4, 5, 6, 7, 8], T, [0, 1, 2], {"c_concat"}).x_indices == [4, 5, 6, 7, 8, 0, 1, 2]


def test_animate_face_pixels_take_four_frames_per_latent():
    face = frames_tensor((1, 3, 1 + 4 * (T - 2), 4, 4), 2)
    plan = plan_window([6, 7, 8], T)
    assert along(slice_cond("face_pixel_values", face, plan), 2) == [24, 25, 26, 27, 28]


def test_retain_replaces_the_first_own_frame_not_the_anchor():
    cond = frames_tensor((1, 20, T, 2, 2), 2)
    out = slice_cond("c_concat", cond, plan_window([4, 5, 6], T, anchor=True, retain=[0]))
    assert along(out, 2) == [3, 0, 5, 6]
    out = slice_cond("c_concat", cond, plan_window([4, 5, 6], T, retain=[0]))
    assert along(out, 2) == [0, 5, 6]


@pytest.mark.parametrize("key,shape,found", [
    ("c_concat", (1, 20, T - 1, 2, 2), "8 entries on its time axis"),
    ("vace_context", (1, 1, 96, T + 1, 2, 2), "10 entries on its time axis"),
    ("pose_latents", (1, 16, T, 2, 2), "9 entries on its time axis"),
])
def test_a_conditioning_for_another_length_is_a_clear_error(key, shape, found):
    with pytest.raises(ValueError) as e:
        slice_cond(key, torch.zeros(shape), plan_window([0, 1, 2], T))
    msg = str(e.value)
    assert key in msg and found in msg and f"the latent has {T} frames" in msg and "Fix:" in msg


def test_other_tensors_follow_comfyuis_generic_rule():
    plan = plan_window([2, 3, 4], T, anchor=True)
    assert along(slice_cond("other", frames_tensor((1, 4, T, 2, 2), 2), plan), 2) == [1, 2, 3, 4]
    assert slice_cond("text", torch.zeros(1, 8, 4096), plan) is None
    assert slice_generic(torch.zeros(1, 8, 4096), plan) is None
    assert along(slice_generic(frames_tensor((1, 16, T, 2, 2), 2), plan), 2) == [1, 2, 3, 4]


def test_strip_keeps_the_windows_own_frames():
    out = frames_tensor((1, 16, 8, 2, 2), 2)
    plan = plan_window([4, 5, 6, 7, 8], T, anchor=True, guide_frames=[0, 1])
    assert along(strip(out, plan), 2) == [1, 2, 3, 4, 5]


def test_given_frames_from_the_concat_mask():
    # start image (latent 0, all slots), a keyframe in one slot of latent 4, the separately encoded end latent 8
    cc = i2v_concat({0: [0, 1, 2, 3], 4: [3], 8: [0, 1, 2, 3]})
    assert given_frames(cc, None, 16) == [0, 4, 8]
    # a slot given on part of the frame only (e.g. a kept background) is no given frame
    cc[:, 3, 4, 0, 0] = 0.0
    assert given_frames(cc, None, 16) == [0, 8]
    # no mask channels (a Fun-control style concat): nothing is read as a mask
    assert given_frames(torch.ones(1, 32, T, 2, 2), None, 16) == []


def test_given_frames_from_a_vace_reference():
    vc = torch.randn(1, 1, 96, T, 2, 2)
    vc[:, :, 32:, 0] = 0.0  # the reference: all-zero mask ...
    vc[:, :, 16:32, 0] = 0.0  # ... and an empty reactive half
    assert given_frames(None, vc, 16) == [0]
    kept = vc.clone()
    kept[:, :, 32:, 1] = 0.0  # a kept (inactive) control frame still has its gray reactive half
    assert given_frames(None, kept, 16) == [0]
    assert given_frames(None, torch.randn(1, 1, 96, T, 2, 2), 16) == []


def test_windowing_reads_every_conditioning_and_ignores_other_lengths():
    w = WanWindowing(guides=True)
    pos = {"c_concat": i2v_concat({0: [0, 1, 2, 3]})}
    neg = {"c_concat": i2v_concat({8: [3]}), "vace_context": torch.zeros(1, 1, 96, T - 1, 2, 2)}
    assert w.given_frames([pos, neg], 16, T) == [0, 8]


def test_split_conds_region_by_window_center():
    assert [region_index(plan_window(w, T), 3) for w in ([0, 1, 2], [3, 4, 5], [6, 7, 8])] == [0, 1, 2]


def test_fuser_weighted_average():
    x = torch.zeros(1, 1, 4, 1, 1)
    f = Fuser(x, 1)
    f.add([0, 1, 2], [torch.full((1, 1, 3, 1, 1), 2.0)], [1, 2, 1])
    f.add([1, 2, 3], [torch.full((1, 1, 3, 1, 1), 4.0)], torch.tensor([1.0, 1.0, 3.0]))
    out = f.result()[0].flatten().tolist()
    assert out == pytest.approx([2.0, (2 * 2 + 4) / 3, (2 + 4) / 2, 4.0])


def test_fuser_relative_weights_the_window_center_more():
    x = torch.zeros(1, 1, 4, 1, 1)
    f = Fuser(x, 1, relative=True)
    f.add([0, 1, 2], [torch.full((1, 1, 3, 1, 1), 2.0)])
    f.add([1, 2, 3], [torch.full((1, 1, 3, 1, 1), 4.0)])
    out = f.result()[0].flatten().tolist()
    assert out[0] == 2.0 and out[3] == 4.0
    assert 2.0 < out[1] < 3.0 < out[2] < 4.0  # frame 1 is window 0's center, frame 2 window 1's


def test_native_window_warnings_name_the_failing_conditioning_and_the_fix():
    from comfyui_wanmasking.wan.validation import CondInfo, native_window_warnings

    i2v = [CondInfo(concat_image=(1, 16, T, 8, 8), concat_mask=(1, 4, T, 8, 8))]
    vace = [CondInfo(vace_frames=((1, 32, T, 8, 8),), vace_masks=((1, 64, T, 8, 8),))]
    cannot = {"c_concat": False, "vace_context": False}
    (msg,) = native_window_warnings(cannot, i2v)
    assert "do not cut the I2V concat image and mask" in msg and "WanMaskContextWindows" in msg
    (msg,) = native_window_warnings(cannot, vace)
    assert "do not cut the VACE context and mask" in msg
    (msg,) = native_window_warnings({"c_concat": True, "vace_context": True}, i2v)
    assert "conditions only the windows" in msg and "given_frames_as_guides" in msg
    (msg,) = native_window_warnings({"c_concat": True, "vace_context": True, "retain_on_anchor": True}, i2v)
    assert "retain_first_frame put frame 0's conditioning on each window's anchor" in msg
    assert native_window_warnings(cannot, [CondInfo()]) == []  # T2V: native windows are fine
