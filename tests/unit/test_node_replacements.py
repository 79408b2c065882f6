"""Node replacements (``/node_replacements``) applied to a UI workflow before conversion: mapping by
name, explicit mappings (old_widget_ids, set_value, output_mapping), links the mapping drops,
dotted (Autogrow / DynamicCombo) inputs, nodes inside subgraphs, and the warnings. The real
frontend's Replace is compared in tests/integration/test_frontend_oracle.py."""
import logging

import pytest

from comfyui_wanmasking.tests.helpers.ui_graphs import link, node
from comfyui_wanmasking.tests.unit.test_workflow_subgraphs import OBJECT_INFO as BASE
from comfyui_wanmasking.wanmask_runner.node_replacements import apply_node_replacements, replace_then_convert
from comfyui_wanmasking.wanmask_runner.workflow.convert import ui_to_api
from comfyui_wanmasking.wanmask_runner.workflow.errors import WorkflowFormatError

OBJECT_INFO = {
    **BASE,
    "Resize": {"input": {"required": {"image": ("LATENT", {}), "method": (["nearest", "lanczos"], {}),
                                      "size": ("INT", {"default": 512})}},
               "input_order": {"required": ["image", "method", "size"]},
               "output": ["LATENT", "INT"], "output_name": ["LATENT", "size"]},
    "Batch": {"input": {"required": {"mode": ("COMFY_DYNAMICCOMBO_V3", {"options": [
                  {"key": "one", "inputs": {"required": {}}},
                  {"key": "by", "inputs": {"required": {"factor": ("FLOAT", {"default": 1.0})}}}]})},
                         "optional": {"images.image0": ("LATENT", {})}},
              "input_order": {"required": ["mode"], "optional": ["images.image0"]},
              "output": ["LATENT"], "output_name": ["LATENT"]},
}
REPLACEMENTS = {
    "OldSampler": [{"new_node_id": "Sampler", "old_node_id": "OldSampler", "old_widget_ids": None,
                    "input_mapping": None, "output_mapping": None}],
    "OldResize": [{"new_node_id": "Resize", "old_node_id": "OldResize", "old_widget_ids": ["edge", "extra"],
                   "input_mapping": [{"new_id": "image", "old_id": "pixels"}, {"new_id": "size", "old_id": "edge"},
                                     {"new_id": "method", "set_value": "lanczos"}],
                   "output_mapping": [{"old_idx": 1, "new_idx": 0}]}],
    "OldBatch": [{"new_node_id": "Batch", "old_node_id": "OldBatch", "old_widget_ids": ["f"],
                  "input_mapping": [{"new_id": "images.image0", "old_id": "a"}, {"new_id": "mode", "set_value": "by"},
                                    {"new_id": "mode.factor", "old_id": "f"}], "output_mapping": None}],
    "Gone": [{"new_node_id": "NotHereEither", "old_node_id": "Gone"}],
}


def workflow(nodes, links, subgraphs=()):
    return {"nodes": nodes, "links": links, "definitions": {"subgraphs": list(subgraphs)}, "version": 0.4}


def sampler_chain(kind="OldSampler"):
    return workflow(
        [node(1, "Loader", [], [("MODEL", "MODEL", [11])], ["b.safetensors"]),
         node(2, "Latent", [], [("LATENT", "LATENT", [12])], [96, 5]),
         node(3, kind, [("model", "MODEL", 11), ("latent", "LATENT", 12)], [("LATENT", "LATENT", [13])],
              [7, "fixed", 12], title="Old one"),
         node(4, "Save", [("latent", "LATENT", 13)], [], ["out"])],
        [[11, 1, 0, 3, 0, "MODEL"], [12, 2, 0, 3, 1, "LATENT"], [13, 3, 0, 4, 0, "LATENT"]])


def test_a_replacement_without_mappings_maps_inputs_outputs_and_widgets_by_name(caplog):
    with caplog.at_level(logging.WARNING, logger="wanmask_runner"):
        prompt = replace_then_convert(sampler_chain(), OBJECT_INFO, replacements=REPLACEMENTS)
    assert prompt["3"] == {"class_type": "Sampler", "_meta": {"title": "Old one"},
                           "inputs": {"seed": 7, "steps": 12, "model": ["1", 0], "latent": ["2", 0]}}
    assert prompt["4"]["inputs"]["latent"] == ["3", 0]
    (note,) = [r.getMessage() for r in caplog.records]
    assert note.startswith("node 3 'Old one': type 'OldSampler' is not on this ComfyUI; replaced by 'Sampler'")


