"""The one boundary between this pack and ComfyUI internals (anything that is not a public node API).

Every use of the prompt queue and worker, the LoRA trainer's building blocks, ``comfy.sd.VAE`` wiring,
sampler wrappers and the denoise-mask function goes through this module, with feature detection
(never version-string comparison). A new ComfyUI that changes one of them breaks here, in one file:
:func:`self_check` lists what it found, and ``tests/integration/test_compat.py`` names this file when a
feature is missing.

Tested against ComfyUI 0.3.64 and 0.33.0. Known differences it bridges:

* prompt queue items: 5 elements (0.3.64) or 6 (0.33, "sensitive" extra data). The runner never builds
  them: :func:`post_prompt` calls the running server's own ``POST /prompt`` handler.
* the guider resizes the noise mask to the latent before (0.33) or inside (0.3.64) the OUTER_SAMPLE
  wrappers: :func:`raw_denoise_mask` gives the sampler patch the mask as the user made it.
* ``TrainLoraNode``: a V1 node with ``train()`` (0.3.64) or a V3 ``io.ComfyNode`` with list inputs,
  bucket and bypass modes (0.33). This pack's trainer (nodes/lora_trainer.py) is its own sampler on
  the native building blocks below; the node's inputs mirror the native node of the running version.

Nothing here imports this pack (the runner loads this file on its own), and no ComfyUI module is
imported before it is needed, so the file can be loaded before ComfyUI has parsed its arguments.
"""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import sys
import threading
from typing import Any, Callable

import torch

log = logging.getLogger("WanMasking")
FILE = __file__


# ============================================================================================
# Public node-API helpers (re-exported so nodes/ has one place to import ComfyUI from)
# ============================================================================================

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


# ============================================================================================
# Prompt queue and worker (the embedded runner)
# ============================================================================================

class _JsonRequest:
    """Just enough of an aiohttp request for ComfyUI's POST /prompt handler."""

    def __init__(self, body: dict):
        self._body = body
        self.headers: dict[str, str] = {}
        self.query: dict[str, str] = {}
        self.rel_url = self

    async def json(self):
        return json.loads(json.dumps(self._body))


def route_handler(server, method: str, path: str) -> Callable:
    """The handler the running server registered for ``method path`` (raises when it has none)."""
    for route in getattr(server, "routes", []):
        if getattr(route, "method", None) == method and getattr(route, "path", None) == path:
            return route.handler
    raise RuntimeError(f"this ComfyUI's server has no {method} {path} route (see {FILE})")


def post_prompt(server, loop: asyncio.AbstractEventLoop, body: dict) -> tuple[int, dict]:
    """Queue a prompt exactly as ``POST /prompt`` does in the running version: node replacements,
    validation, extra data and the queue item's layout are the server's own. Returns (HTTP status, JSON)."""
    handler = route_handler(server, "POST", "/prompt")
    response = loop.run_until_complete(handler(_JsonRequest(body)))
    return response.status, json.loads(response.text or "{}")


def prompt_worker_thread() -> threading.Thread | None:
    """The thread running ComfyUI's ``prompt_worker`` (named after its target by ``threading``), or None."""
    for t in threading.enumerate():
        if t.name.endswith("(prompt_worker)"):
            return t
    return None


def interrupt_processing() -> None:
    import nodes
    nodes.interrupt_processing()


def object_info() -> dict:
    """``/object_info`` as the running server builds it (every node class, V1 and V3)."""
    import nodes
    from comfy_api.internal import _ComfyNodeInternal

    info = {}
    for name, cls in nodes.NODE_CLASS_MAPPINGS.items():
        if issubclass(cls, _ComfyNodeInternal):
            info[name] = cls.GET_NODE_INFO_V1()
            continue
        inputs = cls.INPUT_TYPES()
        info[name] = {"input": inputs, "input_order": {k: list(v) for k, v in inputs.items()},
                      "output": list(cls.RETURN_TYPES),
                      "output_name": list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)),
                      "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
                      "display_name": nodes.NODE_DISPLAY_NAME_MAPPINGS.get(name, name)}
    return info


