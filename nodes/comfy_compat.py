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
* context windows: 0.3.64's handler slices only conditionings with fewer dims than the window dim, so
  Wan's 5-D ``c_concat`` and 6-D ``vace_context`` reach the model whole; 0.33 slices them (with an anchor
  frame before each window) and converts overlaps differently. :class:`WanMaskContextHandler` composes
  the running version's own handler (built by its own node) for schedules, steps, fuse weights and
  FreeNoise; :func:`native_window_slicing` probes what a native handler slices.
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


def node_replacements(server) -> dict:
    """The node replacements a PromptServer registers, as ``GET /node_replacements`` serves them
    (``NodeReplaceManager``, ComfyUI 0.33+); {} where the server has no such manager."""
    manager = getattr(server, "node_replace_manager", None)
    as_dict = getattr(manager, "as_dict", None)
    return as_dict() if callable(as_dict) else {}


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


def native_trainer_schema_inputs() -> list:
    """The running version's native Train LoRA inputs as V3 ``io`` inputs, in native order: native's
    own input objects where it is a V3 node, else converted from its V1 declaration."""
    cls = _native_train().TrainLoraNode
    if hasattr(cls, "define_schema"):
        return list(cls.define_schema().inputs)
    return [_v1_to_io(name, spec, section == "optional")
            for section, entries in node_inputs_v1(cls).items() for name, spec in entries.items()]


_V1_WIDGET_KEYS = ("default", "min", "max", "step", "tooltip", "multiline", "control_after_generate")


def _v1_to_io(name: str, spec: tuple, optional: bool):
    """One V1 input declaration ``(type, options)`` as the equivalent V3 input."""
    from comfy_api.latest import io
    kind, opts = spec[0], dict(spec[1]) if len(spec) > 1 and spec[1] else {}
    kw = {k: opts[k] for k in _V1_WIDGET_KEYS if k in opts}
    if isinstance(kind, (list, tuple)):
        return io.Combo.Input(name, options=list(kind), optional=optional, **kw)
    widgets = {"INT": io.Int, "FLOAT": io.Float, "BOOLEAN": io.Boolean, "STRING": io.String}
    if str(kind) in widgets:
        cls = widgets[str(kind)]
        accepted = inspect.signature(cls.Input.__init__).parameters
        return cls.Input(name, optional=optional, **{k: v for k, v in kw.items() if k in accepted})
    return io.Custom(str(kind)).Input(name, optional=optional, tooltip=kw.get("tooltip"))


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


def trainer_features() -> dict:
    """Which of native Train LoRA's options this ComfyUI's trainer has (WanMaskTrainLoRA declares all of
    them on every version and refuses the ones missing here when set away from their defaults)."""
    import comfy.model_management as mm
    from comfy.weight_adapter import adapter_maps
    nt = _native_train()
    try:
        import comfy.weight_adapter.bypass  # noqa: F401
        bypass = True
    except ImportError:
        bypass = False
    return {"quantized_backward": hasattr(mm, "training_fp8_bwd"),
            "checkpoint_depth": hasattr(nt, "find_modules_at_depth"),
            "offloading": hasattr(nt, "TrainGuider") and "offloading" in inspect.signature(nt.patch).parameters,
            "bypass_mode": bypass,
            "algorithms": list(adapter_maps)}


def fp16_accumulation_enabled() -> bool:
    try:
        from comfy.cli_args import PerformanceFeature, args
    except ImportError:
        return False
    return getattr(PerformanceFeature, "Fp16Accumulation", None) in getattr(args, "fast", ())


# ============================================================================================
# Training sets from folders (WanMaskTrainingSet)
# ============================================================================================

def input_directory() -> str:
    import folder_paths
    return folder_paths.get_input_directory()


def output_directory() -> str:
    import folder_paths
    return folder_paths.get_output_directory()


def input_subfolders() -> list[str]:
    """Subfolders of ComfyUI's input folder, recursive, '/'-separated (as native's dataset loaders list them)."""
    import folder_paths
    return list(folder_paths.get_input_subfolders())


def dataset_cache_root() -> str:
    """Where encoded training sets are cached: ComfyUI's ``datasets`` folder where this version registers
    one (native SaveTrainingDataset writes there), else ``<output>/datasets``."""
    import os
    import folder_paths
    roots = folder_paths.folder_names_and_paths.get("datasets")
    if roots and roots[0]:
        return roots[0][0]
    return os.path.join(folder_paths.get_output_directory(), "datasets")


def vae_spatial_stride(vae) -> int:
    """Pixels per latent cell of a comfy.sd.VAE (8 for Wan 2.1, 16 for the Wan 2.2 5B VAE)."""
    return int(vae.spacial_compression_encode())


def vae_state_dict(vae) -> dict:
    return vae.first_stage_model.state_dict()


def clip_state_dict(clip) -> dict:
    return clip.cond_stage_model.state_dict()


def encode_caption(clip, text: str) -> list:
    """CONDITIONING of one caption, as native MakeTrainingDataset encodes it."""
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))


