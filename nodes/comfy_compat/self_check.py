"""ComfyUI internals: self check.

Part of the compatibility boundary (see the package docstring): feature detection, never a
version compare; ComfyUI modules are imported inside the functions that need them."""
from __future__ import annotations

import inspect
from typing import Any, Callable

from .context_windows import native_context_windows_nodes, native_wan_context_handler
from .training import native_train_module, native_trainer_inputs


def self_check() -> dict[str, str]:
    """Each internal this pack relies on -> "ok" or what is missing. Imports ComfyUI (call it inside one)."""
    found: dict[str, str] = {}

    def check(name: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
            found[name] = "ok"
        except Exception as e:  # a missing feature is reported, never raised
            found[name] = f"{type(e).__name__}: {e}"

    def server_routes():
        import os

        import folder_paths
        path = os.path.join(folder_paths.base_path, "server.py")
        with open(path, encoding="utf-8") as f:
            src = f.read()
        assert '@routes.post("/prompt")' in src, f"{path} registers no POST /prompt route on PromptServer.routes"
        assert "self.routes = routes" in src, f"{path}: PromptServer keeps no routes table"

    def sampler_wrappers():
        import comfy.model_patcher
        import comfy.patcher_extension
        assert hasattr(comfy.patcher_extension.WrappersMP, "OUTER_SAMPLE")
        for attr in ("set_model_denoise_mask_function", "add_wrapper_with_key", "remove_wrappers_with_key", "clone"):
            assert hasattr(comfy.model_patcher.ModelPatcher, attr), f"ModelPatcher.{attr} is missing"
        import comfy.sampler_helpers
        assert callable(comfy.sampler_helpers.prepare_mask)
        import comfy.samplers
        assert "denoise_mask_function" in inspect.getsource(comfy.samplers.KSamplerX0Inpaint)

    def wan_model():
        import comfy.model_base
        assert hasattr(comfy.model_base, "WAN21")

    def vae_wiring():
        import comfy.model_management as mm
        import comfy.sd
        for attr in ("memory_used_decode", "memory_used_encode", "first_stage_model", "patcher", "vae_dtype"):
            assert attr in inspect.getsource(comfy.sd.VAE.__init__), f"comfy.sd.VAE has no {attr}"
        for fn in ("load_models_gpu", "vae_offload_device", "should_use_bf16", "intermediate_device"):
            assert hasattr(mm, fn), f"model_management.{fn} is missing"

    def trainer():
        nt = native_train_module()
        inputs = native_trainer_inputs()
        for name in ("model", "latents", "positive", "steps", "learning_rate", "rank", "optimizer", "seed"):
            assert name in inputs.get("required", {}), f"native TrainLoraNode has no input {name}"
        for fn in ("process_cond_list", "make_batch_extra_option_dict", "patch", "unpatch"):
            assert hasattr(nt, fn), f"nodes_train.{fn} is missing"
        from comfy.weight_adapter import adapter_maps, adapters  # noqa: F401
        import comfy.sd
        assert callable(comfy.sd.load_lora_for_models)

    def context_windows():
        import comfy.context_windows as cw
        import comfy.samplers
        for fn in ("IndexListContextWindow", "get_context_weights", "create_prepare_sampling_wrapper"):
            assert hasattr(cw, fn), f"comfy.context_windows.{fn} is missing"
        assert "context_handler" in inspect.getsource(comfy.samplers.calc_cond_batch), \
            "calc_cond_batch no longer reads model_options['context_handler']"
        node = native_context_windows_nodes().WanContextWindowsManualNode
        defaults = {i.id: i.default if getattr(i, "default", None) is not None else getattr(i, "options", [None])[0]
                    for i in node.define_schema().inputs if i.id != "model"}
        handler = native_wan_context_handler(**defaults)
        for attr in ("dim", "context_length", "context_overlap", "fuse_method", "set_step", "get_context_windows"):
            assert hasattr(handler, attr), f"native context handler has no {attr}"

    check("prompt queue (POST /prompt handler)", server_routes)
    check("sampler wrappers and denoise-mask function", sampler_wrappers)
    check("Wan model base class", wan_model)
    check("comfy.sd.VAE wiring", vae_wiring)
    check("LoRA trainer building blocks", trainer)
    check("context windows (handler protocol, native schedule and fuse)", context_windows)
    return found
