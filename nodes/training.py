"""Masked-loss LoRA training nodes: WanMaskLossWeights, WanMaskLossTiers and WanMaskTrainLoRA.

WanMaskTrainLoRA offers the native Train LoRA inputs of the running ComfyUI (same names, order and
defaults; on 0.33 also offloading, bypass_mode, checkpoint_depth, ...), then this pack's masked-loss
inputs. It trains with its own sampler on native building blocks (nodes/lora_trainer.py); its
outputs stay (model, lora, loss_map, steps) on every version.
"""
from __future__ import annotations

import logging

from comfy_api.latest import io

from . import comfy_compat as compat
from .inputs import category, check_choices, check_widgets, expert, first_error, schema
from .lora_trainer import TrainOptions, train_masked_lora
from ..masking import conventions
from ..masking.geometry import geometry_for_channels
from ..masking.mask_loss import MaskLossSettings, prior_region_warning
from ..masking.training import concat_masks, concat_video_latents
from ..masking.weights import (
    PRESETS, TIERS, apply_gamma_floor, compose_tiers, latent_loss_weights, normalize_mask, region_stack_shape,
    resize_weights, tier_preview,
)

log = logging.getLogger("WanMasking")
_TAKES_LISTS = compat.native_trainer_takes_lists()


def masked_loss_inputs() -> list[io.Input]:
    """The pack's masked-loss inputs of WanMaskTrainLoRA, after the native Train LoRA inputs."""
    return [
        io.Float.Input("gamma", default=1.0, min=0.01, max=10.0, step=0.01, tooltip=
            "Weight exponent w**gamma, applied before the floor. <1 softer (more training on mid tiers), "
            "1 linear, >1 sharper. Must be > 0."),
        io.Float.Input("min_weight", default=0.0, min=0.0, max=0.99, step=0.01, tooltip=
            "Weight floor in [0, 1): w*(1-min_weight)+min_weight. 0.05 stops 'phantom limbs' outside the mask "
            "when prior preservation is off; keep 0 with prior preservation."),
        io.Float.Input("prior_preservation_weight", default=0.0, min=0.0, max=10.0, step=0.05, tooltip=
            "0 = off. >0: outside the mask the LoRA is trained toward the base model's prediction "
            "(one extra forward pass per step with the LoRA disabled, ~1.3-1.7x time). 0.5-1.0 usual."),
        expert(io.Float.Input("prior_mask_threshold", default=0.0, min=0.0, max=0.99, step=0.01, tooltip=
            "0 = continuous mode (prior weight 1 - w). In (0, 1): prior only where the raw latent-grid mask is "
            "below it, with no target weight there (0.1 keeps only true background).")),
        expert(io.Boolean.Input("normalize_per_sample", default=False, tooltip=
            "Weighted mean per sample, then the batch mean (recommended with prior preservation). "
            "Off: one weighted mean over the whole batch.")),
        expert(io.Boolean.Input("require_mask", default=True, tooltip=
            "On: training items without a mask (no loss_mask, or fewer per-item masks than items) are an "
            "error. Off: they train at full weight 1.0 everywhere (with a warning).")),
        io.Mask.Input("loss_mask", optional=True, tooltip=
            f"Loss weights, {conventions.LOSS_WEIGHT}; 8-bit levels (face 255, body 128, hair 80, background 0) "
            "are divided by 255. Frames: 1 (every frame and item), T or 1+4(T-1) (a video mask for every item), "
            "or one such mask per item, item after item. Any size: area-averaged onto the latent grid."),
    ]


def _single(value):
    """One value of a list input (every input is a list where native Train LoRA takes lists)."""
    return value[0] if _TAKES_LISTS and isinstance(value, list) else value


def _latents_and_conds(latents, positive):
    """(latent tensor [N,C,T,h,w], one conditioning entry per item or one for all), from single inputs
    or, where native takes lists, from lists (latents concatenated, conditionings flattened, as native)."""
    dicts = latents if _TAKES_LISTS else [latents]
    conds = positive if not _TAKES_LISTS else positive[0] if len(positive) == 1 else \
        [entry for cond in positive for entry in cond]
    return concat_video_latents([d["samples"] for d in dicts], "latents"), conds


class WanMaskTrainLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="WanMaskTrainLoRA",
            display_name="Wan Mask Train LoRA (masked loss)",
            category=category("training"),
            search_aliases=["train lora", "masked loss", "lora training", "prior preservation"],
            description="Train LoRA with a masked loss for Wan video latents: the native Train LoRA's options, plus "
                        f"loss weights. loss_mask: {conventions.LOSS_WEIGHT}. A per-frame video mask (1+4k frames) "
                        "is brought to the latent frames with Wan's causal grouping (frame 0 alone, then groups of "
                        "4, mean); one frame is used for all frames. Optional prior preservation pulls the "
                        "prediction outside the mask toward the base model (LoRA off). A banner with the active "
                        "settings is printed to the console.",
            inputs=[*compat.native_trainer_schema_inputs(), *masked_loss_inputs()],
            outputs=[
                io.Model.Output(display_name="model_with_lora", tooltip=
                    "The input model with the trained LoRA applied (as LoraModelLoader at strength 1)."),
                io.LoraModel.Output(display_name="lora", tooltip=
                    "The trained LoRA (LORA_MODEL, for the save LoRA node / LoraModelLoader)."),
                io.LossMap.Output(display_name="loss", tooltip=
                    "Loss per step: 'loss' (total, for the loss graph node), plus 'target_loss' and 'prior_loss'."),
                io.Int.Output(display_name="steps", tooltip="Total steps (including an existing LoRA's)."),
            ],
            is_input_list=_TAKES_LISTS,
            is_experimental=True,
        )

    @classmethod
    def validate_inputs(cls, **values):
        """Every widget against its options and bounds (native's inputs differ by version, hence
        ``**values``; ComfyUI then leaves these checks to the node, and 0.3.64 would not check V3 combos)."""
        return first_error(lambda: check_widgets(cls, values))

    @classmethod
    def execute(cls, model, latents, positive, gamma, min_weight, prior_preservation_weight,
                prior_mask_threshold, normalize_per_sample, require_mask, loss_mask=None, **native) -> io.NodeOutput:
        model = _single(model)
        gamma, min_weight, prior_preservation_weight, prior_mask_threshold, normalize_per_sample, require_mask = (
            _single(v) for v in (gamma, min_weight, prior_preservation_weight, prior_mask_threshold,
                                 normalize_per_sample, require_mask))
        if isinstance(loss_mask, list):
            loss_mask = concat_masks(loss_mask)
        unknown = set(native) - TrainOptions.names()
        if unknown:
            log.warning("WanMaskTrainLoRA: this ComfyUI's Train LoRA has options this pack does not know (%s); "
                        "they are ignored. Check for a newer ComfyUI-WanMasking.", ", ".join(sorted(unknown)))
        opts = TrainOptions(**{k: _single(v) for k, v in native.items() if k in TrainOptions.names()})
        settings = MaskLossSettings(gamma=gamma, min_weight=min_weight, prior_weight=prior_preservation_weight,
                                    prior_threshold=prior_mask_threshold if prior_mask_threshold > 0 else None,
                                    normalize_per_sample=normalize_per_sample)
        samples, conds = _latents_and_conds(latents, positive)
        geometry = geometry_for_channels(samples.shape[1], "latents")
        weights = latent_loss_weights(loss_mask, tuple(samples.shape), geometry, require_mask, "loss_mask")
        banner = settings.banner() + f"\n  loss weights: {list(weights.shape)} (items, 1, latent frames, h, w), " \
                                     f"mean raw weight {float(weights.mean()):.4f}"
        log.info("WanMaskTrainLoRA settings:\n%s", banner)  # ComfyUI's console shows INFO
        for warning in settings.warnings() + [prior_region_warning(weights, settings)]:
            if warning:
                log.warning("WanMaskTrainLoRA: %s", warning)
        model_out, lora, loss_map, steps, sampler = train_masked_lora(model, samples, conds, weights, settings, opts)
        if settings.uses_prior and sampler.teacher_patched_modules == 0:
            log.warning("WanMaskTrainLoRA: the teacher pass found no LoRA layers to disable, so the prior "
                        "target equals the student's prediction.")
        return io.NodeOutput(model_out, lora, loss_map, steps)


