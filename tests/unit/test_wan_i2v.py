"""I2V concat builder: causal slot masks, fill values, both fun_or_fl2v_model modes, bad input."""
import logging

import pytest
import torch

from comfyui_wanmasking.masking.conventions import FILL_BLACK, FILL_GRAY
from comfyui_wanmasking.masking.geometry import WAN21, WAN22
from comfyui_wanmasking.tests.unit.test_wan_fakes import FakeEncoder
from comfyui_wanmasking.wan.frames import parse_indices, parse_ranges
from comfyui_wanmasking.wan.i2v import (
    MAX_TRAINED_LATENT_FRAMES, build_i2v_embeds, frame_mask_to_concat_mask, join_clip_vision_tokens, trim_latent,
)

L, H, W = 17, 32, 32  # T = 5, latent 4x4


def solid(n, value, h=H, w=W):
    return torch.full((n, h, w, 3), float(value))


def slots(concat_mask):
    """[1, 4, T, h, w] -> [4T] slot values at cell (0, 0)."""
    return concat_mask[0, :, :, 0, 0].transpose(0, 1).reshape(-1)


def build(**kw):
    enc = kw.pop("encoder", FakeEncoder(kw.get("geometry", WAN21)))
    kw.setdefault("geometry", WAN21)
    kw.setdefault("length", L)
    kw.setdefault("height", H)
    kw.setdefault("width", W)
    return build_i2v_embeds(enc, **kw), enc


def test_start_image_marks_frame0_in_slots_0_to_3_only():
    out, enc = build(start_image=solid(1, 0.9))
    assert out.concat_mask.shape == (1, 4, 5, 4, 4)
    assert out.concat_latent_image.shape == (1, 16, 5, 4, 4)
    s = slots(out.concat_mask)
    assert s[:4].tolist() == [0, 0, 0, 0] and (s[4:] == 1).all()
    assert out.frame_mask.tolist() == [0] + [1] * (L - 1)
    assert out.latent_frames == 5 and out.trim_end_latent == 0
    assert len(enc.calls) == 1 and enc.calls[0].shape == (L, H, W, 3)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_n_start_frames_mark_exactly_slots_0_to_n_plus_2(n):
    """Frame f >= 1 sits in slot f+3: 3 start frames mark slots 0..5, not the whole latent 1 (native
    WanImageToVideo marks whole latent frames: ((n-1)//4)+1 of them)."""
    out, _ = build(start_image=solid(n, 0.9))
    s = slots(out.concat_mask)
    assert (s[:n + 3] == 0).all() and (s[n + 3:] == 1).all()


def test_keyframes_mark_their_own_slot_and_pixels():
    out, enc = build(keyframes=torch.stack([solid(1, 0.2)[0], solid(1, 0.7)[0]]), keyframe_indices="6, -1")
    s = slots(out.concat_mask)
    given = (s == 0).nonzero().flatten().tolist()
    assert given == [6 + 3, (L - 1) + 3]
    px = enc.calls[0]
    assert torch.all(px[6] == 0.2) and torch.all(px[L - 1] == 0.7) and torch.all(px[0] == FILL_GRAY)
    assert (out.frame_mask == 0).nonzero().flatten().tolist() == [6, L - 1]


@pytest.mark.parametrize("fill,value", [("gray", FILL_GRAY), ("black", FILL_BLACK)])
def test_null_fill_reaches_the_vae_as_0_or_minus_1(fill, value):
    out, enc = build(start_image=solid(1, 1.0), null_fill=fill)
    px = enc.calls[0]
    assert torch.all(px[1:] == value)
    vae_space = px[1:] * 2 - 1
    assert torch.all(vae_space == (0.0 if fill == "gray" else -1.0))
    # latent 1.. of the fake encoder = the VAE-space value of the fill
    assert torch.all(out.concat_latent_image[:, :, 1:] == (0.0 if fill == "gray" else -1.0))


