"""Test-only nodes shared by all integration tests."""
import torch
from safetensors.torch import load_file, save_file


class WanMaskTestZeroConditioning:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"tokens": ("INT", {"default": 8, "min": 1, "max": 512})}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "make"
    CATEGORY = "testing"

    def make(self, tokens):
        return ([[torch.zeros(1, tokens, 4096), {}]],)


class WanMaskTestLoad:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"path": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("IMAGE", "MASK", "LATENT")
    FUNCTION = "load"
    CATEGORY = "testing"

    @classmethod
    def IS_CHANGED(cls, path):
        return float("nan")

    def load(self, path):
        d = load_file(path)
        latent = None
        if "samples" in d:
            latent = {"samples": d["samples"]}
            if "noise_mask" in d:
                latent["noise_mask"] = d["noise_mask"]
        return (d.get("image"), d.get("mask"), latent)


class WanMaskTestSave:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"path": ("STRING", {"default": ""})},
                "optional": {"image": ("IMAGE",), "mask": ("MASK",), "latent": ("LATENT",)}}

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "testing"

    def save(self, path, image=None, mask=None, latent=None):
        d = {}
        if image is not None:
            d["image"] = image
        if mask is not None:
            d["mask"] = mask
        if latent is not None:
            d["samples"] = latent["samples"]
            if latent.get("noise_mask") is not None:
                d["noise_mask"] = latent["noise_mask"]
        save_file({k: v.detach().float().contiguous().cpu() for k, v in d.items()}, path)
        return {}


NODE_CLASS_MAPPINGS = {
    "WanMaskTestZeroConditioning": WanMaskTestZeroConditioning,
    "WanMaskTestLoad": WanMaskTestLoad,
    "WanMaskTestSave": WanMaskTestSave,
}
