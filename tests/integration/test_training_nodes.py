"""The training nodes in a real ComfyUI, short of training anything: WanMaskTrainLoRA's declaration
(0.33's native inputs on every version), what it refuses before any training (missing or ill-fitting
masks, bad widget values, options this ComfyUI lacks), WanMaskLossWeights and WanMaskLossTiers, and
saved trainer workflows from either version. What training learns: test_training.py."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_wanmasking.tests.integration.comfy_server import execution_error
from comfyui_wanmasking.tests.integration.graphs import Graph, tiny_t2v_model, zero_cond
from comfyui_wanmasking.tests.integration.training_data import CELLS, SIZE, T, data, trainer  # noqa: F401 (data: a fixture)


# ---- node declarations ---------------------------------------------------------------------------

# The trainer's own input list, the same on every ComfyUI version: 0.33's native Train LoRA inputs in
# its order, then the pack's (saved workflows store widget values by position).
TRAINER_INPUTS = [
    "model", "latents", "positive", "batch_size", "grad_accumulation_steps", "steps", "learning_rate", "rank",
    "optimizer", "loss_function", "seed", "training_dtype", "lora_dtype", "quantized_backward", "algorithm",
    "gradient_checkpointing", "checkpoint_depth", "offloading", "existing_lora", "bucket_mode", "bypass_mode",
    "gamma", "min_weight", "prior_preservation_weight", "prior_mask_threshold", "normalize_per_sample",
    "require_mask"]


def test_nodes_mirror_the_native_trainer(server):
    info = server.get("/object_info")
    ours, native = info["WanMaskTrainLoRA"], info["TrainLoraNode"]
    assert list(ours["input"]["required"]) == TRAINER_INPUTS             # one order on every version
    if "is_input_list" in ours:        # (0.3.64's /object_info does not report it; its executor reads it)
        assert ours["is_input_list"] is True
    mine = list(ours["input"]["required"])
    native_names = [n for n in native["input"]["required"]]
    assert [n for n in mine if n in native_names] == native_names        # native's options, in native's order
    assert list(ours["input"]["optional"]) == ["loss_mask"]
    assert "1 (white, 8-bit 255) = full training weight" in ours["input"]["optional"]["loss_mask"][1]["tooltip"]
    # Our outputs stay the same on every version (0.33's native returns only lora, loss_map, steps);
    # each native output type is among them, so native's save and loss-graph nodes take them.
    assert ours["output"] == ["MODEL", "LORA_MODEL", "LOSS_MAP", "INT"]
    assert ours["output_name"] == ["model_with_lora", "lora", "loss", "steps"]
    assert set(native["output"]) <= set(ours["output"])
    assert ours.get("output_is_list") in (None, [False] * 4)
    assert ours["category"] == native["category"] + "/wan masking"  # beside native Train LoRA
    weights = info["WanMaskLossWeights"]
    assert list(weights["input"]["required"]) == ["mask", "preset", "gamma", "min_weight", "width", "height"]
    assert weights["output"] == ["MASK", "IMAGE"]
    tiers = info["WanMaskLossTiers"]
    assert list(tiers["input"]["optional"]) == ["face", "body", "hair", "subject"]   # subject: new, last
    assert [tiers["input"]["required"][k][1]["default"] for k in tiers["input"]["required"]] == [255, 128, 80, 0]


# ---- errors before any training, and the weights node ------------------------------------------------

def _trainer_error(server, g, source, **kw):
    trained = trainer(g, tiny_t2v_model(g), zero_cond(g), source, **kw)
    g.add("WanMaskTestSaveLoss", loss=trained[2], path="/dev/null")
    return execution_error(server.run(g.prompt))


def test_missing_mask_with_require_mask_fails_before_training(server, data):
    g = Graph()
    source = g.add("WanMaskTestLoad", path=str(data["dir"] / "A.safetensors"))
    message = _trainer_error(server, g, source, masked=False, require_mask=True)
    assert "loss_mask: no mask is connected but require_mask is on" in message


def _submit_with(server, data, values: dict) -> tuple[int, dict, str]:
    """Submit a masked training with ``values`` set on the trainer: (HTTP status, body, the trainer's errors)."""
    g = Graph()
    source = g.add("WanMaskTestLoad", path=str(data["dir"] / "A.safetensors"))
    trained = trainer(g, tiny_t2v_model(g), zero_cond(g), source, masked=True)
    g.prompt[trained.id]["inputs"].update(values)
    g.add("WanMaskTestSaveLoss", loss=trained[2], path="/dev/null")
    code, body = server.submit(g.prompt)
    return code, body, json.dumps(body.get("node_errors", {}).get(trained.id, {}))


@pytest.mark.parametrize("bad", [{"optimizer": "Adamax"}, {"rank": 0}, {"gamma": 0.0}])
def test_bad_widget_values_are_refused_before_the_queue(server, data, bad):
    """Every widget of the trainer (V3 COMBOs, which 0.3.64 does not check itself, and bounds) is checked
    against its options and bounds by the node's validate_inputs."""
    code, body, text = _submit_with(server, data, bad)
    name, value = next(iter(bad.items()))
    assert code == 400, body
    assert name in text and str(value) in text, text


@pytest.mark.parametrize("option", [{"offloading": True}, {"checkpoint_depth": 2}, {"bypass_mode": True},
                                    {"quantized_backward": True}])
def test_an_option_this_comfyui_lacks_is_refused_before_the_queue(server, data, option):
    """The trainer declares 0.33's options on every version; where native's trainer here lacks one
    (0.3.64), setting it away from its default is refused at /prompt, naming it and the fix."""
    name, value = next(iter(option.items()))
    native = server.get("/object_info/TrainLoraNode")["TrainLoraNode"]["input"]["required"]
    if name in native:
        pytest.skip(f"this ComfyUI's trainer has {name}")
    code, body, text = _submit_with(server, data, option)
    assert code == 400, body
    assert f"{name}={value!r}" in text and "does not have" in text and "Fix" in text, text


def test_bad_mask_frame_count_fails_before_training(server, io_dir):
    path = io_dir / "bad.safetensors"
    save_file({"samples": torch.zeros(1, 16, T, CELLS, CELLS), "mask": torch.ones(6, SIZE, SIZE)}, str(path))
    g = Graph()
    message = _trainer_error(server, g, g.add("WanMaskTestLoad", path=str(path)), masked=True)
    assert "loss_mask: 6 frames does not fit 1 training item(s) with 3 latent frames" in message


def test_loss_weights_node_outputs_weights_and_tier_preview(server, io_dir):
    tiers = torch.tensor([255.0, 128.0, 80.0, 0.0]).repeat_interleave(4).reshape(1, 1, 16).expand(1, 16, 16)
    path = io_dir / "tiers.safetensors"
    save_file({"mask": tiers.contiguous()}, str(path))
    g = Graph()
    src = g.add("WanMaskTestLoad", path=str(path))
    w = g.add("WanMaskLossWeights", mask=src[1], preset="recommended", gamma=1.0, min_weight=0.0, width=8, height=8)
    g.add("WanMaskTestSave", path=str(io_dir / "w.safetensors"), mask=w[0], image=w[1])
    server.run_ok(g.prompt)
    out = load_file(str(io_dir / "w.safetensors"))
    assert out["mask"].shape == (1, 8, 8) and out["image"].shape == (1, 8, 8, 3)
    row = out["mask"][0, 0, ::2].tolist()  # one cell per tier after the area downscale
    assert [round(v, 3) for v in row] == [1.0, 0.636, 0.472, 0.05]
    face, body, hair = out["image"][0, 0, 0], out["image"][0, 0, 2], out["image"][0, 0, 4]
    assert face.argmax() == 0 and body.argmax() == 1 and hair.argmax() == 2


def test_example_workflow_uses_existing_nodes_and_inputs(server):
    """The training example of this ComfyUI (masked_lora_training.json uses 0.33's SaveLoRA,
    masked_lora_training_comfyui_0_3.json 0.3.64's SaveLoRANode): every node exists here, gets all its
    required inputs and no unknown ones, and links point at existing nodes."""
    from comfyui_wanmasking.tests.integration.examples import API_EXAMPLES, applies
    info = server.get("/object_info")
    mine = [p for p in API_EXAMPLES if p.stem in ("masked_lora_training", "masked_lora_training_comfyui_0_3")
            and applies(p, info)]
    assert len(mine) == 1, mine
    workflow = json.loads(mine[0].read_text())
    save = next(n for n in workflow.values() if n["class_type"] in ("SaveLoRA", "SaveLoRANode"))
    assert "LORA_MODEL" in info[save["class_type"]]["input"]["required"]["lora"][0]
    for nid, node in workflow.items():
        spec = info[node["class_type"]]["input"]
        required, optional = set(spec.get("required", {})), set(spec.get("optional", {}))
        given = set(node["inputs"])
        assert required <= given, (nid, node["class_type"], required - given)
        assert given <= required | optional, (nid, node["class_type"], given - required - optional)
        for value in node["inputs"].values():
            if isinstance(value, list):
                assert value[0] in workflow
    trainer_inputs = workflow["14"]["inputs"]
    assert trainer_inputs["loss_mask"] == ["11", 0] and trainer_inputs["prior_preservation_weight"] > 0


def test_tiers_from_region_masks_feed_the_weights_node(server, io_dir):
    face, body = torch.zeros(1, 16, 16), torch.zeros(1, 16, 16)
    body[:, 4:, 4:12] = 1
    face[:, 4:8, 6:10] = 1
    for name, m in (("face", face), ("body", body)):
        save_file({"mask": m}, str(io_dir / f"{name}.safetensors"))
    g = Graph()
    f, b = (g.add("WanMaskTestLoad", path=str(io_dir / f"{n}.safetensors")) for n in ("face", "body"))
    tiers = g.add("WanMaskLossTiers", face_level=255, body_level=128, hair_level=80, background_level=0,
                  face=f[1], body=b[1])
    w = g.add("WanMaskLossWeights", mask=tiers[0], preset="custom", gamma=1.0, min_weight=0.1, width=0, height=0)
    g.add("WanMaskTestSave", path=str(io_dir / "t.safetensors"), mask=w[0])
    server.run_ok(g.prompt)
    out = load_file(str(io_dir / "t.safetensors"))["mask"]
    assert out[0, 5, 7].item() == pytest.approx(1.0)                     # face
    assert out[0, 12, 5].item() == pytest.approx(128 / 255 * 0.9 + 0.1)  # body
    assert out[0, 0, 0].item() == pytest.approx(0.1)                     # background at the floor


@pytest.mark.parametrize("saved", ["masked_lora_training_dataset", "masked_lora_training_dataset_comfyui_0_3"])
def test_a_trainer_saved_on_one_version_loads_with_the_same_values_on_the_other(server, saved):
    """The UI example saved on 0.33 and its twin saved on 0.3.64 (widget values by position) convert on
    this ComfyUI to the trainer inputs of the API twin, whichever version saved them: WanMaskTrainLoRA's
    input list does not depend on the version. The save node of the other version is left out."""
    from comfyui_wanmasking.tests.integration.examples import EXAMPLES
    from comfyui_wanmasking.wanmask_runner.example_names import ui_example
    from comfyui_wanmasking.wanmask_runner.workflow.convert import ui_to_api
    info = server.get("/object_info")
    ui = json.loads(ui_example(saved).read_text())
    ui["nodes"] = [n for n in ui["nodes"] if n["type"] in info]
    converted = ui_to_api(ui, info)
    api = json.loads((EXAMPLES / "api" / f"{saved}.json").read_text())
    for node_type in ("WanMaskTrainLoRA", "WanMaskTrainingSet"):
        nid = next(k for k, n in api.items() if n["class_type"] == node_type)
        assert converted[nid]["inputs"] == api[nid]["inputs"], node_type


def test_a_trainer_saved_on_0_3_with_the_old_layout_runs_with_its_values(server):
    """A workflow saved on ComfyUI 0.3.64 before the trainer had its own input list (20 widget values in
    0.3.x's order; tests/integration/data/masked_lora_training_saved_on_0_3_64.json, the example as it
    was) converts through the runner to the values it was saved with, the new options at their defaults."""
    from comfyui_wanmasking.tests.integration.examples import REPO
    from comfyui_wanmasking.wanmask_runner.node_replacements import replace_then_convert
    info = server.get("/object_info")
    ui = json.loads((REPO / "tests" / "integration" / "data" / "masked_lora_training_saved_on_0_3_64.json").read_text())
    ui["nodes"] = [n for n in ui["nodes"] if n["type"] in info]
    inputs = replace_then_convert(ui, info)["14"]["inputs"]
    saved = {"batch_size": 1, "grad_accumulation_steps": 1, "steps": 500, "learning_rate": 0.0001, "rank": 16,
             "optimizer": "AdamW", "loss_function": "MSE", "seed": 0, "training_dtype": "bf16", "lora_dtype": "bf16",
             "algorithm": "LoRA", "gradient_checkpointing": True, "existing_lora": "[None]", "gamma": 0.7,
             "min_weight": 0.0, "prior_preservation_weight": 1.0, "prior_mask_threshold": 0.1,
             "normalize_per_sample": True, "require_mask": True, "quantized_backward": False, "checkpoint_depth": 1,
             "offloading": False, "bucket_mode": False, "bypass_mode": False}
    assert {k: inputs[k] for k in saved} == saved
