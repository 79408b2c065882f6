"""ComfyUI internals: self check.

Part of the compatibility boundary (see the package docstring): feature detection, never a
version compare; ComfyUI modules are imported inside the functions that need them.

Every feature is detected by behaviour, never by reading ComfyUI's source text: each ``probe_*``
function calls the ComfyUI object it is given on a tiny input (or builds one) and raises
AssertionError naming what is missing or changed. :func:`self_check` hands them the running
ComfyUI's objects; tests hand them fakes that present a changed shape."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

import torch

from .context_windows import native_context_windows_nodes, native_wan_context_handler
from .prompt_queue import post_prompt
from .training import native_train_module, native_trainer_inputs
from .vae import wire_vae

VAE_ATTRIBUTES = ("memory_used_decode", "memory_used_encode", "first_stage_model", "patcher", "vae_dtype", "device",
                  "latent_channels")
# The smallest AutoencoderKL comfy.sd.VAE builds from a ``config`` (GroupNorm needs 32 channels).
TINY_VAE_CONFIG = {"params": {"embed_dim": 4, "ddconfig": {
    "double_z": True, "z_channels": 4, "resolution": 8, "in_channels": 3, "out_ch": 3, "ch": 32, "ch_mult": [1],
    "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}}}


def probe_prompt_route(server_class) -> None:
    """A PromptServer built on a fresh loop has a POST /prompt handler that the embedded runner can call
    in-process (:func:`post_prompt`) and that answers an empty prompt with a 400 error, queuing nothing.
    ``PromptServer.instance`` is left as it was."""
    had, previous = "instance" in vars(server_class), vars(server_class).get("instance")
    loop = asyncio.new_event_loop()
    try:
        srv = server_class(loop)
        status, body = post_prompt(srv, loop, {"prompt": {}})
        assert status == 400 and "error" in body, \
            f"POST /prompt answered an empty prompt with {status} {body}, not a 400 error"
    finally:
        loop.close()
        if had:
            server_class.instance = previous
        elif "instance" in vars(server_class):
            del server_class.instance


def probe_denoise_mask_function(inpaint_class) -> None:
    """KSamplerX0Inpaint (the noise-mask step) calls ``model_options["denoise_mask_function"]`` with
    (sigma, mask, extra_options={"model", "sigmas"}) and blends with the mask it returns."""
    calls = []

    class Inner:  # what KSamplerX0Inpaint wraps: a CFG guider-like callable with the model inside
        class inner_model:  # noqa: N801 - the attribute name KSamplerX0Inpaint reads
            @staticmethod
            def scale_latent_inpaint(x, latent_image, **_):
                return latent_image

        def __call__(self, x, sigma, model_options=None, seed=None):
            return x

    def mask_function(sigma, mask, extra_options):
        calls.append(extra_options)
        return torch.zeros_like(mask)  # keep everything: the step returns the latent image

    model, sigmas = Inner(), torch.tensor([1.0, 0.0])
    step = inpaint_class(model, sigmas)
    step.latent_image, step.noise = torch.full((1, 1, 2, 2), 3.0), torch.zeros(1, 1, 2, 2)
    out = step(torch.ones(1, 1, 2, 2), torch.tensor([1.0]), torch.ones(1, 1, 2, 2),
               model_options={"denoise_mask_function": mask_function})
    assert calls, "KSamplerX0Inpaint never calls model_options['denoise_mask_function']"
    assert calls[0].get("model") is model and calls[0].get("sigmas") is sigmas, \
        f"the denoise-mask function's extra_options hold {sorted(calls[0])}, not the step's model and sigmas"
    assert torch.equal(out, step.latent_image), "KSamplerX0Inpaint does not blend with the mask the function returns"


def probe_vae_wiring(vae_class) -> None:
    """A comfy.sd.VAE built from a tiny config has the attributes :func:`wire_vae` replaces and reads,
    its memory estimates answer (shape, dtype), and wiring a module into it gives a patcher holding
    that module."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the tiny VAE has no weights: ComfyUI warns of every missing key
    try:
        vae = vae_class(sd={}, config=TINY_VAE_CONFIG, device=torch.device("cpu"), dtype=torch.float32)
    finally:
        root.setLevel(level)
    for attr in VAE_ATTRIBUTES:
        assert hasattr(vae, attr), f"comfy.sd.VAE has no {attr}"
    for kind in ("decode", "encode"):
        try:
            estimate = getattr(vae, f"memory_used_{kind}")((1, 4, 8, 8), torch.float32)
        except TypeError as e:
            raise AssertionError(f"comfy.sd.VAE.memory_used_{kind} no longer takes (shape, dtype): {e}") from e
        assert float(estimate) >= 0, f"comfy.sd.VAE.memory_used_{kind} answered {estimate!r}"
    module = torch.nn.Identity()
    wire_vae(vae, module, torch.float32, torch.float32)
    assert vae.first_stage_model is module and getattr(vae.patcher, "model", None) is module, \
        "a wired comfy.sd.VAE does not run the module it was given"


class _WindowsProbe:
    """A context handler that always windows and answers ``execute`` with a marker."""

    marker = object()

    def __init__(self):
        self.executed_with = None

    def should_use_context(self, *args, **kwargs):
        return True

    def execute(self, calc_cond_batch, *args, **kwargs):
        self.executed_with = calc_cond_batch
        return self.marker


def probe_context_handler(calc_cond_batch) -> None:
    """comfy.samplers.calc_cond_batch hands the step to ``model_options["context_handler"]`` when its
    ``should_use_context`` says so, and returns what the handler's ``execute`` returns."""
    handler = _WindowsProbe()
    out = calc_cond_batch(None, [[]], torch.zeros(1, 1, 1, 1), torch.zeros(1), {"context_handler": handler})
    assert out is handler.marker and callable(handler.executed_with), \
        "calc_cond_batch no longer hands the step to model_options['context_handler']"


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
        import server
        probe_prompt_route(server.PromptServer)

    def sampler_wrappers():
        import comfy.model_patcher
        import comfy.patcher_extension
        assert hasattr(comfy.patcher_extension.WrappersMP, "OUTER_SAMPLE")
        for attr in ("set_model_denoise_mask_function", "add_wrapper_with_key", "remove_wrappers_with_key", "clone"):
            assert hasattr(comfy.model_patcher.ModelPatcher, attr), f"ModelPatcher.{attr} is missing"
        import comfy.sampler_helpers
        assert callable(comfy.sampler_helpers.prepare_mask)
        import comfy.samplers
        probe_denoise_mask_function(comfy.samplers.KSamplerX0Inpaint)

    def wan_model():
        import comfy.model_base
        assert hasattr(comfy.model_base, "WAN21")

    def vae_wiring():
        import comfy.model_management as mm
        import comfy.sd
        probe_vae_wiring(comfy.sd.VAE)
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
        probe_context_handler(comfy.samplers.calc_cond_batch)
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