def test_end_image_in_sequence_mode_is_the_last_frame_and_one_encode():
    out, enc = build(start_image=solid(1, 0.9), end_image=solid(1, 0.1), fun_or_fl2v_model=True)
    assert len(enc.calls) == 1
    assert torch.all(enc.calls[0][-1] == 0.1)
    s = slots(out.concat_mask)
    assert (s == 0).nonzero().flatten().tolist() == [0, 1, 2, 3, 4 * 5 - 1]
    # only the last channel of the last latent is given: the end frame is the 4th frame of its group
    assert out.concat_mask[0, :, -1, 0, 0].tolist() == [1, 1, 1, 0]
    assert out.latent_frames == 5 and out.trim_end_latent == 0


def test_end_image_separate_mode_adds_one_fully_given_latent_to_trim():
    out, enc = build(start_image=solid(1, 0.9), end_image=solid(2, 0.1), fun_or_fl2v_model=False)
    assert len(enc.calls) == 2
    assert enc.calls[0].shape[0] == L and torch.all(enc.calls[0][-1] == FILL_GRAY)
    assert enc.calls[1].shape == (1, H, W, 3) and torch.all(enc.calls[1] == 0.1)
    assert out.concat_latent_image.shape == (1, 16, 6, 4, 4)
    assert out.concat_mask.shape == (1, 4, 6, 4, 4)
    assert (out.concat_mask[:, :, -1] == 0).all()  # end latent: all four slots given
    assert (out.concat_mask[:, :, 1:5] == 1).all()
    assert torch.allclose(out.concat_latent_image[:, :, -1], torch.tensor(0.1 * 2 - 1))
    assert out.latent_frames == 6 and out.trim_end_latent == 1
    assert out.frame_mask.shape == (L,)


def test_separate_end_image_that_overflows_the_trained_length_is_refused():
    n = WAN21.pixel_frames(MAX_TRAINED_LATENT_FRAMES)  # 81 -> 21 latents + 1
    with pytest.raises(ValueError, match=r"end_image: .*length 81 needs 22 latent frames.*length <= 77"):
        build_i2v_embeds(FakeEncoder(), length=n, height=16, width=16, geometry=WAN21,
                         end_image=solid(1, 0.1, 16, 16), fun_or_fl2v_model=False)
    out = build_i2v_embeds(FakeEncoder(), length=77, height=16, width=16, geometry=WAN21,
                           end_image=solid(1, 0.1, 16, 16), fun_or_fl2v_model=False)
    assert out.latent_frames == MAX_TRAINED_LATENT_FRAMES


def test_latent_strength_pulls_given_latents_toward_the_mean_only():
    mean = torch.linspace(-0.5, 0.5, 16)
    full, _ = build(start_image=solid(1, 1.0))
    half, _ = build(start_image=solid(1, 1.0), latent_strength=0.5, latent_mean=mean)
    m = mean.reshape(1, -1, 1, 1)
    assert torch.allclose(half.concat_latent_image[:, :, 0], m + 0.5 * (full.concat_latent_image[:, :, 0] - m))
    assert torch.equal(half.concat_latent_image[:, :, 1:], full.concat_latent_image[:, :, 1:])
    with pytest.raises(ValueError, match="latent_mean"):
        build(start_image=solid(1, 1.0), latent_strength=0.5)


def test_wan22_geometry_uses_48_channels_and_16px_cells():
    out, _ = build(geometry=WAN22, encoder=FakeEncoder(WAN22), start_image=solid(1, 0.3), height=64, width=32)
    assert out.concat_latent_image.shape == (1, 48, 5, 4, 2)
    assert out.concat_mask.shape == (1, 4, 5, 4, 2)