# ============================================================================================
# Context windows (WanMaskContextWindows; the sampler patch's check of native windows)
# ============================================================================================

def _native_context_windows_nodes():
    import comfy_extras.nodes_context_windows as native_nodes
    return native_nodes


def native_wan_context_windows_schema():
    """The running version's native ``WanContextWindowsManual`` schema (its inputs, in native order, and
    its category), so WanMaskContextWindows takes exactly the same inputs."""
    return _native_context_windows_nodes().WanContextWindowsManualNode.define_schema()


class _SettingsOnlyPatcher:
    """Just enough of a ModelPatcher for native's context-window node to store its handler on."""

    def __init__(self):
        self.model_options: dict = {"transformer_options": {}}

    def clone(self):
        return self

    def add_wrapper_with_key(self, *args, **kwargs):
        pass


def native_wan_context_handler(**inputs):
    """The context handler native ``WanContextWindowsManual`` builds from these inputs (its own unit
    conversion from pixel to latent frames, parsing and defaults, in the running version).

    Native's node runs on a stand-in model that only keeps the handler; nothing is sampled.
    """
    stand_in = _SettingsOnlyPatcher()
    _native_context_windows_nodes().WanContextWindowsManualNode.execute(model=stand_in, **inputs)
    handler = stand_in.model_options.get("context_handler")
    if handler is None:
        raise RuntimeError(f"native WanContextWindowsManual set no context_handler on this ComfyUI (see {FILE})")
    return handler


def context_handler_settings(native) -> dict:
    """What the handler decides beyond the schedule, where the version has it: the causal anchor frame
    (0.33 ``causal_window_fix``), conditioning retained per window (``retain_first_frame``), the split
    of combined conditionings over the windows, and the fuse kind."""
    return {"anchor": bool(getattr(native, "causal_window_fix", False)),
            "retain": [int(i) for i in getattr(native, "cond_retain_index_list", []) or []],
            "split": bool(getattr(native, "split_conds_to_windows", False)),
            "relative": getattr(native.fuse_method, "name", "") == "relative"}


def _context_weights(native, length: int, full_length: int, idxs: list[int], timestep):
    import comfy.context_windows as cw
    kwargs = {"sigma": timestep}
    if "context_overlap" in inspect.signature(cw.get_context_weights).parameters:
        kwargs["context_overlap"] = native.context_overlap
    return cw.get_context_weights(length, full_length, idxs, native, **kwargs)


class WanMaskContextHandler:
    """A context handler (the protocol ``comfy.samplers.calc_cond_batch`` calls: ``should_use_context``
    and ``execute``) that slices every Wan model conditioning on its own time axis.

    Composition, no subclassing: ``native`` (native's IndexListContextHandler, built by native's node)
    gives the schedule, the step, the fuse weights and FreeNoise; ``windowing`` (the pack's
    ``wan.context_windows.WanWindowing``) does the per-window math. Stored in
    ``model_options["context_handler"]``, so native's sampling wrappers (memory estimate per window,
    FreeNoise) read it as they read native's.
    """

    def __init__(self, native, windowing):
        self.native = native
        self.windowing = windowing
        self.callbacks: dict = {}

    # what native's wrappers read
    @property
    def dim(self) -> int:
        return self.native.dim

    @property
    def context_length(self) -> int:
        return self.native.context_length

    @property
    def context_overlap(self) -> int:
        return self.native.context_overlap

    @property
    def freenoise(self) -> bool:
        return bool(getattr(self.native, "freenoise", False))

    def _apply_freenoise(self, noise, conds, seed):
        return self.native._apply_freenoise(noise, conds, seed)

    def should_use_context(self, model, conds, x_in, timestep, model_options) -> bool:
        use = x_in.size(self.dim) > self.context_length
        if use:
            log.info("WanMaskContextWindows: context windows of %d latent frames (overlap %d) for %d frames%s.",
                     self.context_length, self.context_overlap, x_in.size(self.dim),
                     ", given frames as guides in every window" if self.windowing.guides else "")
        return use

    def _windows(self, model, x_in, timestep, model_options) -> list[list[int]]:
        try:
            self.native.set_step(timestep, model_options)
        except Exception:  # a sub-step of a multi-step sampler (0.3.64 raises there): keep the last step
            pass
        return [list(w.index_list) for w in self.native.get_context_windows(model, x_in, model_options)]

    def _resize(self, cond_list, plan):
        if cond_list is None:
            return None
        if self.windowing.split and len(cond_list) > 1:
            cond_list = [cond_list[self.windowing.region(plan, len(cond_list))]]
        out = []
        for cond in cond_list:
            new = cond.copy()
            for key, value in cond.items():
                if isinstance(value, torch.Tensor):
                    sliced = self.windowing.slice_generic(value, plan)
                    if sliced is not None:
                        new[key] = sliced
                elif key == "model_conds" and isinstance(value, dict):
                    mc = dict(value)
                    for k, v in value.items():
                        t = getattr(v, "cond", None)
                        if isinstance(t, torch.Tensor):
                            sliced = self.windowing.slice_cond(k, t, plan)
                            if sliced is not None:
                                mc[k] = v._copy_with(sliced)
                    new[key] = mc
            out.append(new)
        return out

    def _model_cond_tensors(self, conds) -> list[dict]:
        found = []
        for cond_list in conds:
            for cond in cond_list or []:
                mc = cond.get("model_conds", {})
                found.append({k: v.cond for k, v in mc.items() if isinstance(getattr(v, "cond", None), torch.Tensor)})
        return found

    def execute(self, calc_cond_batch, model, conds, x_in, timestep, model_options):
        w = self.windowing
        windows = self._windows(model, x_in, timestep, model_options)
        total = x_in.size(self.dim)
        found = self._model_cond_tensors(conds)
        guides = w.given_frames(found, int(x_in.shape[1]), total) if w.guides else []
        keys = {k for mc in found for k in mc}
        fuser = w.fuser(x_in, len(conds))
        for index_list in windows:
            throw_if_interrupted()
            plan = w.plan(index_list, total, guides, keys)
            sub_conds = [self._resize(c, plan) for c in conds]
            model_options["transformer_options"]["context_window"] = plan
            outs = calc_cond_batch(model, sub_conds, w.take(x_in, plan), timestep, model_options)
            weights = None if w.relative else _context_weights(self.native, len(index_list), total, index_list, timestep)
            fuser.add(index_list, [w.strip(o.to(x_in.device), plan) for o in outs], weights)
        return fuser.result()


