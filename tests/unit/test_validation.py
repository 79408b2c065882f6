"""Pre-sampling checks: each miswiring gets a plain-language error (or a warning where ComfyUI adapts)."""
import pytest
import torch

from comfyui_wanmasking.wan.validation import CondInfo, WanModelInfo, summarize_conds, validate_sampling

T2V = WanModelInfo("WAN21", in_channels=16, latent_channels=16)
I2V = WanModelInfo("WAN21", in_channels=36, latent_channels=16, image_to_video=True)
FUN = WanModelInfo("WAN21", in_channels=48, latent_channels=16)
VACE = WanModelInfo("WAN21_Vace", in_channels=16, latent_channels=16, vace_in_channels=96)
TI2V_5B = WanModelInfo("WAN22", in_channels=48, latent_channels=48, image_to_video=True)

LATENT = (1, 16, 5, 8, 8)  # 17 frames at 64x64


def i2v_cond(t=5, c=16, h=8, w=8, mask_t=None):
    return CondInfo(concat_image=(1, c, t, h, w), concat_mask=None if mask_t is None else (1, 1, mask_t, h, w))


def test_consistent_graphs_pass_without_warnings():
    assert validate_sampling(T2V, LATENT).warnings == []
    assert validate_sampling(I2V, LATENT, None, [i2v_cond(mask_t=5)]).warnings == []
    assert validate_sampling(TI2V_5B, (1, 48, 5, 4, 4), (1, 1, 5, 4, 4)).warnings == []
    vace = CondInfo(vace_frames=((1, 32, 5, 8, 8),), vace_masks=((1, 64, 5, 8, 8),))
    assert validate_sampling(VACE, LATENT, None, [vace]).warnings == []


def test_16_channel_latent_on_the_48_channel_5b_model_names_the_vae():
    with pytest.raises(ValueError) as e:
        validate_sampling(TI2V_5B, LATENT)
    msg = str(e.value)
    assert "16 channels" in msg and "48-channel" in msg and "Wan 2.2 VAE" in msg and "Fix:" in msg


def test_48_channel_latent_on_a_wan21_model():
    with pytest.raises(ValueError, match=r"48 channels \(the Wan 2\.2 VAE"):
        validate_sampling(I2V, (1, 48, 5, 4, 4))


def test_image_latent_instead_of_video_latent():
    with pytest.raises(ValueError, match=r"expected a Wan video latent .*EmptyLatentImage"):
        validate_sampling(T2V, (17, 16, 8, 8))


def test_i2v_conditioning_for_another_length_is_an_error():
    with pytest.raises(ValueError) as e:
        validate_sampling(I2V, LATENT, None, [i2v_cond(t=6)])
    msg = str(e.value)
    assert "built for 6 latent frames but the latent has 5" in msg and "WanImageToVideo" in msg


def test_i2v_model_without_image_warns_like_native_zero_fill():
    found = validate_sampling(I2V, LATENT)
    assert len(found.warnings) == 1
    assert "no concat image" in found.warnings[0] and "zeros" in found.warnings[0]


def test_start_image_on_a_t2v_model_is_ignored_with_a_warning():
    found = validate_sampling(T2V, LATENT, None, [i2v_cond()])
    assert any("ignores it" in w for w in found.warnings)


def test_start_image_from_the_48_channel_vae_on_a_wan21_i2v_model():
    with pytest.raises(ValueError) as e:
        validate_sampling(I2V, LATENT, None, [i2v_cond(c=48)])
    assert "has 48 channels" in str(e.value) and "Wan 2.2 VAE" in str(e.value)


def test_fun_control_model_needs_a_32_channel_concat():
    assert validate_sampling(FUN, LATENT, None, [i2v_cond(c=32)]).warnings == []
    with pytest.raises(ValueError, match=r"has 16 channels but the model WAN21 expects 32"):
        validate_sampling(FUN, LATENT, None, [i2v_cond(c=16)])


def test_concat_image_of_another_size_is_resized_with_a_warning():
    found = validate_sampling(I2V, LATENT, None, [i2v_cond(h=6, w=10)])
    assert any("resizes it bilinearly" in w for w in found.warnings)


def test_concat_mask_longer_than_the_latent_is_an_error_and_shorter_warns():
    with pytest.raises(ValueError, match="concat_mask: 7 frames"):
        validate_sampling(I2V, LATENT, None, [i2v_cond(mask_t=7)])
    assert any("pads the missing frames" in w for w in validate_sampling(I2V, LATENT, None, [i2v_cond(mask_t=3)]).warnings)