def test_resized_images_log_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        out, enc = build(start_image=solid(1, 0.4, 48, 64))
    assert "start_image: 64x48 (WxH) differs from width x height 32x32" in caplog.text
    assert enc.calls[0].shape == (L, H, W, 3) and torch.allclose(enc.calls[0][0], torch.tensor(0.4))


@pytest.mark.parametrize("kw,pattern", [
    (dict(length=16), r"length: 16 frames is not of the form 1\+4k.*Use 13 or 17"),
    (dict(width=40), r"width/height: 40x32 \(WxH\) is not a multiple of 16"),
    (dict(keyframes=solid(2, 0.5), keyframe_indices="0, 17"), r"keyframe_indices: frame index 17 .* outside the clip of 17"),
    (dict(keyframes=solid(2, 0.5), keyframe_indices="0"), r"keyframe_indices: 1 index\(es\) in '0' for 2 keyframe"),
    (dict(keyframe_indices="4"), r"keyframe_indices: '4' is set but no keyframes IMAGE"),
    (dict(keyframes=solid(2, 0.5), keyframe_indices="3, 3"), r"appear more than once"),
    (dict(keyframes=solid(1, 0.5), keyframe_indices="x"), r"not an integer frame index"),
    (dict(null_fill="white"), r"null_fill"),
])
def test_bad_input_raises_a_clear_error(kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        build(**kw)


def test_wan22_size_must_be_a_multiple_of_32():
    with pytest.raises(ValueError, match="multiple of 32 for the Wan 2.2 5B VAE"):
        build(geometry=WAN22, encoder=FakeEncoder(WAN22), height=48, width=32)


def test_encoder_with_the_wrong_channels_is_named():
    with pytest.raises(ValueError, match=r"vae: .*expected \[1, 16, 5, 4, 4\]"):
        build(encoder=FakeEncoder(WAN22), start_image=solid(1, 0.5))


def test_frame_mask_to_concat_mask_round_trips_the_slot_layout():
    fm = torch.arange(9, dtype=torch.float32)
    cm = frame_mask_to_concat_mask(fm, WAN21, 1, 1)
    assert cm.shape == (1, 4, 3, 1, 1)
    assert cm[0, :, 0, 0, 0].tolist() == [0, 0, 0, 0]
    assert cm[0, :, 1, 0, 0].tolist() == [1, 2, 3, 4]
    assert cm[0, :, 2, 0, 0].tolist() == [5, 6, 7, 8]
    with pytest.raises(ValueError, match="frame_mask"):
        frame_mask_to_concat_mask(torch.ones(8), WAN21, 1, 1)


def test_trim_latent_drops_front_and_back():
    x = torch.arange(6.0).reshape(1, 1, 6, 1, 1)
    assert trim_latent(x, 1, 0).flatten().tolist() == [1, 2, 3, 4, 5]
    assert trim_latent(x, 0, 1).flatten().tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="cannot trim 3 latent frame"):
        trim_latent(x, 3, 3)


def test_index_and_range_parsing():
    assert parse_indices("0, 40,-1", 81) == [0, 40, 80]
    assert parse_indices("  ", 81) == []
    assert parse_ranges("0-0, 77-80", 81) == [range(0, 1), range(77, 81)]
    assert parse_ranges("5, -4:-1", 81) == [range(5, 6), range(77, 81)]
    with pytest.raises(ValueError, match="ends before it starts"):
        parse_ranges("9-3", 81)
    with pytest.raises(ValueError, match="outside the clip of 81"):
        parse_ranges("70-81", 81)


def test_keep_noise_mask_keeps_only_fully_given_latent_frames():
    out, _ = build(start_image=solid(3, 0.5), end_image=solid(1, 0.5), fun_or_fl2v_model=False)
    nm = out.keep_noise_mask()
    assert nm.shape == (1, 1, 6, 4, 4)
    # latent 0 (frame 0) and the separate end latent are fully given; latent 1 holds frames 1,2 (given) + 3,4
    assert nm[0, 0, :, 0, 0].tolist() == [0, 1, 1, 1, 1, 0]


