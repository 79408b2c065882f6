"""ComfyUI internals: sampler wrappers and the denoise-mask function (WanMaskSamplerPatch).

Part of the compatibility boundary (see the package docstring): feature detection, never a
version compare; ComfyUI modules are imported inside the functions that need them."""
from __future__ import annotations

import logging
import sys
from typing import Callable

import torch

log = logging.getLogger("WanMasking")


def wan_base_model(model_patcher):
    """The model's ``comfy.model_base.WAN21`` (every Wan 2.1/2.2 variant derives from it), else None."""
    import comfy.model_base
    base = getattr(model_patcher, "model", None)
    return base if isinstance(base, comfy.model_base.WAN21) else None


def wan_model_facts(model_patcher) -> dict | None:
    """What the sampler patch's checks need of a Wan model: its class name, the patch embedding's input
    channels, the latent channels, whether it is image-to-video and the VACE input channels (None
    without VACE). None for a model that is not Wan."""
    base = wan_base_model(model_patcher)
    if base is None:
        return None
    dm = base.diffusion_model
    vace = getattr(dm, "vace_in_dim", None)
    return {"name": type(base).__name__, "in_channels": int(dm.patch_embedding.weight.shape[1]),
            "latent_channels": int(base.latent_format.latent_channels),
            "image_to_video": bool(getattr(base, "image_to_video", False)),
            "vace_in_channels": int(vace) if vace is not None else None}


def model_class_name(model_patcher) -> str:
    """The class of the model a ModelPatcher holds (for messages)."""
    return type(getattr(model_patcher, "model", model_patcher)).__name__


def step_schedule(extra_options: dict) -> tuple:
    """(sigmas, timestep(sigma), sigma_min) of the sampling call a denoise-mask function runs in."""
    sampling = extra_options["model"].inner_model.model_sampling
    return extra_options["sigmas"], sampling.timestep, sampling.sigma_min


def guider_model(guider):
    """The ModelPatcher a guider samples with."""
    return guider.model_patcher


def guider_conds(guider) -> dict:
    """A guider's conditionings by name ({} before they are set)."""
    return getattr(guider, "conds", {}) or {}


def load_device(model_patcher):
    """The device ComfyUI loads this model on for sampling."""
    return model_patcher.load_device


def install_sampler_patch(model_patcher, key: str, denoise_mask_fn: Callable | None, outer_sample_fn: Callable):
    """On a clone of ``model_patcher``: the denoise-mask function (if given) and an OUTER_SAMPLE wrapper
    under ``key`` (an earlier one with the same key is replaced). Returns (clone, replaced_other_mask_fn)."""
    import comfy.patcher_extension
    patched = model_patcher.clone()
    replaced = False
    if denoise_mask_fn is not None:
        replaced = "denoise_mask_function" in patched.model_options
        patched.set_model_denoise_mask_function(denoise_mask_fn)
    kind = comfy.patcher_extension.WrappersMP.OUTER_SAMPLE
    patched.remove_wrappers_with_key(kind, key)
    patched.add_wrapper_with_key(kind, key, outer_sample_fn)
    return patched, replaced


OUTER_SAMPLE_ARGS = ("noise", "latent_image", "sampler", "sigmas", "denoise_mask", "callback", "disable_pbar", "seed")
_OUTER_DEFAULTS = {"denoise_mask": None, "callback": None, "disable_pbar": False, "seed": None}


def bind_outer_sample(args, kwargs) -> dict:
    """The OUTER_SAMPLE call's arguments by name (0.33 adds ``latent_shapes=`` as a keyword)."""
    return {**_OUTER_DEFAULTS, **dict(zip(OUTER_SAMPLE_ARGS, args)), **kwargs}


def call_outer_sample(executor, bound: dict):
    extra = {k: v for k, v in bound.items() if k not in OUTER_SAMPLE_ARGS}
    return executor(*(bound[k] for k in OUTER_SAMPLE_ARGS), **extra)


def guider_prepares_mask_before_wrappers(guider) -> bool:
    """True where the guider's ``sample`` resizes the noise mask before calling the OUTER_SAMPLE wrappers
    (0.33), so a wrapper only sees the mask at latent size."""
    code = getattr(getattr(type(guider), "sample", None), "__code__", None)
    return code is not None and "prepare_mask" in code.co_names


def raw_denoise_mask(guider, prepared: torch.Tensor | None) -> torch.Tensor | None:
    """The noise mask as it reached the guider's ``sample``, before any resizing.

    Where the guider resizes it before the wrappers, this reads the mask the caller of ``sample`` passed
    (``comfy.samplers.sample``'s ``denoise_mask``, SamplerCustomAdvanced's ``noise_mask``), read-only,
    from the caller's frame. Returns ``prepared`` itself where the wrappers see the raw mask, and None
    where the raw mask cannot be found (the checks that need it are then skipped, with a debug log).
    """
    if prepared is None or not guider_prepares_mask_before_wrappers(guider):
        return prepared
    sample_code = type(guider).sample.__code__
    frame = sys._getframe(1)
    try:
        for _ in range(32):
            if frame is None:
                break
            if frame.f_code is sample_code:
                caller = frame.f_back
                for name in ("denoise_mask", "noise_mask"):
                    value = caller.f_locals.get(name) if caller is not None else None
                    if isinstance(value, torch.Tensor):
                        return value
                break
            frame = frame.f_back
    finally:
        del frame
    log.debug("WanMaskSamplerPatch: the noise mask before resizing was not found; its frame check is skipped.")
    return None


def prepare_mask(mask: torch.Tensor, shape, device) -> torch.Tensor:
    import comfy.sampler_helpers
    return comfy.sampler_helpers.prepare_mask(mask, shape, device)
