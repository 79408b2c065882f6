"""Widget layouts of the pack's nodes that earlier releases saved, brought to today's before conversion.

A UI-format workflow stores widget values by position. Before the pack declared its own input list,
``WanMaskTrainLoRA`` mirrored the running ComfyUI's native Train LoRA, so a workflow saved on ComfyUI
0.3.x holds 20 widget values in 0.3.x's order, where today's list (0.33's order on every version) has
25. The frontend would load them shifted; the runner recognises the old layout by its length and the
kind of each value, moves every value to its input by name, gives the five options 0.3.x lacked their
defaults, and logs one warning per node.
"""
from __future__ import annotations

import copy
import logging

log = logging.getLogger("wanmask_runner")

_MASKED = ["gamma", "min_weight", "prior_preservation_weight", "prior_mask_threshold", "normalize_per_sample",
           "require_mask"]
# "control_after_generate" is the frontend's widget beside seed (a saved value, no input)
TRAINER_0_3 = ["batch_size", "grad_accumulation_steps", "steps", "learning_rate", "rank", "optimizer", "loss_function",
               "seed", "control_after_generate", "training_dtype", "lora_dtype", "algorithm",
               "gradient_checkpointing", "existing_lora", *_MASKED]
TRAINER_NOW = ["batch_size", "grad_accumulation_steps", "steps", "learning_rate", "rank", "optimizer", "loss_function",
               "seed", "control_after_generate", "training_dtype", "lora_dtype", "quantized_backward", "algorithm",
               "gradient_checkpointing", "checkpoint_depth", "offloading", "existing_lora", "bucket_mode",
               "bypass_mode", *_MASKED]
ADDED_SINCE_0_3 = {"quantized_backward": False, "checkpoint_depth": 1, "offloading": False, "bucket_mode": False,
                   "bypass_mode": False}


def _is_old_trainer_layout(values) -> bool:
    """20 values whose kinds fit 0.3.x's order (and not today's 25)."""
    if not isinstance(values, list) or len(values) != len(TRAINER_0_3):
        return False
    kinds = {"training_dtype": str, "lora_dtype": str, "algorithm": str, "gradient_checkpointing": bool,
             "existing_lora": str, "normalize_per_sample": bool, "require_mask": bool}
    return all(isinstance(values[TRAINER_0_3.index(name)], kind) for name, kind in kinds.items())


def migrate_trainer_layout(values: list) -> list:
    """0.3.x's 20 ``widgets_values`` of WanMaskTrainLoRA in today's order (25 values)."""
    by_name = dict(zip(TRAINER_0_3, values))
    return [by_name[name] if name in by_name else ADDED_SINCE_0_3[name] for name in TRAINER_NOW]


def migrate_legacy_layouts(ui: dict) -> tuple[dict, list[str]]:
    """A copy of a UI workflow with old widget layouts brought to today's (root graph and subgraph
    definitions), and one note per migrated node."""
    ui = copy.deepcopy(ui)
    notes = []
    graphs = [ui] + list(ui.get("definitions", {}).get("subgraphs", []) or [])
    for graph in graphs:
        for node in graph.get("nodes", []) or []:
            if node.get("type") == "WanMaskTrainLoRA" and _is_old_trainer_layout(node.get("widgets_values")):
                node["widgets_values"] = migrate_trainer_layout(node["widgets_values"])
                notes.append(f"node {node.get('id')} (WanMaskTrainLoRA): saved with the 0.3.x widget layout (20 "
                             f"values); moved to today's by name, with {', '.join(ADDED_SINCE_0_3)} at their "
                             "defaults. Save the workflow again to keep the new layout.")
    return ui, notes