class WanMaskLossWeights(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="WanMaskLossWeights",
            display_name="Wan Mask Loss Weights (preview)",
            category=category("training"),
            search_aliases=["loss weights", "weight mask", "training mask"],
            description="Turns a mask into training loss weights and shows them: values are normalized (8-bit "
                        "levels /255), then w**gamma, then the floor w*(1-min_weight)+min_weight. Preview: face "
                        "red, body green, hair blue, background dark (tiers 255/128/80/0), other values grey = "
                        f"weight. {conventions.LOSS_WEIGHT}.",
            inputs=[
                io.Mask.Input("mask", tooltip=f"Weight mask, {conventions.LOSS_WEIGHT}. [0,1] or 8-bit levels; any frames."),
                io.Combo.Input("preset", options=["custom"] + list(PRESETS), default="custom", tooltip=
                    "custom: use gamma and min_weight below. Otherwise the guide's setting: " +
                    ", ".join(f"{k} (gamma {g}, min {m})" for k, (g, m) in PRESETS.items()) + "."),
                io.Float.Input("gamma", default=1.0, min=0.01, max=10.0, step=0.01,
                               tooltip="w**gamma (> 0), before the floor. Used when preset is custom."),
                io.Float.Input("min_weight", default=0.0, min=0.0, max=0.99, step=0.01,
                               tooltip="Floor in [0, 1): w*(1-min)+min. Used when preset is custom."),
                io.Int.Input("width", default=0, min=0, max=16384, step=1, tooltip=
                    "Resize to this width (0 = keep): area when shrinking, nearest when growing (tiers survive)."),
                io.Int.Input("height", default=0, min=0, max=16384, step=1, tooltip=
                    "Resize to this height (0 = keep): area when shrinking, nearest when growing."),
            ],
            outputs=[
                io.Mask.Output(display_name="weights", tooltip=
                    "Final loss weights [frames,H,W] (gamma and floor applied). If you feed these to "
                    "WanMaskTrainLoRA, keep its gamma 1 and min_weight 0 so they are not applied twice."),
                io.Image.Output(display_name="preview", tooltip=
                    "Tiers coloured (face red, body green, hair blue, background dark), brightness = weight."),
            ],
        )

    @classmethod
    def validate_inputs(cls, preset=None):
        return first_error(lambda: check_choices(cls, preset=preset))

    @classmethod
    def execute(cls, mask, preset, gamma, min_weight, width, height) -> io.NodeOutput:
        if preset != "custom":
            gamma, min_weight = PRESETS[preset]
            log.info("WanMaskLossWeights: preset %r -> gamma %s, min_weight %s.", preset, gamma, min_weight)
        raw = normalize_mask(mask, "mask")
        if width or height:
            raw = resize_weights(raw, (height or raw.shape[-2], width or raw.shape[-1]))
        weights = apply_gamma_floor(raw, gamma, min_weight)
        return io.NodeOutput(weights, tier_preview(raw, weights))


def _level(name: str, default: int) -> io.Input:
    return io.Int.Input(f"{name}_level", default=default, min=0, max=255,
                        tooltip=f"8-bit level of the {name} tier (255 = full training weight).")


def _region(name: str) -> io.Input:
    return io.Mask.Input(name, optional=True, tooltip=f"{name.capitalize()} region, > 0.5 = inside. 1 frame or one per frame.")


class WanMaskLossTiers(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="WanMaskLossTiers",
            display_name="Wan Mask Loss Tiers (face/body/hair)",
            category=category("training"),
            search_aliases=["loss tiers", "face body hair mask", "segmentation weights"],
            description="Builds a tiered loss-weight mask from region masks (e.g. SAM / Sapiens segmentations): "
                        "face over hair over body over background, with the guide's 8-bit levels 255 / 80 / 128 / 0 "
                        f"by default. Output: {conventions.LOSS_WEIGHT}.",
            inputs=[_level("face", TIERS["face"]), _level("body", TIERS["body"]), _level("hair", TIERS["hair"]),
                    _level("background", TIERS["background"]), _region("face"), _region("body"), _region("hair")],
            outputs=[io.Mask.Output(display_name="tiers", tooltip=
                f"Tiered weights [frames,H,W] in [0,1] (level/255), {conventions.LOSS_WEIGHT}.")],
        )

    @classmethod
    def execute(cls, face_level, body_level, hair_level, background_level, face=None, body=None,
                hair=None) -> io.NodeOutput:
        regions = {"face": face, "body": body, "hair": hair}
        levels = {"face": face_level, "body": body_level, "hair": hair_level, "background": background_level}
        return io.NodeOutput(compose_tiers(region_stack_shape(regions, "WanMaskLossTiers"), **regions, tiers=levels))
