"""Latent noise mask nodes: WanMaskToLatent and WanMaskPreview."""
from __future__ import annotations

import logging

from comfy_api.latest import io, ui

from . import comfy_compat as compat
from .inputs import category, check_choices, expert, first_error, schema
from ..masking import conventions
from ..masking.geometry import geometry_for_channels, wan_video_latent
from ..masking.latent_mask import SPATIAL_MODES, TEMPORAL_MODES, pixel_mask_to_latent
from ..masking.preview import effective_mask_preview, regenerate_everything

log = logging.getLogger("WanMasking")


class WanMaskToLatent(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="WanMaskToLatent",
            display_name="Wan Mask To Latent (causal)",
            category=category("latent"),
            search_aliases=["set latent noise mask", "inpaint mask", "causal mask", "video mask"],
            description="Sets the latent's noise mask at exact latent size, following the Wan VAE's causal frame "
                        "grouping (frame 0 alone, then 4 frames per latent frame). Native KSampler uses it "
                        f"unchanged. Mask: {conventions.NOISE_MASK}.",
            inputs=[
                io.Latent.Input("samples", tooltip="Wan video latent [B,C,T,h,w] (16 ch Wan 2.1 or 48 ch Wan 2.2 5B)."),
                io.Mask.Input("mask", tooltip=f"Pixel mask, {conventions.NOISE_MASK}. Frames: 1 (all frames), "
                                              "T (per latent frame) or 1+4(T-1) (per pixel frame); any size."),
                io.Combo.Input("temporal", options=list(TEMPORAL_MODES), default="max", tooltip=
                    "How the frames of a causal group combine. max: regenerate if any frame is masked (fast "
                    "motion stays inside). mean/min: softer/tighter. trilinear: native ComfyUI (misaligned, "
                    "for comparison)."),
                io.Combo.Input("spatial", options=list(SPATIAL_MODES), default="max", tooltip=
                    "How the pixels of a cell combine. max: any masked pixel regenerates the cell (thin masks "
                    "survive). area: covered fraction (soft). min: all pixels. nearest: one pixel. bilinear: "
                    "native."),
                expert(io.Int.Input("grow", default=0, min=-64, max=64, tooltip=
                    "Dilate (>0) or erode (<0) the latent mask by this many latent cells (8 or 16 px each).")),
            ],
            outputs=[io.Latent.Output(tooltip=f"The latent with its noise_mask ({conventions.NOISE_MASK}).")],
        )

    @classmethod
    def validate_inputs(cls, temporal=None, spatial=None):
        return first_error(lambda: check_choices(cls, temporal=temporal, spatial=spatial))

    @classmethod
    def execute(cls, samples, mask, temporal, spatial, grow) -> io.NodeOutput:
        latent = wan_video_latent(samples["samples"], "samples")
        out = samples.copy()
        out["noise_mask"] = pixel_mask_to_latent(mask, tuple(latent.shape), geometry_for_channels(latent.shape[1]),
                                                 temporal, spatial, grow)
        return io.NodeOutput(out)


class WanMaskPreview(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="WanMaskPreview",
            display_name="Wan Mask Preview (effective mask)",
            category=category("latent"),
            search_aliases=["preview noise mask", "effective mask", "mask overlay"],
            description="Shows what the sampler really regenerates at every pixel frame (red), and pixels you "
                        "masked that it keeps (yellow). A native pixel-space noise mask is shown through "
                        "ComfyUI's own reshape, as the native sampler sees it.",
            inputs=[
                io.Latent.Input("samples", tooltip="The latent whose noise_mask the sampler will use."),
                io.Image.Input("images", optional=True, tooltip=
                    "The frames encoded into the latent (1+4(T-1) frames), drawn under the mask."),
                io.Mask.Input("mask", optional=True, tooltip=
                    f"The pixel mask you drew ({conventions.NOISE_MASK}); what it asks for but the sampler "
                    "keeps is shown in yellow."),
            ],
            outputs=[
                io.Image.Output(display_name="overlay", tooltip="Frames with the effective mask overlaid."),
                io.Mask.Output(display_name="effective_mask",
                               tooltip=f"The effective mask per pixel frame, {conventions.NOISE_MASK}."),
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, samples, images=None, mask=None) -> io.NodeOutput:
        latent = wan_video_latent(samples["samples"], "samples")
        noise_mask = samples.get("noise_mask")
        if noise_mask is None:
            log.warning("WanMaskPreview: the latent has no noise_mask, so the sampler regenerates everything.")
            noise_mask = regenerate_everything(latent.shape)
        # Exactly what the native sampler does with the mask (an identity for WanMaskToLatent masks).
        as_sampled = compat.native_noise_mask_as_sampled(noise_mask.float(), latent.shape)
        overlay, effective = effective_mask_preview(as_sampled, geometry_for_channels(latent.shape[1]), images, mask)
        return io.NodeOutput(overlay, effective, ui=ui.PreviewImage(overlay, cls=cls))
