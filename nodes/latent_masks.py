"""Latent noise mask nodes: WanMaskToLatent and WanMaskPreview."""
from __future__ import annotations

import logging

import nodes as comfy_nodes

from . import comfy_compat as compat
from ..masking import conventions
from ..masking.geometry import geometry_for_channels
from ..masking.latent_mask import SPATIAL_MODES, TEMPORAL_MODES, pixel_mask_to_latent
from ..masking.preview import effective_mask_preview

log = logging.getLogger("WanMasking")
CATEGORY = "WanMasking/latent"


class WanMaskToLatent:
    DESCRIPTION = ("Sets the latent's noise mask at exact latent size, following the Wan VAE's causal frame "
                   "grouping (frame 0 alone, then 4 frames per latent frame). Native KSampler uses it unchanged. "
                   f"Mask: {conventions.NOISE_MASK}.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples": ("LATENT", {"tooltip": "Wan video latent [B,C,T,h,w] (16 ch Wan 2.1 or 48 ch Wan 2.2 5B)."}),
            "mask": ("MASK", {"tooltip": f"Pixel mask, {conventions.NOISE_MASK}. Frames: 1 (all frames), "
                                         "T (per latent frame) or 1+4(T-1) (per pixel frame); any size."}),
            "temporal": (list(TEMPORAL_MODES), {"default": "max", "tooltip":
                "How the frames of a causal group combine. max: regenerate if any frame is masked (fast motion "
                "stays inside). mean/min: softer/tighter. trilinear: native ComfyUI (misaligned, for comparison)."}),
            "spatial": (list(SPATIAL_MODES), {"default": "max", "tooltip":
                "How the pixels of a cell combine. max: any masked pixel regenerates the cell (thin masks survive). "
                "area: covered fraction (soft). min: all pixels. nearest: one pixel. bilinear: native."}),
            "grow": ("INT", {"default": 0, "min": -64, "max": 64, "tooltip":
                "Dilate (>0) or erode (<0) the latent mask by this many latent cells (8 or 16 px each)."}),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "apply"
    CATEGORY = CATEGORY

    def apply(self, samples, mask, temporal, spatial, grow):
        latent = samples["samples"]
        if latent.dim() != 5:
            raise ValueError(f"samples: expected a Wan video latent [B,C,T,h,w], got shape {list(latent.shape)}. "
                             "Fix: encode the video with a Wan VAE (VAEEncode) or use an empty Wan video latent.")
        geometry = geometry_for_channels(latent.shape[1])
        out = samples.copy()
        out["noise_mask"] = pixel_mask_to_latent(mask, tuple(latent.shape), geometry, temporal, spatial, grow)
        return (out,)


class WanMaskPreview:
    DESCRIPTION = ("Shows what the sampler really regenerates at every pixel frame (red), and pixels you masked "
                   "that it keeps (yellow). A native pixel-space noise mask is shown through ComfyUI's own "
                   "reshape, as the native sampler sees it.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples": ("LATENT", {"tooltip": "The latent whose noise_mask the sampler will use."}),
        }, "optional": {
            "images": ("IMAGE", {"tooltip": "The frames encoded into the latent (1+4(T-1) frames), drawn under the mask."}),
            "mask": ("MASK", {"tooltip": f"The pixel mask you drew ({conventions.NOISE_MASK}); "
                                         "what it asks for but the sampler keeps is shown in yellow."}),
        }}

    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("overlay", "effective_mask")
    OUTPUT_TOOLTIPS = ("Frames with the effective mask overlaid.",
                       f"The effective mask per pixel frame, {conventions.NOISE_MASK}.")
    FUNCTION = "preview"
    OUTPUT_NODE = True
    CATEGORY = CATEGORY

    def preview(self, samples, images=None, mask=None):
        latent = samples["samples"]
        if latent.dim() != 5:
            raise ValueError(f"samples: expected a Wan video latent [B,C,T,h,w], got shape {list(latent.shape)}.")
        geometry = geometry_for_channels(latent.shape[1])
        noise_mask = samples.get("noise_mask")
        if noise_mask is None:
            log.warning("WanMaskPreview: the latent has no noise_mask, so the sampler regenerates everything.")
            noise_mask = latent.new_ones(1, 1, *latent.shape[2:])
        # Exactly what the native sampler does with the mask (an identity for WanMaskToLatent masks).
        as_sampled = compat.native_noise_mask_as_sampled(noise_mask.float(), latent.shape)[:, :1].cpu()
        overlay, effective = effective_mask_preview(as_sampled, geometry, images, mask)
        ui = comfy_nodes.PreviewImage().save_images(overlay, filename_prefix="WanMaskPreview")["ui"]
        return {"ui": ui, "result": (overlay, effective)}


NODE_CLASS_MAPPINGS = {"WanMaskToLatent": WanMaskToLatent, "WanMaskPreview": WanMaskPreview}
NODE_DISPLAY_NAME_MAPPINGS = {"WanMaskToLatent": "Wan Mask To Latent (causal)",
                              "WanMaskPreview": "Wan Mask Preview (effective mask)"}
