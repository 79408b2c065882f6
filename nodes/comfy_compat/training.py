"""ComfyUI internals: LoRA training building blocks (WanMaskTrainLoRA).

Part of the compatibility boundary (see the package docstring): feature detection, never a
version compare; ComfyUI modules are imported inside the functions that need them."""
from __future__ import annotations

import contextlib
import inspect

import torch


def native_train_module():
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
    return node_inputs_v1(native_train_module().TrainLoraNode)


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
    native_bias = getattr(native_train_module(), "BiasDiff", None)
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
    nt = native_train_module()
    if hasattr(nt, "find_modules_at_depth"):
        return nt.find_modules_at_depth(diffusion_model, depth=depth)
    return nt.find_all_highest_child_module_with_forward(diffusion_model)


def checkpoint_patch(m: torch.nn.Module, offloading: bool = False) -> None:
    nt = native_train_module()
    if "offloading" in inspect.signature(nt.patch).parameters:
        nt.patch(m, offloading=offloading)
    else:
        nt.patch(m)


def checkpoint_unpatch(m: torch.nn.Module) -> None:
    native_train_module().unpatch(m)


def make_train_guider(mp, offloading: bool):
    """Native's training guider where the version has one (it loads the model for training, with
    weight offloading), else the basic guider, as 0.3.64's trainer used."""
    nt = native_train_module()
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
    return native_train_module().process_cond_list(conds)


def batch_extra_args(extra_args: dict, idx: list[int], full_size: int) -> dict:
    return native_train_module().make_batch_extra_option_dict(extra_args, idx, full_size=full_size)


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
    nt = native_train_module()
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


# ---- what the trainer's sampler and setup touch on ComfyUI's objects ----------------------------------

def model_dtype(mp) -> torch.dtype:
    """The dtype the ModelPatcher's model stores its weights in."""
    return mp.model.get_dtype()


def prepare_base_for_training(mp, compute_dtype: torch.dtype | None) -> torch.nn.Module:
    """Freeze the base weights (only adapters train), set the compute dtype (None keeps the model's own),
    and return the diffusion model (the modules gradient checkpointing wraps)."""
    if compute_dtype is not None:
        mp.set_model_compute_dtype(compute_dtype)
    mp.model.requires_grad_(False)
    return mp.model.diffusion_model


def set_bypass(injections, mp, on: bool) -> None:
    """Inject (on) or eject the bypass hooks of the trained adapters (bypass mode)."""
    for injection in injections or ():
        (injection.inject if on else injection.eject)(mp)


class TrainingModel:
    """The guider's wrapped model as the masked-loss loop sees it: a prediction for some items of the set,
    the teacher's (trained adapters off), and the model's noise schedule."""

    def __init__(self, model_wrap, extra_args: dict, set_size: int, compute_dtype: torch.dtype,
                 bypass_injections=None, mp=None):
        model_wrap.conds = detach_conds(model_wrap.conds)
        self.model_wrap, self.extra_args, self.set_size = model_wrap, extra_args, set_size
        self.cond = model_wrap.conds["positive"]
        self.compute_dtype = compute_dtype
        self.bypass_injections, self.mp = bypass_injections, mp
        self.sampling = model_wrap.inner_model.model_sampling
        self.teacher_patched_modules = 0

    def predict(self, xt: torch.Tensor, sigmas: torch.Tensor, idx: list[int]) -> torch.Tensor:
        """The prediction for x_t [B,C,T,h,w] of the set's items ``idx`` (their conditionings)."""
        self.model_wrap.conds["positive"] = [self.cond[i] for i in idx]
        with torch.autocast(xt.device.type, dtype=self.compute_dtype):
            return self.model_wrap(xt, sigmas, **batch_extra_args(self.extra_args, idx, self.set_size))

    def teacher(self, xt: torch.Tensor, sigmas: torch.Tensor, idx: list[int]) -> torch.Tensor:
        """The base model's prediction: trained adapters dropped from the weight functions, bypass hooks out."""
        set_bypass(self.bypass_injections, self.mp, False)
        try:
            with trained_adapters_disabled(self.model_wrap.inner_model) as count:
                self.teacher_patched_modules = count + len(self.bypass_injections or ())
                return self.predict(xt, sigmas, idx)
        finally:
            set_bypass(self.bypass_injections, self.mp, True)

    def percent_to_sigma(self, percent: float) -> float:
        return self.sampling.percent_to_sigma(percent)

    def noise_scaling(self, sigmas: torch.Tensor, noise: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return self.sampling.noise_scaling(sigmas, noise, x0, False)
