"""Test-only node for the VAE tests: saves the concat latent a conditioning carries."""
from safetensors.torch import save_file


class WanMaskTestSaveConcatLatent:
    """Writes ``concat_latent_image`` (and ``concat_mask``) of CONDITIONING entry 0 to safetensors."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"path": ("STRING", {"default": ""}), "conditioning": ("CONDITIONING",)}}

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "testing"

    def save(self, path, conditioning):
        extra = conditioning[0][1]
        d = {k: extra[k].detach().float().contiguous().cpu() for k in ("concat_latent_image", "concat_mask")
             if k in extra}
        save_file(d, path)
        return {}


NODE_CLASS_MAPPINGS = {"WanMaskTestSaveConcatLatent": WanMaskTestSaveConcatLatent}