def test_vace_reference_frame_mismatch_points_at_trim():
    vace = CondInfo(vace_frames=((1, 32, 6, 8, 8),), vace_masks=((1, 64, 6, 8, 8),))
    with pytest.raises(ValueError) as e:
        validate_sampling(VACE, LATENT, None, [vace])
    assert "reference image adds one latent frame" in str(e.value) and "TrimVideoLatent" in str(e.value)


def test_vace_inputs_on_a_non_vace_model_warn():
    vace = CondInfo(vace_frames=((1, 32, 5, 8, 8),))
    assert any("not a VACE model" in w for w in validate_sampling(T2V, LATENT, None, [vace]).warnings)


def test_odd_latent_size_warns_about_padding_with_the_pixel_multiple():
    found = validate_sampling(T2V, (1, 16, 5, 9, 8))
    assert any("multiple of 16" in w and "pads" in w for w in found.warnings)
    found = validate_sampling(TI2V_5B, (1, 48, 5, 3, 4))
    assert any("multiple of 32" in w for w in found.warnings)


# ---- noise masks ----------------------------------------------------------------------------------

def test_latent_size_masks_pass_and_pixel_masks_warn_about_trilinear():
    assert validate_sampling(T2V, LATENT, (1, 1, 5, 8, 8)).warnings == []
    assert validate_sampling(T2V, LATENT, (5, 1, 8, 8)).warnings == []
    assert validate_sampling(T2V, LATENT, (1, 1, 8, 8)).warnings == []  # one frame, broadcast
    found = validate_sampling(T2V, LATENT, (17, 1, 64, 64))  # SetLatentNoiseMask from a 17-frame MASK
    assert len(found.warnings) == 1 and "WanMaskToLatent" in found.warnings[0]


def test_mask_for_the_wrong_frame_count_is_an_error():
    with pytest.raises(ValueError) as e:
        validate_sampling(T2V, LATENT, (21, 1, 64, 64))
    msg = str(e.value)
    assert "21 frames does not fit a latent with 5 latent frames" in msg and "17" in msg


def test_flattened_per_sample_masks_explain_the_batch():
    with pytest.raises(ValueError, match="flattens masks into ONE video"):
        validate_sampling(T2V, (2, 16, 5, 8, 8), (10, 1, 8, 8))


def test_5d_mask_batch_must_be_one_or_the_latent_batch():
    assert validate_sampling(T2V, (2, 16, 5, 8, 8), (2, 1, 5, 8, 8)).warnings == []
    with pytest.raises(ValueError, match="3 per-sample masks for a latent batch of 2"):
        validate_sampling(T2V, (2, 16, 5, 8, 8), (3, 1, 5, 8, 8))


def test_mask_of_another_aspect_ratio_is_an_error_same_aspect_warns():
    with pytest.raises(ValueError, match=r"resize the mask to 64x64"):
        validate_sampling(T2V, LATENT, (17, 1, 48, 64))
    assert any("resamples it" in w for w in validate_sampling(T2V, LATENT, (17, 1, 32, 32)).warnings)


def test_all_errors_are_reported_together():
    with pytest.raises(ValueError) as e:
        validate_sampling(I2V, LATENT, (21, 1, 48, 64), [i2v_cond(t=6)])
    assert str(e.value).count("\n- ") == 3


def test_summarize_conds_reads_comfyui_style_dicts():
    conds = {"positive": [{"concat_latent_image": torch.zeros(1, 16, 5, 8, 8), "concat_mask": torch.zeros(1, 1, 5, 8, 8),
                           "vace_frames": [torch.zeros(1, 32, 5, 8, 8)], "vace_mask": [torch.zeros(1, 64, 5, 8, 8)]}],
             "negative": [{"cross_attn": torch.zeros(1, 8, 4096)}]}
    infos = summarize_conds(conds)
    assert [i.role for i in infos] == ["positive", "negative"]
    assert infos[0].concat_image == (1, 16, 5, 8, 8) and infos[0].concat_mask == (1, 1, 5, 8, 8)
    assert infos[0].vace_frames == ((1, 32, 5, 8, 8),) and infos[0].vace_masks == ((1, 64, 5, 8, 8),)
    assert infos[1].concat_image is None and infos[1].vace_frames == ()