# ============================================================================================
# Sampler wrappers and the denoise-mask function (WanMaskSamplerPatch)
# ============================================================================================

def wan_base_model(model_patcher):
    """The model's ``comfy.model_base.WAN21`` (every Wan 2.1/2.2 variant derives from it), else None."""
    import comfy.model_base
    base = getattr(model_patcher, "model", None)
    return base if isinstance(base, comfy.model_base.WAN21) else None


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


# ============================================================================================
# comfy.sd.VAE wiring (WanMaskVAELoader / Decode / Encode)
# ============================================================================================

def should_use_bf16(device: torch.device) -> bool:
    import comfy.model_management
    return comfy.model_management.should_use_bf16(device)


def load_vae_file(name: str):
    """(state dict, metadata, native comfy.sd.VAE) for a file of the ``vae`` folder."""
    import comfy.sd
    import comfy.utils
    import folder_paths
    path = folder_paths.get_full_path_or_raise("vae", name)
    sd, metadata = comfy.utils.load_torch_file(path, return_metadata=True)
    vae = comfy.sd.VAE(sd=sd, metadata=metadata)
    vae.throw_exception_if_invalid()
    return sd, metadata, vae


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


# ============================================================================================
# LoRA training building blocks (WanMaskTrainLoRA)
# ============================================================================================

def _native_train():
    import comfy_extras.nodes_train as native_train
    return native_train


def node_inputs_v1(cls) -> dict:
    """A node's inputs in V1 form ({"required": {...}, "optional": {...}}), for V1 and V3 nodes alike."""
    if hasattr(cls, "GET_NODE_INFO_V1"):
        raw = cls.GET_NODE_INFO_V1()["input"]
    else:
        raw = cls.INPUT_TYPES()
    return {section: dict(raw[section]) for section in ("required", "optional") if section in raw}


def native_trainer_inputs() -> dict:
    """The running version's native Train LoRA inputs, V1 form, in native order."""
    return node_inputs_v1(_native_train().TrainLoraNode)


def native_trainer_takes_lists() -> bool:
    """True where native Train LoRA receives every input as a list (0.33's ``is_input_list``)."""
    return bool(getattr(_native_train().TrainLoraNode, "INPUT_IS_LIST", False))


def string_to_dtype(name: str) -> torch.dtype:
    import node_helpers
    return node_helpers.string_to_torch_dtype(name)


def load_lora_for_inference(model, lora: dict, strength: float = 1.0):
    """The model with a trained LoRA applied, as native LoraModelLoader does."""
    import comfy.sd
    model_lora, _ = comfy.sd.load_lora_for_models(model, None, lora, strength, 0)
    return model_lora


class _BiasDiff(torch.nn.Module):
    """A trainable additive diff for a 1-D weight or a bias (saved as ``.diff`` / ``.diff_b``, as native)."""

    def __init__(self, diff: torch.nn.Parameter):
        super().__init__()
        self.diff = diff

    def __call__(self, b):
        return (b.to(self.diff) + self.diff).to(b.dtype)

    def passive_memory_usage(self):
        return self.diff.nelement() * self.diff.element_size()

    def move_to(self, device):
        self.to(device=device)
        return self.passive_memory_usage()


def _trainable_classes() -> tuple[type, ...]:
    from comfy.weight_adapter.base import WeightAdapterTrainBase
    classes = [WeightAdapterTrainBase, _BiasDiff]
    native_bias = getattr(_native_train(), "BiasDiff", None)
    if native_bias is not None:
        classes.append(native_bias)
    return tuple(classes)


def is_trained_now(fn) -> bool:
    """A LoRA / diff adapter whose parameters are being trained (a LoRA trained earlier in the graph
    and passed in as part of the MODEL has them frozen, and stays part of the teacher)."""
    return isinstance(fn, _trainable_classes()) and any(p.requires_grad for p in fn.parameters())


