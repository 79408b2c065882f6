"""The masked-loss LoRA trainer behind WanMaskTrainLoRA, built by composition on ComfyUI's training
building blocks (all reached through ``comfy_compat``): native adapters, optimizers, gradient
checkpointing, training guider, bypass injection, seeded noise and sigma sampling.

Only the sampler is ours, and its step math lives in the core (masking/training/loop.py): each step
draws ``batch_size`` items, a sigma per item and noise as the native trainer does (indices and
sigmas from a generator seeded with ``seed``, so runs repeat), and reduces the unreduced loss with
the loss weights of the same items. With prior preservation it runs a teacher pass with the trained
adapters disabled. The weights travel
inside the sampler object, never through ``denoise_mask`` (the guider would resize it and feed it
to the model's extra conds).
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch

from . import comfy_compat as compat
from ..masking.training.loop import MaskedLossLoop, optimizer_step
from ..masking.training.loss import MaskLossSettings
from ..masking.training.trainer_inputs import TrainingData

log = logging.getLogger("WanMasking")


@dataclass
class TrainOptions:
    """The native trainer's options; those a version lacks keep their defaults (= 0.3.64 behaviour)."""
    batch_size: int = 1
    grad_accumulation_steps: int = 1
    steps: int = 16
    learning_rate: float = 5e-4
    rank: int = 8
    optimizer: str = "AdamW"
    loss_function: str = "MSE"
    seed: int = 0
    training_dtype: str = "bf16"
    lora_dtype: str = "bf16"
    quantized_backward: bool = False
    algorithm: str = "LoRA"
    gradient_checkpointing: bool = True
    checkpoint_depth: int = 1
    offloading: bool = False
    existing_lora: str = "[None]"
    bucket_mode: bool = False
    bypass_mode: bool = False

    @classmethod
    def names(cls) -> set[str]:
        return set(cls.__dataclass_fields__)


class MaskedTrainSampler(compat.sampler_base()):
    """A ComfyUI sampler whose ``sample`` trains: it wires the guider's model, conditionings, noise and
    sigmas into the core's masked-loss loop (masking/training/loop.py)."""

    def __init__(self, loss_name: str, optimizer, *, data: TrainingData, settings: MaskLossSettings,
                 batch_size: int, grad_acc: int, total_steps: int, seed: int, training_dtype: torch.dtype,
                 grad_scaler=None, bypass_injections=None, mp=None):
        self.data = data
        self.loop = MaskedLossLoop(data.weights, settings, loss_name, batch_size, grad_acc, total_steps, seed)
        self.optimizer = optimizer
        self.training_dtype = training_dtype
        self.grad_scaler = grad_scaler
        self.bypass_injections, self.mp = bypass_injections, mp
        self.model = None

    @property
    def curves(self) -> dict:
        return self.loop.curves

    @property
    def teacher_patched_modules(self) -> int:
        """Adapter layers (and bypass hooks) the teacher pass switched off; 0 before any teacher pass."""
        return self.model.teacher_patched_modules if self.model is not None else 0

    def draw_summary(self) -> str:
        """How often each item was drawn: every item at least once, or which never were."""
        counts = [0] * self.data.count
        for idx in self.loop.drawn_indices:
            for i in idx:
                counts[i] += 1
        never = [self.data.names[i] for i, c in enumerate(counts) if c == 0]
        text = (f"items drawn: {self.data.count - len(never)} of {self.data.count} at least once "
                f"(min {min(counts)}, max {max(counts)} draws per item)")
        if never:
            text += f"; never drawn: {', '.join(never[:10])}. Train more steps to use every item."
        return text

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        model = compat.TrainingModel(model_wrap, extra_args, sigmas.size(0), self.training_dtype,
                                     self.bypass_injections, self.mp)
        self.model = model

        def backward(loss):
            (self.grad_scaler.scale(loss) if self.grad_scaler is not None else loss).backward()

        bar = compat.progress_bar(self.loop.total_steps)
        callables = dict(predict=model.predict, teacher=model.teacher,
                         noise=lambda step, x0: compat.random_noise(self.loop.seed + step * 1000, x0),
                         percent_to_sigma=model.percent_to_sigma, noise_scaling=model.noise_scaling,
                         backward=backward, optimizer_step=lambda: optimizer_step(self.optimizer, self.grad_scaler),
                         before_step=compat.throw_if_interrupted, after_step=lambda: bar.update(1))
        if self.data.buckets is None:
            self.loop.run(latent_image, **callables)
        else:  # the set stays on the CPU; the loop moves each step's batch to the model's device
            self.loop.run_buckets(self.data.buckets, device=latent_image.device, **callables)
        return torch.zeros_like(latent_image)


