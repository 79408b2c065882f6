"""Sampler patch node: WanMaskSamplerPatch (differential diffusion done right, early checks, exact keep)."""
from __future__ import annotations

import logging

from comfy_api.latest import io

from . import comfy_compat as compat
from .inputs import category, expert, schema
from ..masking import conventions
from ..masking.differential import MODES, DifferentialMask, check_settings, paste_kept, to_device
from ..wan.validation import WanModelInfo, native_window_warnings, summarize_conds, validate_sampling

log = logging.getLogger("WanMasking")
WRAPPER_KEY = "WanMaskSamplerPatch"


def wan_model_info(model_patcher) -> WanModelInfo | None:
    """The numbers the checks need, or None when the model is not a Wan model."""
    facts = compat.wan_model_facts(model_patcher)
    return None if facts is None else WanModelInfo(**facts)


class _Patch:
    """The closures installed on the cloned model. They only reach ComfyUI objects and call the core."""

    def __init__(self, differential: str, strength: float, exact_keep: bool, validate: bool):
        self.mask_fn = DifferentialMask(differential, strength, exact_keep)
        self.exact_keep = exact_keep
        self.validate = validate

    def denoise_mask_function(self, sigma, denoise_mask, extra_options):
        sigmas, timestep, sigma_min = compat.step_schedule(extra_options)
        return self.mask_fn(sigma, denoise_mask, sigmas, timestep, sigma_min)

    def outer_sample(self, executor, *args, **kwargs):
        bound = compat.bind_outer_sample(args, kwargs)
        guider = executor.class_obj
        noise, latent, mask = bound["noise"], bound["latent_image"], bound.get("denoise_mask")
        if self.validate:
            info = wan_model_info(compat.guider_model(guider))
            if info is not None:
                raw = compat.raw_denoise_mask(guider, mask)  # as the user made it, before any resizing
                conds = summarize_conds(compat.guider_conds(guider))
                found = validate_sampling(info, tuple(noise.shape), None if raw is None else tuple(raw.shape), conds)
                slices = compat.native_window_slicing(compat.guider_model(guider))  # None unless native windows
                if slices is not None:
                    found.warnings += native_window_warnings(slices, conds)
                for w in found.warnings:
                    log.warning("WanMaskSamplerPatch: %s", w)
        if mask is not None:
            # Once per sampling call: the mask goes to the sampling device and dtype (pinned, non_blocking on
            # CUDA), so ComfyUI's own prepare_mask and every step work on-device.
            mask = to_device(mask, compat.load_device(compat.guider_model(guider)),
                             noise.dtype if noise.is_floating_point() else None)
            bound["denoise_mask"] = mask
        try:
            out = compat.call_outer_sample(executor, bound)
        finally:
            self.mask_fn.reset()
        if self.exact_keep and mask is not None and latent is not None:
            prepared = compat.prepare_mask(mask, noise.shape, out.device)
            out = paste_kept(out, latent, prepared)
        return out


class WanMaskSamplerPatch(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="WanMaskSamplerPatch",
            display_name="Wan Mask Sampler Patch (differential, exact keep, checks)",
            category=category("sampler"),
            search_aliases=["differential diffusion", "exact keep", "inpaint sampler", "soft mask"],
            description="Patches a Wan model for masked sampling with the native KSampler, KSamplerAdvanced or "
                        "SamplerCustomAdvanced: differential diffusion that is correct at every strength and "
                        "scheduler, kept regions (mask 0) that end exactly at the input latent, and plain-language "
                        f"shape checks before the first step. Noise mask: {conventions.NOISE_MASK}. "
                        "A non-Wan model passes through unchanged (with a warning).",
            inputs=[
                io.Model.Input("model", tooltip="A Wan model (2.1 T2V/I2V/VACE, 2.2 14B or 5B). The output is a "
                                                "patched clone."),
                io.Combo.Input("differential", options=list(MODES), default="timestep", tooltip=
                    "How a soft noise mask is released over the steps. off: the mask as given. timestep: "
                    "ComfyUI's native Differential Diffusion (a cell with value v regenerates once the normalized "
                    "timestep falls to v). step: release by step index (i/N), like WanVideoWrapper. soft: a "
                    "continuous ramp min(1, v/threshold) instead of a hard switch (smoother edges)."),
                io.Float.Input("strength", default=1.0, min=0.0, max=1.0, step=0.01, tooltip=
                    "Blend of the thresholded mask (1.0) and the plain soft mask (0.0): strength*thresholded + "
                    "(1-strength)*mask. 0 really means no binarization (native treats 0 like 1)."),
                expert(io.Boolean.Input("exact_keep", default=True, tooltip=
                    "Mask-0 cells are never released (native karras-type schedules release them on the last "
                    "step) and are pasted back from the input latent after sampling, bit for bit; also after a "
                    "partial KSamplerAdvanced run, so a two-sampler (high/low) chain ends exactly at the input "
                    "there.")),
                expert(io.Boolean.Input("validate", default=True, tooltip=
                    "Before the first step, check model input channels vs latent + concat/VACE conditioning "
                    "(16/36/48), noise mask vs latent frames and size, and spatial multiples. Errors name the "
                    "cause and the fix; cases ComfyUI deliberately adapts only warn.")),
            ],
            outputs=[io.Model.Output(tooltip="The patched clone of the model.")],
        )

    @classmethod
    def validate_inputs(cls, differential=None, strength=None):
        """Refuses an unknown mode or a strength outside [0, 1] before the queue (None: a linked input)."""
        try:
            check_settings(differential if differential is not None else MODES[0],
                           strength if strength is not None else 1.0)
        except ValueError as e:
            return str(e)
        return True

    @classmethod
    def execute(cls, model, differential, strength, exact_keep, validate) -> io.NodeOutput:
        check_settings(differential, strength)
        if wan_model_info(model) is None:
            log.warning("WanMaskSamplerPatch: %s is not a Wan model; passing it through unpatched.",
                        compat.model_class_name(model))
            return io.NodeOutput(model)
        p = _Patch(differential, strength, exact_keep, validate)
        # closures (not bound methods): ModelPatcher.clone deep-copies model_options.
        mask_fn = None if differential == "off" else \
            (lambda sigma, denoise_mask, extra_options: p.denoise_mask_function(sigma, denoise_mask, extra_options))
        patched, replaced = compat.install_sampler_patch(
            model, WRAPPER_KEY, mask_fn, lambda executor, *a, **k: p.outer_sample(executor, *a, **k))
        if replaced:
            log.warning("WanMaskSamplerPatch: replaces a denoise_mask_function set earlier in the graph "
                        "(e.g. DifferentialDiffusion); use only one of them.")
        return io.NodeOutput(patched)
