"""Loss-weight nodes for masked-loss LoRA training: WanMaskLossWeights (a mask as loss weights, with a
preview) and WanMaskLossTiers (face / body / hair / background tiers from segmentations, optionally
limited to one subject in group photos). The trainer is in train_lora.py, the training set from a
folder in training_set.py.
"""
from __future__ import annotations

import logging

from comfy_api.latest import io

from .inputs import category, check_choices, first_error, schema
from ..masking import conventions
from ..masking.training.weights import (
    PRESETS, TIERS, apply_gamma_floor, compose_tiers, normalize_mask, region_stack_shape, resize_weights,
    tier_preview,
)

log = logging.getLogger("WanMasking")


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
                        "by default; an optional subject mask zeroes everyone else (group photos). "
                        f"Output: {conventions.LOSS_WEIGHT}.",
            inputs=[_level("face", TIERS["face"]), _level("body", TIERS["body"]), _level("hair", TIERS["hair"]),
                    _level("background", TIERS["background"]), _region("face"), _region("body"), _region("hair"),
                    io.Mask.Input("subject", optional=True, tooltip=
                        "Group photos: a binary instance mask of the one person to learn (> 0.5 = them, e.g. from "
                        "SAM). Every weight outside it becomes 0, bystanders included. 1 frame or one per frame.")],
            outputs=[io.Mask.Output(display_name="tiers", tooltip=
                f"Tiered weights [frames,H,W] in [0,1] (level/255), {conventions.LOSS_WEIGHT}.")],
        )

    @classmethod
    def execute(cls, face_level, body_level, hair_level, background_level, face=None, body=None,
                hair=None, subject=None) -> io.NodeOutput:
        regions = {"face": face, "body": body, "hair": hair}
        levels = {"face": face_level, "body": body_level, "hair": hair_level, "background": background_level}
        shape = region_stack_shape(regions, "WanMaskLossTiers")
        return io.NodeOutput(compose_tiers(shape, **regions, tiers=levels, subject=subject))
