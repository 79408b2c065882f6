"""Masked-loss LoRA training nodes: WanMaskLossWeights and WanMaskTrainLoRA.

WanMaskTrainLoRA is ComfyUI's native ``TrainLoraNode`` (comfy_extras/nodes_train.py, 0.3.64):
same inputs, outputs, adapters, optimizers and checkpointing. Only its sampler is replaced by
one that reduces an unreduced loss with per-cell loss weights (masking/mask_loss.py) and, with
prior preservation, runs a teacher pass with the LoRA disabled. The weights travel inside the
sampler object, never through ``denoise_mask`` (the guider would resize it and feed it to the
model's extra conds).
"""
from __future__ import annotations

import contextlib
import logging
import threading

import comfy.model_management
import comfy.utils
import comfy_extras.nodes_custom_sampler as custom_sampler
import comfy_extras.nodes_train as native_train
import torch
from comfy.weight_adapter.base import WeightAdapterTrainBase

from ..masking import conventions
from ..masking.geometry import geometry_for_channels
from ..masking.mask_loss import MaskLossSettings, prior_region_warning
from ..masking.training import masked_training_loss
from ..masking.weights import (
    PRESETS, TIERS, apply_gamma_floor, compose_tiers, latent_loss_weights, normalize_mask, resize_weights,
    tier_preview,
)

log = logging.getLogger("WanMasking")
CATEGORY = "WanMasking/training"

_TRAINABLE = (WeightAdapterTrainBase, native_train.BiasDiff)
_SAMPLER_SWAP = threading.Lock()


def _is_trained_now(fn) -> bool:
    """A LoRA / bias-diff adapter whose parameters are being trained (a LoRA trained earlier in the
    graph and passed in as part of the MODEL has them frozen, and stays part of the teacher)."""
    return isinstance(fn, _TRAINABLE) and any(p.requires_grad for p in fn.parameters())


@contextlib.contextmanager
def lora_disabled(model: torch.nn.Module):
    """Temporarily drop the adapters being trained from every module's weight functions, so the
    model computes the base (teacher) prediction. Other weight functions stay."""
    saved = []
    for m in model.modules():
        for attr in ("weight_function", "bias_function"):
            fns = getattr(m, attr, None)
            if fns and any(_is_trained_now(f) for f in fns):
                saved.append((m, attr, fns))
                setattr(m, attr, [f for f in fns if not _is_trained_now(f)])
    try:
        yield len(saved)
    finally:
        for m, attr, fns in saved:
            setattr(m, attr, fns)


class MaskedTrainSampler(native_train.TrainSampler):
    """The native training sampler with a masked loss.

    Each step draws ``batch_size`` items, a sigma per item and noise exactly as the native
    sampler does (indices and sigmas from a generator seeded with ``seed``, so runs repeat), and
    reduces ``loss_function(reduction="none")`` with the loss weights of the same items.
    """

    def __init__(self, loss_fn, optimizer, *, weights: torch.Tensor, settings: MaskLossSettings, **kwargs):
        super().__init__(loss_fn, optimizer, **kwargs)
        self.weights = weights  # [N, 1, T, h, w], raw (gamma / floor applied in the reducer)
        self.settings = settings
        self.elementwise = type(loss_fn)(reduction="none")  # e.g. MSELoss() -> MSELoss(reduction="none")
        self.curves = {"target_loss": [], "prior_loss": []}
        self.teacher_patched_modules = 0

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        model_wrap.conds = native_train.process_cond_list(model_wrap.conds)
        cond = model_wrap.conds["positive"]
        n = sigmas.size(0)
        sampling = model_wrap.inner_model.model_sampling
        weights = self.weights.to(latent_image.device)
        rng = torch.Generator().manual_seed(self.seed)
        pbar = comfy.utils.ProgressBar(self.total_steps)
        for step in range(self.total_steps):
            comfy.model_management.throw_exception_if_processing_interrupted()
            idx = torch.randperm(n, generator=rng)[:self.batch_size].tolist()
            x0 = latent_image[idx]
            eps = custom_sampler.Noise_RandomNoise(self.seed + step * 1000).generate_noise({"samples": x0})
            eps = eps.to(x0.device)
            batch_sigmas = torch.tensor([sampling.percent_to_sigma(torch.rand((1,), generator=rng).item())
                                         for _ in idx], device=x0.device)
            xt = sampling.noise_scaling(batch_sigmas, eps, x0, False)
            target = sampling.noise_scaling(torch.zeros_like(batch_sigmas), torch.zeros_like(eps), x0, False)
            model_wrap.conds["positive"] = [cond[i] for i in idx]
            batch_args = native_train.make_batch_extra_option_dict(extra_args, idx, full_size=n)

            teacher = None
            if self.settings.uses_prior:
                with torch.no_grad(), lora_disabled(model_wrap.inner_model) as count, \
                        torch.autocast(xt.device.type, dtype=self.training_dtype):
                    teacher = model_wrap(xt, batch_sigmas, **batch_args).detach()
                self.teacher_patched_modules = count
            with torch.autocast(xt.device.type, dtype=self.training_dtype):
                prediction = model_wrap(xt, batch_sigmas, **batch_args)
            loss, stats = masked_training_loss(prediction, target, weights[idx], self.settings,
                                               self.elementwise, teacher)
            loss.backward()
            if self.loss_callback:
                self.loss_callback(loss.item())
            self.curves["target_loss"].append(stats["target"])
            self.curves["prior_loss"].append(stats["prior"])
            if (step + 1) % self.grad_acc == 0:
                self.optimizer.step()
                self.optimizer.zero_grad()
            pbar.update(1)
        return torch.zeros_like(latent_image)


