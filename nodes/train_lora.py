"""WanMaskTrainLoRA: LoRA training with a masked loss, on native Train LoRA's building blocks.

Its inputs are the pack's own and the same on every ComfyUI version (a saved workflow stores widget
values by position): native Train LoRA's inputs in ComfyUI 0.33's order, names, defaults and bounds,
then the masked-loss inputs. Where the running ComfyUI lacks one of native's options, that option is
refused by ``validate_inputs`` when set away from its default (``comfy_compat.trainer_features``).
Every input arrives as a list (``is_input_list``, as 0.33's native node), so a list of latents from
``WanMaskTrainingSet`` or ``MakeTrainingDataset`` / ``ResolutionBucket`` trains as one set.
"""
from __future__ import annotations

import logging

import folder_paths
from comfy_api.latest import io

from . import comfy_compat as compat
from .inputs import category, check_widgets, expert, first_error, schema
from .lora_trainer import TrainOptions, train_masked_lora
from ..masking import conventions
from ..masking.training.loss import MaskLossSettings, prior_region_warning
from ..masking.training.trainer_inputs import assemble_training_data

log = logging.getLogger("WanMasking")

ALGORITHMS = ["LoRA", "LoHa", "LoKr", "OFT"]


def native_option_inputs() -> list[io.Input]:
    """Native Train LoRA's inputs as ComfyUI 0.33 declares them (names, order, defaults, bounds)."""
    return [
        io.Model.Input("model", tooltip="The model to train the LoRA on."),
        io.Latent.Input("latents", tooltip=
            "Training latents: one LATENT, or a list (WanMaskTrainingSet, MakeTrainingDataset, ResolutionBucket). "
            "Latents from WanMaskTrainingSet carry each item's loss weights with them."),
        io.Conditioning.Input("positive", tooltip=
            "Text conditioning: one for every item, or one per item (a list, as the latents)."),
        io.Int.Input("batch_size", default=1, min=1, max=10000, tooltip=
            "Items per step. In bucket mode a step's batch comes from one bucket (at most its size)."),
        io.Int.Input("grad_accumulation_steps", default=1, min=1, max=1024, tooltip=
            "Steps whose gradients add up before each optimizer step."),
        io.Int.Input("steps", default=16, min=1, max=100000, tooltip="Optimizer steps to train for."),
        io.Float.Input("learning_rate", default=0.0005, min=0.0000001, max=1.0, step=0.0000001,
                       tooltip="The learning rate."),
        io.Int.Input("rank", default=8, min=1, max=128, tooltip="The rank of the LoRA layers."),
        io.Combo.Input("optimizer", options=["AdamW", "Adam", "SGD", "RMSprop"], default="AdamW",
                       tooltip="The optimizer."),
        io.Combo.Input("loss_function", options=["MSE", "L1", "Huber", "SmoothL1"], default="MSE", tooltip=
            "Element-wise loss, reduced with the loss weights (weighted mean)."),
        io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, tooltip=
            "Seeds the LoRA initialization, the item / bucket / sigma draws and the noise: one seed, one LoRA."),
        io.Combo.Input("training_dtype", options=["bf16", "fp32", "none"], default="bf16", tooltip=
            "Compute dtype. 'none' keeps the model's own (fp16 models then train with a GradScaler)."),
        io.Combo.Input("lora_dtype", options=["bf16", "fp32"], default="bf16", tooltip="The LoRA's dtype."),
        io.Boolean.Input("quantized_backward", default=False, tooltip=
            "With training_dtype 'none' on a quantized model: backward with quantized matmul. Needs a ComfyUI "
            "that has it (0.33+); refused elsewhere."),
        io.Combo.Input("algorithm", options=ALGORITHMS, default="LoRA", tooltip="The adapter algorithm."),
        io.Boolean.Input("gradient_checkpointing", default=True, tooltip="Gradient checkpointing (less memory)."),
        io.Int.Input("checkpoint_depth", default=1, min=1, max=5, tooltip=
            "Module depth of gradient checkpointing. Values other than 1 need ComfyUI 0.33+."),
        io.Boolean.Input("offloading", default=False, tooltip=
            "Offload model weights to the CPU while training. Needs ComfyUI 0.33+; refused elsewhere."),
        io.Combo.Input("existing_lora", options=folder_paths.get_filename_list("loras") + ["[None]"],
                       default="[None]", tooltip="A LoRA (loras folder) to continue training; [None] = a new one."),
        io.Boolean.Input("bucket_mode", default=False, tooltip=
            "On: items of different sizes and lengths train together, grouped by latent shape (frames, h, w); "
            "each step draws one bucket (weighted by its size), then its batch from that bucket. Off: every item "
            "must have one shape."),
        io.Boolean.Input("bypass_mode", default=False, tooltip=
            "Apply the adapters with forward hooks instead of weight patches (quantized models). Needs ComfyUI "
            "0.33+; refused elsewhere."),
    ]


def masked_loss_inputs() -> list[io.Input]:
    """The pack's masked-loss inputs, after native's."""
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
            "On: training items without loss weights (no loss_mask and none carried by the latents, or fewer "
            "per-item masks than items) are an error. Off: they train at full weight 1.0 everywhere (warned).")),
        io.Mask.Input("loss_mask", optional=True, tooltip=
            f"Loss weights, {conventions.LOSS_WEIGHT}; 8-bit levels (face 255, body 128, hair 80, background 0) "
            "are divided by 255. Frames: 1 (every frame and item), T or 1+4(T-1) (a video mask for every item), "
            "or one such mask per item, item after item. Any size: area-averaged onto the latent grid. Leave it "
            "unconnected for latents from WanMaskTrainingSet: they carry their own weights."),
    ]