@contextlib.contextmanager
def seeded_global_rng(seed: int):
    """Native trainers initialize the LoRA matrices from torch's global generator, so one seed would
    give different LoRAs depending on what ran before in the process. Seed the global generator for
    the call; the previous state comes back afterwards."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _dtypes(opts: TrainOptions, mp) -> tuple[torch.dtype, torch.dtype, bool]:
    """(training dtype, LoRA dtype, use a GradScaler), as native chooses them."""
    lora_dtype = compat.string_to_dtype(opts.lora_dtype)
    if opts.training_dtype != "none":
        return compat.string_to_dtype(opts.training_dtype), lora_dtype, False
    if compat.model_dtype(mp) == torch.float16:
        if compat.fp16_accumulation_enabled():
            log.warning("WanMaskTrainLoRA: an fp16 model with --fast fp16_accumulation can be numerically unstable "
                        "in training (NaN). Fix: training_dtype bf16, or drop fp16_accumulation.")
        return torch.float16, lora_dtype, lora_dtype != torch.bfloat16
    return torch.bfloat16, lora_dtype, False


def train_masked_lora(model, data: TrainingData, settings: MaskLossSettings, opts: TrainOptions):
    """Train a LoRA with the masked loss on ``data`` (one shape, or buckets). Returns (model with the
    LoRA, lora state dict, loss map, total steps, the sampler used)."""
    n = data.count
    with torch.inference_mode(False), seeded_global_rng(opts.seed):
        mp = compat.clone_for_training(model)
        dtype, lora_dtype, use_scaler = _dtypes(opts, mp)
        diffusion_model = compat.prepare_base_for_training(mp, dtype if opts.training_dtype != "none" else None)
        if data.buckets is None:
            latents = data.latents.to(dtype)
        else:  # the guider needs a latent of the model's kind; one item stands in, as native's bucket mode
            for bucket in data.buckets:
                bucket.latents = bucket.latents.to(dtype)
            latents = data.buckets[0].latents[:1]
        existing, existing_steps = compat.load_existing_lora(opts.existing_lora)
        lora_sd, adapters, injections = compat.add_lora_adapters(mp, existing, opts.algorithm, lora_dtype,
                                                                 opts.rank, bypass=opts.bypass_mode)
        optimizer = compat.make_optimizer(opts.optimizer, lora_sd.values(), opts.learning_rate)
        patched = []
        if opts.gradient_checkpointing:
            patched = compat.checkpointing_modules(diffusion_model, opts.checkpoint_depth)
            for m in patched:
                compat.checkpoint_patch(m, offloading=opts.offloading)
        try:
            compat.load_for_training(mp, opts.offloading)
            sampler = MaskedTrainSampler(
                opts.loss_function, optimizer, data=data, settings=settings, batch_size=opts.batch_size,
                grad_acc=opts.grad_accumulation_steps, total_steps=opts.steps * opts.grad_accumulation_steps,
                seed=opts.seed, training_dtype=dtype,
                grad_scaler=torch.amp.GradScaler() if use_scaler else None, bypass_injections=injections, mp=mp)
            guider = compat.make_train_guider(mp, opts.offloading)
            guider.set_conds(data.conds)
            compat.set_bypass(injections, mp, True)
            try:
                with compat.training_state(opts.quantized_backward):
                    guider.sample(compat.random_noise(opts.seed, latents), latents, sampler,
                                  torch.tensor(range(n)), seed=opts.seed)
            finally:
                compat.set_bypass(injections, mp, False)
        finally:
            for m in patched:
                compat.checkpoint_unpatch(m)
        lora_sd = {k: v.to(lora_dtype).detach() for k, v in lora_sd.items()}
        for adapter in adapters:
            adapter.requires_grad_(False)
    return compat.load_lora_for_inference(model, lora_sd), lora_sd, dict(sampler.curves), \
        opts.steps + existing_steps, sampler
