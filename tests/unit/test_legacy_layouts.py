"""The runner brings WanMaskTrainLoRA widget values saved on ComfyUI 0.3.x (20 values, 0.3.x's order)
to today's layout (25 values, one order on every version) by name, before converting."""
from __future__ import annotations

import json
from pathlib import Path

from comfyui_wanmasking.wanmask_runner.legacy_layouts import (
    ADDED_SINCE_0_3, TRAINER_0_3, TRAINER_NOW, migrate_legacy_layouts,
)

SAVED_ON_0_3 = Path(__file__).resolve().parents[1] / "integration" / "data" / "masked_lora_training_saved_on_0_3_64.json"


def trainer(ui: dict) -> dict:
    return next(n for n in ui["nodes"] if n["type"] == "WanMaskTrainLoRA")


def test_a_trainer_saved_on_0_3_moves_to_todays_layout_by_name():
    ui = json.loads(SAVED_ON_0_3.read_text())
    old = trainer(ui)["widgets_values"]
    migrated, notes = migrate_legacy_layouts(ui)
    new = trainer(migrated)["widgets_values"]
    assert len(old) == len(TRAINER_0_3) and len(new) == len(TRAINER_NOW)
    for name, value in zip(TRAINER_0_3, old):
        assert new[TRAINER_NOW.index(name)] == value, name
    for name, default in ADDED_SINCE_0_3.items():
        assert new[TRAINER_NOW.index(name)] == default, name
    assert len(notes) == 1 and "0.3.x widget layout" in notes[0]
    assert trainer(ui)["widgets_values"] == old            # the caller's workflow is not changed


def test_todays_layout_and_unknown_shapes_are_left_alone():
    ui = json.loads(SAVED_ON_0_3.read_text())
    migrated, _ = migrate_legacy_layouts(ui)
    again, notes = migrate_legacy_layouts(migrated)
    assert notes == [] and trainer(again)["widgets_values"] == trainer(migrated)["widgets_values"]
    odd = json.loads(SAVED_ON_0_3.read_text())
    trainer(odd)["widgets_values"] = [1] * len(TRAINER_0_3)   # 20 values of the wrong kinds: not 0.3.x's layout
    kept, notes = migrate_legacy_layouts(odd)
    assert notes == [] and trainer(kept)["widgets_values"] == [1] * len(TRAINER_0_3)