def _single(value):
    """The value of a widget input (every input is a list: ``is_input_list``)."""
    return value[0] if isinstance(value, list) and value else value


def refused_options(values: dict) -> str | None:
    """A message for each native option set away from its default that this ComfyUI lacks."""
    features = compat.trainer_features()
    defaults = {"quantized_backward": False, "checkpoint_depth": 1, "offloading": False, "bypass_mode": False}
    wrong = [f"{name}={_single(values[name])!r}" for name, default in defaults.items()
             if name in values and _single(values[name]) not in (None, default) and not features.get(name, False)]
    algorithm = _single(values.get("algorithm"))
    if algorithm is not None and algorithm not in features.get("algorithms", ALGORITHMS):
        wrong.append(f"algorithm={algorithm!r}")
    if not wrong:
        return None
    return (f"{', '.join(wrong)}: this ComfyUI's trainer does not have {'these options' if len(wrong) > 1 else 'this option'}. "
            "Fix: set it back to its default (quantized_backward off, checkpoint_depth 1, offloading off, "
            "bypass_mode off, algorithm LoRA), or update ComfyUI.")


class WanMaskTrainLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="WanMaskTrainLoRA",
            display_name="Wan Mask Train LoRA (masked loss)",
            category=category("training"),
            search_aliases=["train lora", "masked loss", "lora training", "prior preservation", "bucket training"],
            description="Train LoRA with a masked loss for Wan video latents: native Train LoRA's options (the same "
                        "inputs on every ComfyUI version), plus loss weights. loss_mask: "
                        f"{conventions.LOSS_WEIGHT}. A per-frame video mask (1+4k frames) is brought to the latent "
                        "frames with Wan's causal grouping (frame 0 alone, then groups of 4, mean). Latents from "
                        "WanMaskTrainingSet bring each item's own weights; bucket_mode trains items of several "
                        "sizes and lengths. Optional prior preservation pulls the prediction outside the mask toward "
                        "the base model (LoRA off). A banner with the active settings is printed to the console.",
            inputs=[*native_option_inputs(), *masked_loss_inputs()],
            outputs=[
                io.Model.Output(display_name="model_with_lora", tooltip=
                    "The input model with the trained LoRA applied (as LoraModelLoader at strength 1)."),
                io.LoraModel.Output(display_name="lora", tooltip=
                    "The trained LoRA (LORA_MODEL, for the save LoRA node / LoraModelLoader)."),
                io.LossMap.Output(display_name="loss", tooltip=
                    "Loss per step: 'loss' (total, for the loss graph node), plus 'target_loss' and 'prior_loss'."),
                io.Int.Output(display_name="steps", tooltip="Total steps (including an existing LoRA's)."),
            ],
            is_input_list=True,
            is_experimental=True,
        )

    @classmethod
    def validate_inputs(cls, **values):
        """Every widget against its options and bounds (ComfyUI leaves these checks to a node whose
        validate_inputs takes ``**values``, and 0.3.64 would not check V3 combos), then the options
        this ComfyUI's trainer lacks."""
        def lacking():
            message = refused_options(values)
            if message:
                raise ValueError(message)
        return first_error(lambda: check_widgets(cls, values), lacking)

    @classmethod
    def execute(cls, model, latents, positive, gamma, min_weight, prior_preservation_weight,
                prior_mask_threshold, normalize_per_sample, require_mask, loss_mask=None, **native) -> io.NodeOutput:
        model = _single(model)
        gamma, min_weight, prior_preservation_weight, prior_mask_threshold, normalize_per_sample, require_mask = (
            _single(v) for v in (gamma, min_weight, prior_preservation_weight, prior_mask_threshold,
                                 normalize_per_sample, require_mask))
        message = refused_options(native)
        if message:
            raise ValueError(message)
        opts = TrainOptions(**{k: _single(v) for k, v in native.items() if k in TrainOptions.names()})
        settings = MaskLossSettings(gamma=gamma, min_weight=min_weight, prior_weight=prior_preservation_weight,
                                    prior_threshold=prior_mask_threshold if prior_mask_threshold > 0 else None,
                                    normalize_per_sample=normalize_per_sample)
        data = assemble_training_data(latents, positive, loss_mask, require_mask=require_mask,
                                      bucket_mode=opts.bucket_mode)
        log.info("WanMaskTrainLoRA settings:\n%s", settings.banner() + "\n" + data.summary())
        for warning in settings.warnings() + [prior_region_warning(data.all_weights(), settings)]:
            if warning:
                log.warning("WanMaskTrainLoRA: %s", warning)
        model_out, lora, loss_map, steps, sampler = train_masked_lora(model, data, settings, opts)
        log.info("WanMaskTrainLoRA: %s", sampler.draw_summary())
        if settings.uses_prior and sampler.teacher_patched_modules == 0:
            log.warning("WanMaskTrainLoRA: the teacher pass found no LoRA layers to disable, so the prior "
                        "target equals the student's prediction.")
        return io.NodeOutput(model_out, lora, loss_map, steps)