@contextlib.contextmanager
def _native_trainer_uses(sampler_factory):
    """Make TrainLoraNode.train build our sampler for the duration of one call."""
    with _SAMPLER_SWAP:
        original = native_train.TrainSampler
        native_train.TrainSampler = sampler_factory
        try:
            yield
        finally:
            native_train.TrainSampler = original


@contextlib.contextmanager
def _seeded_global_rng(seed: int):
    """Native ``train()`` initializes the LoRA matrices from torch's global generator (the seeded
    generator it creates is never used), so one seed gave different LoRAs depending on what ran
    before in the process. Seed the global generator for the call; the previous state comes back
    afterwards."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class WanMaskTrainLoRA(native_train.TrainLoraNode):
    DESCRIPTION = ("ComfyUI's native Train LoRA with a masked loss for Wan video latents. loss_mask: "
                   f"{conventions.LOSS_WEIGHT}. A per-frame video mask (1+4k frames) is brought to the latent "
                   "frames with Wan's causal grouping (frame 0 alone, then groups of 4, mean); one frame is used for "
                   "all frames. Optional prior preservation pulls the prediction outside the mask toward the base "
                   "model (LoRA off). A banner with the active settings is printed to the console.")

    @classmethod
    def INPUT_TYPES(cls):
        native = super().INPUT_TYPES()
        required = dict(native["required"])
        required.update({
            "gamma": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 10.0, "step": 0.01, "tooltip":
                "Weight exponent w**gamma, applied before the floor. <1 softer (more training on mid tiers), "
                "1 linear, >1 sharper. Must be > 0."}),
            "min_weight": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 0.99, "step": 0.01, "tooltip":
                "Weight floor in [0, 1): w*(1-min_weight)+min_weight. 0.05 stops 'phantom limbs' outside the mask "
                "when prior preservation is off; keep 0 with prior preservation."}),
            "prior_preservation_weight": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 10.0, "step": 0.05,
                "tooltip": "0 = off. >0: outside the mask the LoRA is trained toward the base model's prediction "
                           "(one extra forward pass per step with the LoRA disabled, ~1.3-1.7x time). 0.5-1.0 usual."}),
            "prior_mask_threshold": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 0.99, "step": 0.01, "tooltip":
                "0 = continuous mode (prior weight 1 - w). In (0, 1): prior only where the raw latent-grid mask is "
                "below it, with no target weight there (0.1 keeps only true background)."}),
            "normalize_per_sample": ("BOOLEAN", {"default": False, "tooltip":
                "Weighted mean per sample, then the batch mean (recommended with prior preservation). "
                "Off: one weighted mean over the whole batch."}),
            "require_mask": ("BOOLEAN", {"default": True, "tooltip":
                "On: training items without a mask (no loss_mask, or fewer per-item masks than items) are an "
                "error. Off: they train at full weight 1.0 everywhere (with a warning)."}),
        })
        return {"required": required, "optional": {
            "loss_mask": ("MASK", {"tooltip":
                f"Loss weights, {conventions.LOSS_WEIGHT}; 8-bit levels (face 255, body 128, hair 80, background 0) "
                "are divided by 255. Frames: 1 (every frame and item), T or 1+4(T-1) (a video mask for every item), "
                "or one such mask per item, item after item. Any size: area-averaged onto the latent grid."}),
        }}

    RETURN_TYPES = native_train.TrainLoraNode.RETURN_TYPES
    RETURN_NAMES = native_train.TrainLoraNode.RETURN_NAMES
    OUTPUT_TOOLTIPS = ("The model with the trained LoRA applied.", "The trained LoRA (LORA_MODEL, for SaveLoRA / "
                       "LoraModelLoader).", "Loss per step: 'loss' (total, for LossGraph), plus 'target_loss' and "
                       "'prior_loss'.", "Total steps (including an existing LoRA's).")
    FUNCTION = "train_masked"
    CATEGORY = CATEGORY
    EXPERIMENTAL = True

    def train_masked(self, model, latents, positive, batch_size, steps, grad_accumulation_steps, learning_rate,
                     rank, optimizer, loss_function, seed, training_dtype, lora_dtype, algorithm,
                     gradient_checkpointing, existing_lora, gamma, min_weight, prior_preservation_weight,
                     prior_mask_threshold, normalize_per_sample, require_mask, loss_mask=None):
        settings = MaskLossSettings(gamma=gamma, min_weight=min_weight, prior_weight=prior_preservation_weight,
                                    prior_threshold=prior_mask_threshold if prior_mask_threshold > 0 else None,
                                    normalize_per_sample=normalize_per_sample)
        samples = latents["samples"]
        if samples.dim() != 5:
            raise ValueError(f"latents: expected Wan video latents [N,C,T,h,w], got shape {list(samples.shape)}. "
                             "Fix: encode the clips with a Wan VAE (VAEEncode).")
        geometry = geometry_for_channels(samples.shape[1], "latents")
        weights = latent_loss_weights(loss_mask, tuple(samples.shape), geometry, require_mask, "loss_mask")
        banner = settings.banner() + f"\n  loss weights: {list(weights.shape)} (items, 1, latent frames, h, w), " \
                                     f"mean raw weight {float(weights.mean()):.4f}"
        log.info("WanMaskTrainLoRA settings:\n%s", banner)  # ComfyUI's console shows INFO
        for warning in settings.warnings() + [prior_region_warning(weights, settings)]:
            if warning:
                log.warning("WanMaskTrainLoRA: %s", warning)

        made = []

        def factory(loss_fn, optimizer_, **kwargs):
            sampler = MaskedTrainSampler(loss_fn, optimizer_, weights=weights, settings=settings, **kwargs)
            made.append(sampler)
            return sampler

        with _native_trainer_uses(factory), _seeded_global_rng(seed):
            mp, lora, loss_map, total_steps = self.train(
                model=model, latents=latents, positive=positive, batch_size=batch_size, steps=steps,
                grad_accumulation_steps=grad_accumulation_steps, learning_rate=learning_rate, rank=rank,
                optimizer=optimizer, loss_function=loss_function, seed=seed, training_dtype=training_dtype,
                lora_dtype=lora_dtype, algorithm=algorithm, gradient_checkpointing=gradient_checkpointing,
                existing_lora=existing_lora)
        if made:
            loss_map = dict(loss_map, **made[-1].curves)
            if settings.uses_prior and made[-1].teacher_patched_modules == 0:
                log.warning("WanMaskTrainLoRA: the teacher pass found no LoRA layers to disable, so the prior "
                            "target equals the student's prediction.")
        return (mp, lora, loss_map, total_steps)


class WanMaskLossWeights:
    DESCRIPTION = ("Turns a mask into training loss weights and shows them: values are normalized (8-bit levels /255), "
                   "then w**gamma, then the floor w*(1-min_weight)+min_weight. Preview: face red, body green, hair "
                   f"blue, background dark (tiers 255/128/80/0), other values grey = weight. {conventions.LOSS_WEIGHT}.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "mask": ("MASK", {"tooltip": f"Weight mask, {conventions.LOSS_WEIGHT}. [0,1] or 8-bit levels; any frames."}),
            "preset": (["custom"] + list(PRESETS), {"default": "custom", "tooltip":
                "custom: use gamma and min_weight below. Otherwise the guide's setting: " +
                ", ".join(f"{k} (gamma {g}, min {m})" for k, (g, m) in PRESETS.items()) + "."}),
            "gamma": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 10.0, "step": 0.01,
                                "tooltip": "w**gamma (> 0), before the floor. Used when preset is custom."}),
            "min_weight": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 0.99, "step": 0.01,
                                     "tooltip": "Floor in [0, 1): w*(1-min)+min. Used when preset is custom."}),
            "width": ("INT", {"default": 0, "min": 0, "max": 16384, "step": 1, "tooltip":
                "Resize to this width (0 = keep): area when shrinking, nearest when growing (tiers survive)."}),
            "height": ("INT", {"default": 0, "min": 0, "max": 16384, "step": 1, "tooltip":
                "Resize to this height (0 = keep): area when shrinking, nearest when growing."}),
        }}

    RETURN_TYPES = ("MASK", "IMAGE")
    RETURN_NAMES = ("weights", "preview")
    OUTPUT_TOOLTIPS = ("Final loss weights [frames,H,W] (gamma and floor applied). If you feed these to "
                       "WanMaskTrainLoRA, keep its gamma 1 and min_weight 0 so they are not applied twice.",
                       "Tiers coloured (face red, body green, hair blue, background dark), brightness = weight.")
    FUNCTION = "make"
    CATEGORY = CATEGORY

    def make(self, mask, preset, gamma, min_weight, width, height):
        if preset != "custom":
            gamma, min_weight = PRESETS[preset]
            log.info("WanMaskLossWeights: preset %r -> gamma %s, min_weight %s.", preset, gamma, min_weight)
        raw = normalize_mask(mask, "mask")
        if width or height:
            raw = resize_weights(raw, (height or raw.shape[-2], width or raw.shape[-1]))
        weights = apply_gamma_floor(raw, gamma, min_weight)
        return (weights, tier_preview(raw, weights))


class WanMaskLossTiers:
    DESCRIPTION = ("Builds a tiered loss-weight mask from region masks (e.g. SAM / Sapiens segmentations): face over "
                   "hair over body over background, with the guide's 8-bit levels 255 / 80 / 128 / 0 by default. "
                   f"Output: {conventions.LOSS_WEIGHT}.")

    @classmethod
    def INPUT_TYPES(cls):
        level = lambda name, default: ("INT", {"default": default, "min": 0, "max": 255, "tooltip":  # noqa: E731
                                               f"8-bit level of the {name} tier (255 = full training weight)."})
        region = lambda name: ("MASK", {"tooltip": f"{name} region, > 0.5 = inside. 1 frame or one per frame."})  # noqa: E731
        return {"required": {"face_level": level("face", TIERS["face"]), "body_level": level("body", TIERS["body"]),
                             "hair_level": level("hair", TIERS["hair"]),
                             "background_level": level("background", TIERS["background"])},
                "optional": {"face": region("Face"), "body": region("Body"), "hair": region("Hair")}}

    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("tiers",)
    OUTPUT_TOOLTIPS = (f"Tiered weights [frames,H,W] in [0,1] (level/255), {conventions.LOSS_WEIGHT}.",)
    FUNCTION = "compose"
    CATEGORY = CATEGORY

    def compose(self, face_level, body_level, hair_level, background_level, face=None, body=None, hair=None):
        given = [m if m.dim() == 3 else m.unsqueeze(0) for m in (face, body, hair) if m is not None]
        if not given:
            raise ValueError("WanMaskLossTiers: connect at least one of face, body, hair (region masks, > 0.5 = inside).")
        shape = (max(m.shape[0] for m in given), *given[0].shape[-2:])
        levels = {"face": face_level, "body": body_level, "hair": hair_level, "background": background_level}
        return (compose_tiers(shape, face=face, body=body, hair=hair, tiers=levels),)


NODE_CLASS_MAPPINGS = {"WanMaskLossWeights": WanMaskLossWeights, "WanMaskLossTiers": WanMaskLossTiers,
                       "WanMaskTrainLoRA": WanMaskTrainLoRA}
NODE_DISPLAY_NAME_MAPPINGS = {"WanMaskLossWeights": "Wan Mask Loss Weights (preview)",
                              "WanMaskLossTiers": "Wan Mask Loss Tiers (face/body/hair)",
                              "WanMaskTrainLoRA": "Wan Mask Train LoRA (masked loss)"}