@contextlib.contextmanager
def trained_adapters_disabled(model: torch.nn.Module):
    """Temporarily drop the adapters being trained from every module's weight functions (and from
    bypass hooks' adapter lists), so the model computes the base (teacher) prediction."""
    saved = []
    for m in model.modules():
        for attr in ("weight_function", "bias_function"):
            fns = getattr(m, attr, None)
            if fns and any(is_trained_now(f) for f in fns):
                saved.append((m, attr, fns))
                setattr(m, attr, [f for f in fns if not is_trained_now(f)])
    try:
        yield len(saved)
    finally:
        for m, attr, fns in saved:
            setattr(m, attr, fns)


def load_existing_lora(existing_lora: str) -> tuple[dict, int]:
    """(weights, steps) of a LoRA file of the ``loras`` folder ("[None]" gives ({}, 0)), as native."""
    if existing_lora == "[None]":
        return {}, 0
    import comfy.utils
    import folder_paths
    path = folder_paths.get_full_path_or_raise("loras", existing_lora)
    try:
        steps = int(existing_lora.split("_steps_")[0].split("_")[-1])
    except ValueError:
        raise ValueError(f"existing_lora: {existing_lora!r} does not name its step count like native's "
                         "'trained_lora_10_steps_<date>.safetensors'. Fix: choose a LoRA saved by SaveLoRA.") from None
    return comfy.utils.load_torch_file(path), steps


def add_lora_adapters(mp, existing: dict, algorithm: str, lora_dtype: torch.dtype, rank: int,
                      bypass: bool = False):
    """Trainable adapters on every weight-function module, as native: a LoRA-family adapter per >=2-D
    weight (an existing LoRA's where it has one), a diff per 1-D weight and per bias.

    Returns (lora_sd, adapters, bypass_injections or None).
    """
    from comfy.weight_adapter import adapter_maps, adapters
    if algorithm not in adapter_maps:
        raise ValueError(f"algorithm: unknown {algorithm!r}; this ComfyUI offers {', '.join(adapter_maps)}.")
    manager = None
    if bypass:
        try:
            from comfy.weight_adapter.bypass import BypassInjectionManager
        except ImportError:
            raise ValueError("bypass_mode: this ComfyUI has no bypass injection for training adapters. "
                             "Fix: turn bypass_mode off.") from None
        manager = BypassInjectionManager()
    lora_sd, made = {}, []
    for n, m in mp.model.named_modules():
        if not hasattr(m, "weight_function"):
            continue
        if m.weight is not None:
            key = f"{n}.weight"
            if m.weight.dim() >= 2:
                alpha = float(existing.get(f"{key}.alpha", 1.0))
                adapter = None
                for cls in adapters:
                    adapter = cls.load(n, existing, alpha, existing.get(f"{key}.dora_scale"))
                    if adapter is not None:
                        break
                train = (adapter.to_train() if adapter is not None else
                         adapter_maps[algorithm].create_train(m.weight, rank=rank, alpha=1.0)).to(lora_dtype)
                train = train.train().requires_grad_(True)
                for pname, p in train.named_parameters():
                    lora_sd[f"{n}.{pname}"] = p
                if manager is not None:
                    manager.add_adapter(key, train, strength=1.0)
                else:
                    mp.add_weight_wrapper(key, train)
            else:
                diff = torch.nn.Parameter(torch.zeros(m.weight.shape, dtype=lora_dtype, requires_grad=True))
                train = _BiasDiff(diff)
                lora_sd[f"{n}.diff"] = diff
                mp.add_weight_wrapper(key, train)
            made.append(train)
        if getattr(m, "bias", None) is not None:
            diff = torch.nn.Parameter(torch.zeros(m.bias.shape, dtype=lora_dtype, requires_grad=True))
            train = _BiasDiff(diff)
            lora_sd[f"{n}.diff_b"] = diff
            mp.add_weight_wrapper(f"{n}.bias", train)
            made.append(train)
    injections = manager.create_injections(mp.model) if manager is not None else None
    return lora_sd, made, injections


def make_optimizer(name: str, params, lr: float):
    optimizers = {"Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW, "SGD": torch.optim.SGD,
                  "RMSprop": torch.optim.RMSprop}
    if name not in optimizers:
        raise ValueError(f"optimizer: unknown {name!r}; choose one of {', '.join(optimizers)}.")
    return optimizers[name](params, lr=lr)


