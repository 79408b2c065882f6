"""Test-only nodes for the embeds tests: save a CONDITIONING's extra tensors to safetensors; make a
CLIP_VISION_OUTPUT without a CLIP vision model; a fake of newer native WanImageToVideo with ref_pad_image."""
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


class WanMaskTestFakeRefPadImageToVideo:
    """Presents the input shape of native WanImageToVideo after ComfyUI 0.33 (optional ``ref_pad_image``, PR
    #15139, which no tree under test has) and does what its description says, written from that
    description: the image buffer starts as 0.5 gray, is overwritten with the first frame of
    ref_pad_image (resized like start_image, RGB only), then start_image goes on top; the mask is
    native's (whole latent frames of the start image given). Needs start_image."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"positive": ("CONDITIONING",), "negative": ("CONDITIONING",), "vae": ("VAE",),
                             "width": ("INT", {"default": 832}), "height": ("INT", {"default": 480}),
                             "length": ("INT", {"default": 81}), "batch_size": ("INT", {"default": 1})},
                "optional": {"start_image": ("IMAGE",), "clip_vision_output": ("CLIP_VISION_OUTPUT",),
                             "ref_pad_image": ("IMAGE",)}}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    FUNCTION = "encode"
    CATEGORY = "testing"

    def encode(self, positive, negative, vae, width, height, length, batch_size, start_image, clip_vision_output=None,
               ref_pad_image=None):
        import comfy.utils
        import node_helpers

        def resized(images):
            return comfy.utils.common_upscale(images.movedim(-1, 1), width, height, "bilinear", "center").movedim(1, -1)

        start = resized(start_image[:length])
        image = torch.full((length, height, width, 3), 0.5)
        if ref_pad_image is not None:
            image[:] = resized(ref_pad_image[:1])[0, :, :, :3]
        image[:start.shape[0]] = start[..., :3]
        latent = vae.encode(image)
        mask = torch.ones(1, 1, latent.shape[2], latent.shape[-2], latent.shape[-1])
        mask[:, :, :(start.shape[0] - 1) // 4 + 1] = 0.0
        values = {"concat_latent_image": latent, "concat_mask": mask}
        empty = {"samples": torch.zeros(batch_size, latent.shape[1], latent.shape[2], latent.shape[-2], latent.shape[-1])}
        return (node_helpers.conditioning_set_values(positive, values),
                node_helpers.conditioning_set_values(negative, values), empty)


NODE_CLASS_MAPPINGS = {"WanMaskTestSaveConditioning": WanMaskTestSaveConditioning,
                       "WanMaskTestClipVisionOutput": WanMaskTestClipVisionOutput,
                       "WanMaskTestFakeRefPadImageToVideo": WanMaskTestFakeRefPadImageToVideo}
