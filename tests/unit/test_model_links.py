"""What the runner says when ComfyUI refuses a workflow for a missing model or input file: the
folder, the download link (the workflow's own, else the pack's table) and how to give a local file."""
from __future__ import annotations

from comfyui_wanmasking.wanmask_runner.model_links import MODEL_DOWNLOADS, hints_for, links_in_workflow


def not_in_list(name, value):
    return {"type": "value_not_in_list", "message": "Value not in list",
            "details": f"{name}: '{value}' not in []", "extra_info": {"input_name": name, "received_value": value}}


def test_a_missing_pack_model_names_its_folder_and_link():
    errors = {"1": {"class_type": "UNETLoader", "errors": [not_in_list("unet_name", "wan2.1_t2v_1.3B_fp16.safetensors")]},
              "5": {"class_type": "VAELoader", "errors": [not_in_list("vae_name", "wan_2.1_vae.safetensors")]}}
    hints = hints_for(errors, None)
    assert hints[0] == "what to do:"
    assert "put it in ComfyUI/models/diffusion_models/; download: " + MODEL_DOWNLOADS[
        "wan2.1_t2v_1.3B_fp16.safetensors"][0] in hints[1]
    assert "node 5 VAELoader, vae_name" in hints[2] and "ComfyUI/models/vae/" in hints[2]


def test_the_workflows_own_links_come_first_and_unknown_files_get_the_loaders_folder():
    ui = {"nodes": [], "definitions": {"subgraphs": [{"nodes": [{"properties": {"models": [
        {"name": "my_lora.safetensors", "url": "https://example.org/my_lora.safetensors", "directory": "loras"}]}}]}]}}
    assert links_in_workflow(ui) == {"my_lora.safetensors": ("https://example.org/my_lora.safetensors", "loras")}
    errors = {"7": {"class_type": "LoraLoader", "errors": [not_in_list("lora_name", "my_lora.safetensors")]},
              "8": {"class_type": "CheckpointLoaderSimple", "errors": [not_in_list("ckpt_name", "other.ckpt")]}}
    hints = hints_for(errors, None, ui)
    assert "ComfyUI/models/loras/; download: https://example.org/my_lora.safetensors" in hints[1]
    assert hints[2].endswith("put it in ComfyUI/models/checkpoints/")


def test_a_missing_input_clip_says_where_comfyui_looks_and_how_to_give_a_local_file():
    errors = {"6": {"class_type": "LoadVideo", "errors": [{"type": "custom_validation_failed",
                                                          "message": "Custom validation failed for node",
                                                          "details": "file - Invalid video file: clip.mp4"}]}}
    hints = hints_for(errors, None)
    assert "ComfyUI/input/" in hints[1] and "--set NODE.INPUT=./path/to/file" in hints[1]
    assert hints_for({"2": {"class_type": "KSampler", "errors": [not_in_list("sampler_name", "eulr")]}}, None) == []