def checkpointing_modules(diffusion_model: torch.nn.Module, depth: int = 1) -> list[torch.nn.Module]:
    """The modules native gradient checkpointing wraps (``find_modules_at_depth`` where the version
    has it, else ``find_all_highest_child_module_with_forward``)."""
    nt = _native_train()
    if hasattr(nt, "find_modules_at_depth"):
        return nt.find_modules_at_depth(diffusion_model, depth=depth)
    return nt.find_all_highest_child_module_with_forward(diffusion_model)


def checkpoint_patch(m: torch.nn.Module, offloading: bool = False) -> None:
    nt = _native_train()
    if "offloading" in inspect.signature(nt.patch).parameters:
        nt.patch(m, offloading=offloading)
    else:
        nt.patch(m)


def checkpoint_unpatch(m: torch.nn.Module) -> None:
    _native_train().unpatch(m)


def make_train_guider(mp, offloading: bool):
    """Native's training guider where the version has one (it loads the model for training, with
    weight offloading), else the basic guider, as 0.3.64's trainer used."""
    nt = _native_train()
    if hasattr(nt, "TrainGuider"):
        return nt.TrainGuider(mp, offloading=offloading)
    import comfy_extras.nodes_custom_sampler as custom_sampler
    return custom_sampler.Guider_Basic(mp)


def sampler_base() -> type:
    import comfy.samplers
    return comfy.samplers.Sampler


def random_noise(seed: int, like: torch.Tensor) -> torch.Tensor:
    """ComfyUI's seeded noise for a latent (``Noise_RandomNoise``), as the native trainer draws it."""
    import comfy_extras.nodes_custom_sampler as custom_sampler
    return custom_sampler.Noise_RandomNoise(seed).generate_noise({"samples": like})


def detach_conds(conds):
    return _native_train().process_cond_list(conds)


def batch_extra_args(extra_args: dict, idx: list[int], full_size: int) -> dict:
    return _native_train().make_batch_extra_option_dict(extra_args, idx, full_size=full_size)


@contextlib.contextmanager
def training_state(quantized_backward: bool = False):
    """ComfyUI's global 'training now' flags, where the version has them."""
    import comfy.model_management as mm
    saved = {k: getattr(mm, k) for k in ("in_training", "training_fp8_bwd") if hasattr(mm, k)}
    if "in_training" in saved:
        mm.in_training = True
    if "training_fp8_bwd" in saved:
        mm.training_fp8_bwd = bool(quantized_backward)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(mm, k, v)


def load_for_training(mp, offloading: bool = False) -> None:
    import comfy.model_management as mm
    mm.load_models_gpu([mp], memory_required=1e20, force_full_load=not offloading)


def clone_for_training(model):
    """A clone whose modules the trainer may change (0.33 deep-copies, as native does there)."""
    if "force_deepcopy" in inspect.signature(model.clone).parameters:
        return model.clone(force_deepcopy=True)
    return model.clone()


def fp16_accumulation_enabled() -> bool:
    try:
        from comfy.cli_args import PerformanceFeature, args
    except ImportError:
        return False
    return getattr(PerformanceFeature, "Fp16Accumulation", None) in getattr(args, "fast", ())


# ============================================================================================
# Self check
# ============================================================================================

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
        nt = _native_train()
        inputs = native_trainer_inputs()
        for name in ("model", "latents", "positive", "steps", "learning_rate", "rank", "optimizer", "seed"):
            assert name in inputs.get("required", {}), f"native TrainLoraNode has no input {name}"
        for fn in ("process_cond_list", "make_batch_extra_option_dict", "patch", "unpatch"):
            assert hasattr(nt, fn), f"nodes_train.{fn} is missing"
        from comfy.weight_adapter import adapter_maps, adapters  # noqa: F401
        import comfy.sd
        assert callable(comfy.sd.load_lora_for_models)

    check("prompt queue (POST /prompt handler)", server_routes)
    check("sampler wrappers and denoise-mask function", sampler_wrappers)
    check("Wan model base class", wan_model)
    check("comfy.sd.VAE wiring", vae_wiring)
    check("LoRA trainer building blocks", trainer)
    return found
