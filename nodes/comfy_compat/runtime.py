"""ComfyUI internals: public node-API helpers (re-exported so nodes/ has one place to import ComfyUI from).

Part of the compatibility boundary (see the package docstring): feature detection, never a
version compare; ComfyUI modules are imported inside the functions that need them."""
from __future__ import annotations


import torch


def progress_bar(total: int):
    import comfy.utils
    return comfy.utils.ProgressBar(total)


def throw_if_interrupted() -> None:
    import comfy.model_management
    comfy.model_management.throw_exception_if_processing_interrupted()


def intermediate_device() -> torch.device:
    import comfy.model_management
    return comfy.model_management.intermediate_device()


def native_noise_mask_as_sampled(noise_mask: torch.Tensor, latent_shape) -> torch.Tensor:
    """What the native sampler makes of a noise mask for a latent of ``latent_shape`` (comfy.utils.reshape_mask)."""
    import comfy.utils
    return comfy.utils.reshape_mask(noise_mask, latent_shape)


def native_category(node_id: str) -> str | None:
    """The library category of a registered native node (None when this ComfyUI lacks it). Custom
    node packs load after ComfyUI's own nodes, so this is known when the pack's schemas are built."""
    import nodes
    cls = nodes.NODE_CLASS_MAPPINGS.get(node_id)
    if cls is None:
        return None
    try:
        # a V3 node's own schema: its CATEGORY class property can be a V3 parent's, cached before the
        # subclass changed the category (0.33's WanContextWindowsManual reads "model/patch" there)
        category = cls.define_schema().category if hasattr(cls, "define_schema") else cls.CATEGORY
    except Exception:  # a schema that cannot be built here
        return None
    return str(category) if category else None


def empty_latent_mean(channels: int) -> torch.Tensor:
    """The empty latent in raw VAE space, per channel [C] (0 after the model's normalization):
    ComfyUI's own Wan 2.1 (16 ch) or Wan 2.2 (48 ch) latent format."""
    import comfy.latent_formats
    fmt = comfy.latent_formats.Wan22() if channels == 48 else comfy.latent_formats.Wan21()
    return fmt.process_out(torch.zeros(1, channels, 1, 1, 1)).flatten()
