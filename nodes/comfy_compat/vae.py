"""ComfyUI internals: comfy.sd.VAE wiring (WanMaskVAELoader / Decode / Encode).

Part of the compatibility boundary (see the package docstring): feature detection, never a
version compare; ComfyUI modules are imported inside the functions that need them."""
from __future__ import annotations

import copy
import logging

import torch


def should_use_bf16(device: torch.device) -> bool:
    import comfy.model_management
    return comfy.model_management.should_use_bf16(device)


def vae_model(vae) -> torch.nn.Module:
    """The module a comfy.sd.VAE encodes and decodes with."""
    return vae.first_stage_model


def vae_device(vae) -> torch.device:
    return vae.device


def vae_latent_channels(vae) -> int:
    return int(vae.latent_channels)


def native_vae_weights(vae) -> dict:
    """The VAE's weights as its file has them (comfy.sd.VAE.get_sd)."""
    return vae.get_sd()


def vae_dtype(vae) -> torch.dtype:
    """The precision the VAE runs in."""
    return vae.vae_dtype


def copy_vae(vae):
    """A shallow copy of a comfy.sd.VAE (its own module and patcher can then be set without touching the original)."""
    return copy.copy(vae)


def remembered(vae, key: str):
    """What this pack attached to the VAE object under ``key`` (None when nothing)."""
    return getattr(vae, key, None)


def remember(vae, key: str, value) -> None:
    setattr(vae, key, value)


def native_memory_estimate(vae, kind: str, shape) -> int:
    """ComfyUI's own memory estimate for a ``kind`` ("decode" / "encode") of ``shape`` (bytes)."""
    return getattr(vae, f"memory_used_{kind}")(shape, None)


def read_vae_file(name: str) -> tuple[dict, dict | None]:
    """(state dict, metadata) of a file of the ``vae`` folder, read only: nothing is built from it, so
    the caller can identify it before ComfyUI's own detection (whose error speaks of checkpoints)."""
    import comfy.utils
    import folder_paths
    path = folder_paths.get_full_path_or_raise("vae", name)
    return comfy.utils.load_torch_file(path, return_metadata=True)


def native_vae(sd: dict, metadata: dict | None):
    """ComfyUI's comfy.sd.VAE for a state dict the caller has already identified (raises when ComfyUI
    cannot build it either)."""
    import comfy.sd
    vae = comfy.sd.VAE(sd=sd, metadata=metadata)
    vae.throw_exception_if_invalid()
    return vae


def wire_vae(vae, model: torch.nn.Module, decode_dtype: torch.dtype, encode_dtype: torch.dtype):
    """Make the comfy.sd.VAE ``vae`` run ``model`` for every encode/decode, managed by a ModelPatcher.
    ComfyUI's memory estimates come from the model's own traced working set when it offers one
    (``decode_working_set`` / ``encode_working_set``), else stay native's at the model's precisions."""
    import comfy.model_management as mm
    import comfy.model_patcher
    native_dec, native_enc = vae.memory_used_decode, vae.memory_used_encode
    vae.first_stage_model = model
    vae.patcher = comfy.model_patcher.ModelPatcher(model, load_device=vae.device, offload_device=mm.vae_offload_device())
    # Inputs reach the model in fp32 (lossless); the model casts each half to its own precision.
    vae.vae_dtype = torch.float32
    # Plain torch modules (no per-layer weight casting): never load them partially.
    vae.disable_offload = True
    vae.memory_used_decode = _estimate(getattr(model, "decode_working_set", None), native_dec, decode_dtype)
    vae.memory_used_encode = _estimate(getattr(model, "encode_working_set", None), native_enc, encode_dtype)
    return vae


def _estimate(traced, native, dtype: torch.dtype):
    """A ``memory_used_*(shape, dtype)`` for comfy.sd.VAE: ``traced(shape)`` (bytes, per sample, at the
    model's own precision), falling back to the native formula if the model has none or it fails."""
    def memory_used(shape, _dtype=None):
        if callable(traced):
            try:
                return traced(shape)
            except Exception:  # noqa: BLE001 - an estimate must never stop a decode
                logging.getLogger("WanMasking").warning("VAE working-set trace failed; using ComfyUI's estimate",
                                                        exc_info=True)
        return native(shape, dtype)
    return memory_used


def load_vae_for(vae, memory_required: float) -> None:
    """Load the VAE's patcher fully on its device (ComfyUI frees what it needs for ``memory_required``)."""
    import comfy.model_management as mm
    mm.load_models_gpu([vae.patcher], memory_required=memory_required, force_full_load=True)