def install_context_windows(model_patcher, native, windowing):
    """A clone of the model that samples in context windows through :class:`WanMaskContextHandler`, with
    native's sampling wrappers (memory estimated per window; FreeNoise where the version has it)."""
    import comfy.context_windows as cw
    patched = model_patcher.clone()
    patched.model_options["context_handler"] = WanMaskContextHandler(native, windowing)
    cw.create_prepare_sampling_wrapper(patched)
    if getattr(native, "freenoise", False) and hasattr(cw, "create_sampler_sample_wrapper"):
        cw.create_sampler_sample_wrapper(patched)
    return patched


def native_window_slicing(model_patcher) -> dict[str, bool] | None:
    """None unless the model samples in native context windows (not WanMaskContextWindows); then what
    native's handler does, probed on small tensors with a copy of it:

    * ``c_concat``: it slices a Wan I2V concat (5-D, time dim 2) to the window;
    * ``vace_context``: it slices a VACE context (6-D, time dim 3);
    * ``retain_on_anchor``: with its retained frames (``retain_first_frame``) and an anchor frame before the
      window, frame 0's conditioning lands on the anchor, where the latent is another frame.
    """
    import copy

    import comfy.conds
    import comfy.context_windows as cw
    handler = getattr(model_patcher, "model_options", {}).get("context_handler")
    if handler is None or isinstance(handler, WanMaskContextHandler) or not hasattr(handler, "get_resized_cond"):
        return None
    dim, t = getattr(handler, "dim", 2), 5
    x = torch.zeros(1, 16, t, 2, 2)
    frames = torch.arange(t, dtype=torch.float32).reshape(1, 1, t, 1, 1)
    conds = [{"model_conds": {"c_concat": comfy.conds.CONDNoiseShape(frames.expand(1, 20, t, 2, 2).clone()),
                              "vace_context": comfy.conds.CONDRegular(torch.zeros(1, 1, 96, t, 2, 2))}}]
    kwargs = {"dim": dim}
    if "total_frames" in inspect.signature(cw.IndexListContextWindow.__init__).parameters:
        kwargs["total_frames"] = t
    window = cw.IndexListContextWindow([2, 3], **kwargs)
    anchor = bool(getattr(handler, "causal_window_fix", False))
    if anchor:
        window.causal_anchor_index = 1
    probe = copy.copy(handler)
    probe._model = getattr(model_patcher, "model", None)
    try:
        mc = probe.get_resized_cond(conds, x, window)[0]["model_conds"]
    except Exception as e:  # a handler this probe does not understand: say nothing rather than guess
        log.debug("native context-window probe failed: %s", e)
        return None
    concat = mc["c_concat"].cond
    sliced = concat.shape[2] != t
    return {"c_concat": sliced, "vace_context": mc["vace_context"].cond.shape[3] != t,
            "retain_on_anchor": sliced and anchor and float(concat[0, 0, 0, 0, 0]) == 0.0}


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

    def context_windows():
        import comfy.context_windows as cw
        import comfy.samplers
        for fn in ("IndexListContextWindow", "get_context_weights", "create_prepare_sampling_wrapper"):
            assert hasattr(cw, fn), f"comfy.context_windows.{fn} is missing"
        assert "context_handler" in inspect.getsource(comfy.samplers.calc_cond_batch), \
            "calc_cond_batch no longer reads model_options['context_handler']"
        node = _native_context_windows_nodes().WanContextWindowsManualNode
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