def test_clip_vision_tokens_of_the_end_image_follow_the_start_image():
    start, end = torch.zeros(1, 257, 1280), torch.ones(1, 257, 1280)
    joined = join_clip_vision_tokens(start, end)
    assert joined.shape == (1, 514, 1280)
    assert (joined[:, :257] == 0).all() and (joined[:, 257:] == 1).all()


def test_clip_vision_tokens_of_different_models_are_refused():
    with pytest.raises(ValueError, match=r"^clip_vision_end_output: its tokens \[1, 257, 1024\] cannot follow "
                                         r"clip_vision_output's \[1, 257, 1280\].*Fix: encode both images"):
        join_clip_vision_tokens(torch.zeros(1, 257, 1280), torch.zeros(1, 257, 1024))


def documented_ref_pad_buffer(length, height, width, start_image, ref_pad_image):
    """Native WanImageToVideo's ref_pad_image (newer ComfyUI, PR #15139), from its description: the image
    buffer starts as 0.5 gray, is overwritten with the first frame of ref_pad_image (RGB only), then the
    start_image frames go on top (same size here, so no resize)."""
    buffer = torch.ones(length, height, width, 3) * 0.5
    buffer[:] = ref_pad_image[0, :, :, :3]
    buffer[:start_image.shape[0]] = start_image[:length]
    return buffer


@pytest.mark.parametrize("n_start", [1, 3])
def test_ref_pad_image_fills_unknown_frames_as_documented(n_start):
    g = torch.Generator().manual_seed(0)
    start = torch.rand(n_start, H, W, 3, generator=g)
    ref = torch.rand(2, H, W, 4, generator=g)  # 2 frames (first used) and an alpha channel (dropped)
    padded, enc = build(start_image=start, ref_pad_image=ref, null_fill="black")
    plain, _ = build(start_image=start)
    assert torch.equal(enc.calls[0], documented_ref_pad_buffer(L, H, W, start, ref))
    assert torch.equal(padded.concat_mask, plain.concat_mask)  # the mask (polarity, slots) is unchanged
    assert torch.equal(padded.frame_mask, plain.frame_mask)
    assert not torch.equal(padded.concat_latent_image, plain.concat_latent_image)


def test_ref_pad_image_sits_under_keyframes_and_end_image_too():
    ref, key, end = solid(1, 0.3), solid(1, 0.8), solid(1, 0.1)
    _, enc = build(ref_pad_image=ref, keyframes=key, keyframe_indices="6", end_image=end)
    pixels = enc.calls[0][:, 0, 0, 0]
    want = torch.full((L,), 0.3)
    want[6], want[-1] = 0.8, 0.1
    assert torch.allclose(pixels, want)


def test_ref_pad_image_of_another_size_is_resized_like_start_image(caplog):
    ref = solid(1, 0.25, h=2 * H, w=W)
    with caplog.at_level(logging.WARNING):
        _, enc = build(start_image=solid(1, 0.9), ref_pad_image=ref)
    assert enc.calls[0].shape == (L, H, W, 3) and torch.allclose(enc.calls[0][1:], torch.tensor(0.25))
    assert "ref_pad_image: 32x64 (WxH) differs" in caplog.text


@pytest.mark.parametrize("bad,found", [(torch.rand(1, H, W), "[1, 32, 32]"), (torch.rand(0, H, W, 3), "[0, 32, 32, 3]"),
                                       (torch.rand(1, H, W, 2), "[1, 32, 32, 2]")])
def test_bad_ref_pad_image_is_refused_before_encoding(bad, found):
    enc = FakeEncoder()
    with pytest.raises(ValueError, match=r"ref_pad_image: expected an IMAGE") as err:
        build(encoder=enc, start_image=solid(1, 0.9), ref_pad_image=bad)
    assert found in str(err.value) and enc.calls == []
