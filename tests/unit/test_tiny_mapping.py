"""wanmask_runner.fixtures.tiny_graph: real model file names map to the tiny checkpoint of the same kind."""
import pytest

from comfyui_wanmasking.wanmask_runner.fixtures.tiny_graph import TINY_T2V, tiny_unet_for


@pytest.mark.parametrize("real,tiny", [
    ("wan2.1_t2v_1.3B_fp16.safetensors", TINY_T2V),
    ("wan2.1_i2v_480p_14B_fp16.safetensors", "wan_tiny_i2v.safetensors"),
    ("wan2.1_flf2v_720p_14B_fp16.safetensors", "wan_tiny_flf2v.safetensors"),
    ("wan2.2_ti2v_5B_fp16.safetensors", "wan_tiny_wan22_5b.safetensors"),
    ("wan2.1_vace_14B_fp16.safetensors", "wan_tiny_vace.safetensors"),
    ("Wan2_2-Animate-14B_fp8_e4m3fn_scaled_KJ.safetensors", "wan_tiny_animate.safetensors"),
])
def test_real_model_names_map_to_the_tiny_checkpoint_of_their_kind(real, tiny):
    assert tiny_unet_for(real) == tiny
