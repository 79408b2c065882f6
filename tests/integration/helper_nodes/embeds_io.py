"""Test-only nodes for the embeds tests: save a CONDITIONING's extra tensors to safetensors; make a
CLIP_VISION_OUTPUT without a CLIP vision model."""
import torch
from safetensors.torch import save_file

KEYS = ("clip_vision_output", "concat_latent_image", "concat_mask", "vace_frames", "vace_mask", "vace_strength", "pose_video_latent",
        "face_video_pixels")


class WanMaskTestSaveConditioning:
    """Writes entry 0 of a CONDITIONING: ``cross_attn`` and every key of KEYS that is present. List values
    (vace_*) are saved as ``key.i``; vace_strength as a float tensor. An INT can be saved as ``int``."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"path": ("STRING", {"default": ""}), "conditioning": ("CONDITIONING",)},
                "optional": {"value": ("INT", {"forceInput": True})}}

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "testing"

    def save(self, path, conditioning, value=None):
        tensor, extra = conditioning[0]
        d = {"cross_attn": tensor}
        for k in KEYS:
            v = extra.get(k)
            if v is None:
                continue
            if k == "clip_vision_output":
                v = v.penultimate_hidden_states
            if isinstance(v, list):
                for i, item in enumerate(v):
                    d[f"{k}.{i}"] = torch.as_tensor(item, dtype=torch.float32)
            else:
                d[k] = v
        if value is not None:
            d["int"] = torch.tensor(float(value))
        save_file({k: v.detach().float().contiguous().cpu() for k, v in d.items()}, path)
        return {}


class WanMaskTestClipVisionOutput:
    """A CLIP_VISION_OUTPUT with seeded random penultimate_hidden_states [1, tokens, 1280] (no CLIP model needed)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"tokens": ("INT", {"default": 257, "min": 1, "max": 1024})},
                "optional": {"seed": ("INT", {"default": 1, "min": 0, "max": 2**31})}}

    RETURN_TYPES = ("CLIP_VISION_OUTPUT",)
    FUNCTION = "make"
    CATEGORY = "testing"

    def make(self, tokens, seed=1):
        import comfy.clip_vision

        out = comfy.clip_vision.Output()
        out.penultimate_hidden_states = torch.randn(1, tokens, 1280, generator=torch.Generator().manual_seed(seed))
        return (out,)


NODE_CLASS_MAPPINGS = {"WanMaskTestSaveConditioning": WanMaskTestSaveConditioning,
                       "WanMaskTestClipVisionOutput": WanMaskTestClipVisionOutput}