def test_without_replacements_the_missing_type_is_an_error_naming_the_node():
    with pytest.raises(WorkflowFormatError, match=r"node 3 'Old one': type 'OldSampler' is not installed"):
        ui_to_api(sampler_chain(), OBJECT_INFO)
    with pytest.raises(WorkflowFormatError, match=r"type 'Gone' is not installed"):  # its successor is missing too
        replace_then_convert(sampler_chain("Gone"), OBJECT_INFO, replacements=REPLACEMENTS)


def test_an_explicit_mapping_moves_named_links_and_widgets_sets_values_remaps_outputs_and_drops_the_rest():
    wf = workflow(
        [node(2, "Latent", [], [("LATENT", "LATENT", [12, 14])], [96, 5]),
         node(3, "OldResize", [("pixels", "LATENT", 12), ("mask", "LATENT", 14)],
              [("mask", "MASK", []), ("LATENT", "LATENT", [13])], [768, "x", "unnamed"]),
         node(4, "Save", [("latent", "LATENT", 13)], [], ["out"])],
        [[12, 2, 0, 3, 0, "LATENT"], [14, 2, 0, 3, 1, "LATENT"], [13, 3, 1, 4, 0, "LATENT"]])
    replaced, notes = apply_node_replacements(wf, OBJECT_INFO, REPLACEMENTS)
    assert wf["nodes"][1]["type"] == "OldResize"  # the caller's workflow is not changed
    prompt = ui_to_api(replaced, OBJECT_INFO)
    assert prompt["3"]["inputs"] == {"image": ["2", 0], "method": "lanczos", "size": 768}
    assert prompt["4"]["inputs"]["latent"] == ["3", 0]  # old output 1 is new output 0
    (note,) = notes
    assert "dropped (the replacement maps no new input for them): the link into 'mask'" in note
    assert "saved widget values the replacement does not map (the new widgets keep their defaults): extra, value 2" in note


def test_dotted_inputs_are_mapped_as_the_server_does_with_a_warning():
    wf = workflow(
        [node(2, "Latent", [], [("LATENT", "LATENT", [12])], [96, 5]),
         node(3, "OldBatch", [("a", "LATENT", 12)], [("LATENT", "LATENT", [13])], [2.5]),
         node(4, "Save", [("latent", "LATENT", 13)], [], ["out"])],
        [[12, 2, 0, 3, 0, "LATENT"], [13, 3, 0, 4, 0, "LATENT"]])
    replaced, (note,) = apply_node_replacements(wf, OBJECT_INFO, REPLACEMENTS)
    prompt = ui_to_api(replaced, OBJECT_INFO)
    assert prompt["3"]["inputs"] == {"mode": "by", "mode.factor": 2.5, "images.image0": ["2", 0]}
    assert "mapped images.image0, mode.factor as the server does (the frontend's Replace skips dotted inputs)" in note


def test_a_node_inside_a_subgraph_is_replaced_and_named_by_its_subgraph():
    sg = "11111111-2222-4333-8444-000000000001"
    inner = {"id": sg, "name": "Group", "inputs": [{"name": "latent", "type": "LATENT", "linkIds": [21]}],
             "outputs": [{"name": "LATENT", "type": "LATENT", "linkIds": [23]}],
             "nodes": [node(1, "Loader", [], [("MODEL", "MODEL", [22])], ["a.safetensors"]),
                       node(2, "OldSampler", [("model", "MODEL", 22), ("latent", "LATENT", 21)],
                            [("LATENT", "LATENT", [23])], [3, "fixed", 4])],
             "links": [link(21, -10, 0, 2, 1, "LATENT"), link(22, 1, 0, 2, 0, "MODEL"), link(23, 2, 0, -20, 0, "LATENT")]}
    wf = workflow([node(5, "Latent", [], [("LATENT", "LATENT", [11])], [64, 9]),
                   node(6, sg, [("latent", "LATENT", 11)], [("LATENT", "LATENT", [12])], []),
                   node(7, "Save", [("latent", "LATENT", 12)], [], ["out"])],
                  [[11, 5, 0, 6, 0, "LATENT"], [12, 6, 0, 7, 0, "LATENT"]], [inner])
    replaced, (note,) = apply_node_replacements(wf, OBJECT_INFO, REPLACEMENTS)
    prompt = ui_to_api(replaced, OBJECT_INFO)
    assert prompt["6:2"] == {"class_type": "Sampler", "_meta": {"title": "Sampler"},
                             "inputs": {"seed": 3, "steps": 4, "model": ["6:1", 0], "latent": ["5", 0]}}
    assert prompt["7"]["inputs"]["latent"] == ["6:2", 0]
    assert note.startswith("node 2 (in subgraph 'Group'): type 'OldSampler'")


def test_types_this_comfyui_has_are_never_replaced():
    wf = sampler_chain("Sampler")
    replaced, notes = apply_node_replacements(wf, OBJECT_INFO, {"Sampler": REPLACEMENTS["OldResize"]})
    assert replaced is wf and notes == []
