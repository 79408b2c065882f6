"""The nodes' public contract survives their move to the V3 schema: ids, input names, sections and
order, widget types and options, outputs and their order, as /object_info shows them, equal the
snapshot taken from the V1 declarations on the same ComfyUI version (data/node_contracts_*.json).
The nodes also say what V3 adds: categories beside the native Wan nodes, advanced expert options
and search aliases where the version has them."""
from __future__ import annotations

import json

import pytest

from comfyui_wanmasking.tests.integration.node_contracts import pack_contracts, snapshot_path

pytestmark = pytest.mark.integration
FILE_LISTS = {"vae_name", "existing_lora", "folder", "mask_folder", "subject_folder"}  # options that list
# the model or input folders, not the contract
EXPERT = {"WanMaskSamplerPatch": ["exact_keep", "validate"], "WanMaskVAEDecode": ["overlap", "temporal_chunk"],
          "WanMaskTrainLoRA": ["prior_mask_threshold", "normalize_per_sample", "require_mask"]}

# Inputs added after the snapshot, in order: they go last and are optional, so a workflow saved before
# keeps its widget values by position and still validates.
ADDED_SINCE_SNAPSHOT = {"WanMaskI2VEmbeds": ["ref_pad_image"]}


@pytest.fixture(scope="module")
def version(server):
    return server.get("/system_stats")["system"]["comfyui_version"]


def _without_file_lists(contract: dict) -> dict:
    return {**contract, "inputs": [{k: v for k, v in i.items() if not (k == "options" and i["name"] in FILE_LISTS)}
                                   for i in contract["inputs"]]}


def test_every_node_keeps_its_contract(object_info, version):
    path = snapshot_path(version)
    if not path.exists():
        pytest.skip(f"no contract snapshot for ComfyUI {version} ({path.name})")
    before = json.loads(path.read_text())
    now = pack_contracts(object_info)
    missing = sorted(set(before) - set(now))
    assert not missing, f"nodes gone from /object_info: {missing}"
    for node_id, contract in before.items():
        was, is_now = _without_file_lists(contract), _without_file_lists(now[node_id])
        kept = len(was["inputs"])
        assert is_now["inputs"][:kept] == was["inputs"], f"{node_id}: inputs changed since the V1 declaration"
        assert {k: v for k, v in is_now.items() if k != "inputs"} == {k: v for k, v in was.items() if k != "inputs"}, \
            f"{node_id}: outputs changed since the V1 declaration"
        added = is_now["inputs"][kept:]
        assert [i["name"] for i in added] == ADDED_SINCE_SNAPSHOT.get(node_id, []), \
            f"{node_id}: inputs added after the snapshot must go last and be listed in ADDED_SINCE_SNAPSHOT"
        assert all(i["section"] == "optional" for i in added), \
            f"{node_id}: an input added later must be optional, or saved workflows stop validating"


def test_categories_sit_beside_the_native_wan_nodes(object_info):
    native = object_info["WanImageToVideo"]["category"]
    for node_id in ("WanMaskI2VEmbeds", "WanMaskVaceEmbeds", "WanMaskAnimateEmbeds", "WanMaskTemporal"):
        assert object_info[node_id]["category"].startswith(native + "/"), (node_id, object_info[node_id]["category"])
    assert object_info["WanMaskTrainLoRA"]["category"].startswith(object_info["TrainLoraNode"]["category"] + "/")
    assert object_info["WanMaskVAELoader"]["category"].startswith(object_info["VAELoader"]["category"] + "/")
    assert object_info["WanMaskContextWindows"]["category"].startswith(
        object_info["WanContextWindowsManual"]["category"] + "/")
    assert not any(e["category"].startswith("WanMasking") for k, e in object_info.items() if k.startswith("WanMask"))


def _flag(object_info, node_id, name):
    entry = object_info[node_id]["input"]
    spec = entry.get("required", {}).get(name) or entry.get("optional", {}).get(name)
    return spec[1].get("advanced")


def test_expert_options_are_advanced_where_the_version_folds_them(object_info):
    # ComfyUI marks some of its own inputs advanced (0.3.64: CLIPLoader's device); where it does, ours are too
    native_has_it = any(isinstance(spec, list) and len(spec) > 1 and isinstance(spec[1], dict) and spec[1].get("advanced")
                        for k, e in object_info.items() if not k.startswith("WanMask")
                        for section in e["input"].values() if isinstance(section, dict) for spec in section.values())
    for node_id, names in EXPERT.items():
        for name in names:
            assert bool(_flag(object_info, node_id, name)) == native_has_it, (node_id, name)
    assert not _flag(object_info, "WanMaskSamplerPatch", "differential")  # everyday options stay visible


def test_search_aliases_where_the_schema_has_them(object_info):
    entry = object_info["WanMaskToLatent"]
    if "search_aliases" not in entry:
        pytest.skip("this ComfyUI's /object_info has no search_aliases")
    assert "set latent noise mask" in entry["search_aliases"]
    assert all(object_info[k]["search_aliases"] for k in object_info if k.startswith("WanMask") and "Test" not in k)


def test_validate_inputs_refuses_bad_widget_values_before_the_queue(server):
    """Strings ComfyUI cannot check (frame ranges, keyframe indices) and 1+4k lengths are refused by
    /prompt itself, with the input named, before anything runs."""
    prompt = {"1": {"class_type": "WanMaskTemporal",
                    "inputs": {"length": 17, "width": 16, "height": 16, "keep": "0-3, banana"}},
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
              "3": {"class_type": "MaskToImage", "inputs": {"mask": ["1", 0]}}}
    code, body = server.submit(prompt)
    assert code == 400, body
    text = json.dumps(body)
    assert "keep" in text and "banana" in text and "not a frame range" in text
    prompt["1"]["inputs"]["keep"] = "0-3"
    prompt["1"]["inputs"]["length"] = 0
    code, body = server.submit(prompt)
    assert code == 400 and "length" in json.dumps(body), body


def test_bad_choices_are_refused_before_the_queue_on_every_version(server):
    """ComfyUI 0.3.64 checks V1 combo lists at /prompt but not V3 COMBO inputs; the nodes' own
    validate_inputs refuses a value that is not among the options there too."""
    prompt = {"1": {"class_type": "WanMaskVAELoader", "inputs": {"vae_name": "wan_tiny_vae.safetensors",
                                                                  "decode_precision": "fp8", "encode_precision": "auto",
                                                                  "cache_offload": False}},
              "2": {"class_type": "WanMaskVAEEncode", "inputs": {"pixels": ["3", 0], "vae": ["1", 0], "tile_size": 0,
                                                                  "overlap": 64, "temporal_chunk": 1,
                                                                  "frame_count": "truncate"}},
              "3": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0}},
              "4": {"class_type": "WanMaskTestSave", "inputs": {"path": "never.safetensors", "latent": ["2", 0]}}}
    code, body = server.submit(prompt)
    assert code == 400, body
    errors = {nid: json.dumps(e) for nid, e in body["node_errors"].items()}
    assert "decode_precision" in errors["1"] and "fp8" in errors["1"], errors
    assert "frame_count" in errors["2"] and "truncate" in errors["2"], errors
