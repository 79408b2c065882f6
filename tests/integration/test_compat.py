"""The compatibility boundary (nodes/comfy_compat/) finds every ComfyUI internal it bridges, in the
ComfyUI under test, by behaviour (tests/unit/test_self_check_probes.py feeds each probe fakes with
changed shapes). When a new ComfyUI breaks the pack, this names the file and the feature."""
from __future__ import annotations

import pytest

from comfyui_wanmasking.tests.integration.comfy_server import COMPAT, run_compat_in_comfyui
from comfyui_wanmasking.tests.integration.node_contracts import widget



@pytest.fixture(scope="module")
def found(comfyui_path):
    # utils.extra_config first, as ComfyUI's main.py does, before nodes.py puts comfy/ (and its
    # utils.py) first on sys.path
    return run_compat_in_comfyui(comfyui_path, "m.self_check()", prelude="import utils.extra_config\n")


def test_every_bridged_internal_is_found(found):
    missing = {k: v for k, v in found.items() if v != "ok"}
    assert not missing, f"this ComfyUI breaks {COMPAT.name} ({COMPAT}): {missing}"
    assert len(found) == 6


def test_the_pack_loads_through_the_boundary_on_the_server(server):
    """WanMaskTrainLoRA declares its own inputs (0.33's order on every version); each native Train LoRA
    input of this ComfyUI is among them, in native's order, with the same type and default, and combo
    options that include native's. What native lacks here is an option the boundary feature-detects."""
    info = server.get("/object_info/WanMaskTrainLoRA")["WanMaskTrainLoRA"]
    native = server.get("/object_info/TrainLoraNode")["TrainLoraNode"]
    ours = list(info["input_order"]["required"])
    theirs = list(native["input_order"]["required"])
    assert [n for n in ours if n in theirs] == theirs, "native's inputs, in native's order"
    assert ours[-6:] == ["gamma", "min_weight", "prior_preservation_weight", "prior_mask_threshold",
                         "normalize_per_sample", "require_mask"]
    extra = set(ours[:-6]) - set(theirs)
    assert extra <= {"quantized_backward", "checkpoint_depth", "offloading", "bucket_mode", "bypass_mode"}, extra
    assert "loss_mask" in info["input"]["optional"]
    for name in theirs:
        mine, base = widget(info["input"]["required"][name]), widget(native["input"]["required"][name])
        assert mine["type"] == base["type"] and mine.get("default") == base.get("default"), name
        if base["type"] == "COMBO" and name != "existing_lora":
            assert set(base["options"]) <= set(mine["options"]), name
    assert info["output"] == ["MODEL", "LORA_MODEL", "LOSS_MAP", "INT"]
