"""UI -> API conversion of what today's frontend saves: subgraphs (nested, promoted widgets, links
across the boundary, the frontend's ``outer:inner`` ids and its renumbering), bypassed and muted
nodes inside them, reroutes, PrimitiveNodes, the frontend's own widgets; and --set on the result.
Small hand-made workflows; the real frontend is compared in tests/integration/test_frontend_oracle.py."""
import copy

import pytest

from comfyui_wanmasking.tests.helpers.ui_graphs import link, node
from comfyui_wanmasking.wanmask_runner.workflow.convert import api_to_ui, ui_to_api
from comfyui_wanmasking.wanmask_runner.workflow.errors import WorkflowFormatError
from comfyui_wanmasking.wanmask_runner.workflow.overrides import apply_overrides
from comfyui_wanmasking.wanmask_runner.workflow.widgets import input_specs, read_widgets

OBJECT_INFO = {
    "Loader": {"input": {"required": {"name": (["a.safetensors", "b.safetensors"], {})}},
               "input_order": {"required": ["name"]}, "output": ["MODEL"], "output_name": ["MODEL"]},
    "Latent": {"input": {"required": {"width": ("INT", {"default": 64}), "length": ("INT", {"default": 9})}},
               "input_order": {"required": ["width", "length"]}, "output": ["LATENT"], "output_name": ["LATENT"]},
    "Sampler": {"input": {"required": {"model": ("MODEL", {}), "seed": ("INT", {"default": 0, "control_after_generate": True}),
                                       "steps": ("INT", {"default": 20}), "latent": ("LATENT", {})}},
                "input_order": {"required": ["model", "seed", "steps", "latent"]},
                "output": ["LATENT"], "output_name": ["LATENT"]},
    "Save": {"input": {"required": {"latent": ("LATENT", {}), "prefix": ("STRING", {"default": "x"})}},
             "input_order": {"required": ["latent", "prefix"]}, "output": [], "output_name": []},
}
SG, INNER = "11111111-2222-4333-8444-555555555555", "99999999-2222-4333-8444-555555555555"


def sampler_subgraph(sampler_mode=0, steps_promoted=True):
    """model, steps (a widget inside), latent in -> Sampler 5 -> LATENT out."""
    links = [link(1, -10, 0, 5, 0, "MODEL"), link(3, -10, 2, 5, 2, "LATENT"), link(4, 5, 0, -20, 0, "LATENT")]
    if steps_promoted:  # target slots count the node's saved inputs: model, steps, latent
        links.append(link(2, -10, 1, 5, 1, "INT"))
    return {
        "id": SG, "name": "Sample group",
        "inputs": [{"name": "model", "type": "MODEL", "linkIds": [1]},
                   {"name": "steps", "type": "INT", "linkIds": [2] if steps_promoted else []},
                   {"name": "latent", "type": "LATENT", "linkIds": [3]}],
        "outputs": [{"name": "LATENT", "type": "LATENT", "linkIds": [4]}],
        "nodes": [node(5, "Sampler", [("model", "MODEL", 1), ("steps", "INT", 2 if steps_promoted else None, "steps"),
                                      ("latent", "LATENT", 3)], [("LATENT", "LATENT", [4])], [7, "fixed", 30],
                       mode=sampler_mode, title="Inner sampler")],
        "links": links,
    }


def workflow(definition=None, instance_widgets=(), instance_mode=0, steps_link=None):
    """Loader 1 and Latent 2 -> subgraph instance 10 -> Save 4 (root links in the list form)."""
    definition = definition or sampler_subgraph()
    return {
        "last_node_id": 10, "last_link_id": 13, "version": 0.4,
        "nodes": [node(1, "Loader", [], [("MODEL", "MODEL", [11])], ["b.safetensors"]),
                  node(2, "Latent", [], [("LATENT", "LATENT", [12])], [32, 17]),
                  node(10, SG, [("model", "MODEL", 11), ("steps", "INT", steps_link, "steps"), ("latent", "LATENT", 12)],
                       [("LATENT", "LATENT", [13])], instance_widgets, mode=instance_mode, title="My group"),
                  node(4, "Save", [("latent", "LATENT", 13)], [], ["out"])],
        "links": [[11, 1, 0, 10, 0, "MODEL"], [12, 2, 0, 10, 2, "LATENT"], [13, 10, 0, 4, 0, "LATENT"]],
        "definitions": {"subgraphs": [definition]},
    }


def test_subgraph_nodes_get_the_frontends_ids_and_links_cross_the_boundary():
    api = ui_to_api(workflow(), OBJECT_INFO)
    assert sorted(api) == ["1", "10:5", "2", "4"]
    assert api["10:5"] == {"class_type": "Sampler", "_meta": {"title": "Inner sampler"},
                           "inputs": {"model": ["1", 0], "seed": 7, "steps": 30, "latent": ["2", 0]}}
    assert api["4"]["inputs"]["latent"] == ["10:5", 0]


def test_promoted_widgets_take_the_instances_value_else_the_inner_one():
    assert ui_to_api(workflow(instance_widgets=[12]), OBJECT_INFO)["10:5"]["inputs"]["steps"] == 12
    assert ui_to_api(workflow(instance_widgets=[]), OBJECT_INFO)["10:5"]["inputs"]["steps"] == 30
    # an instance input that is linked outside wins over both
    wf = workflow(instance_widgets=[12], steps_link=14)
    wf["nodes"].append(node(3, "Latent", [], [("LATENT", "LATENT", [])], [5, 5]))
    wf["nodes"].append(node(6, "PrimitiveNode", [], [("INT", "INT", [14])], [44, "fixed"]))
    wf["links"].append([14, 6, 0, 10, 1, "INT"])
    # a PrimitiveNode sets the instance's widget; the inner input then resolves to nothing across
    # the link (a primitive is no node), so the inner widget keeps its own value, as in the frontend
    assert ui_to_api(wf, OBJECT_INFO)["10:5"]["inputs"]["steps"] == 30
    # frontend 1.27 let the primitive's value reach the widget inside
    assert ui_to_api(wf, OBJECT_INFO, frontend_version="1.27.10")["10:5"]["inputs"]["steps"] == 44


def test_nested_subgraphs_get_nested_ids():
    inner = sampler_subgraph()
    inner["id"] = INNER
    outer = {
        "id": SG, "name": "Outer",
        "inputs": [{"name": "model", "type": "MODEL", "linkIds": [21]}, {"name": "steps", "type": "INT", "linkIds": [22]},
                   {"name": "latent", "type": "LATENT", "linkIds": [23]}],
        "outputs": [{"name": "LATENT", "type": "LATENT", "linkIds": [24]}],
        "nodes": [node(7, INNER, [("model", "MODEL", 21), ("steps", "INT", 22, "steps"), ("latent", "LATENT", 23)],
                       [("LATENT", "LATENT", [24])], [], title="Inner group")],
        "links": [link(21, -10, 0, 7, 0, "MODEL"), link(22, -10, 1, 7, 1, "INT"), link(23, -10, 2, 7, 2, "LATENT"),
                  link(24, 7, 0, -20, 0, "LATENT")],
    }
    wf = workflow(outer, instance_widgets=[9])
    wf["definitions"]["subgraphs"].append(inner)
    api = ui_to_api(wf, OBJECT_INFO)
    assert sorted(api) == ["1", "10:7:5", "2", "4"]
    assert api["10:7:5"]["inputs"] == {"model": ["1", 0], "seed": 7, "steps": 9, "latent": ["2", 0]}
    assert api["4"]["inputs"]["latent"] == ["10:7:5", 0]
    # the nested instance's own promoted widget, its input unlinked inside the outer subgraph
    outer["nodes"][0]["inputs"][1]["link"] = None
    outer["nodes"][0]["widgets_values"] = [15]
    outer["links"] = [l for l in outer["links"] if l["id"] != 22]
    assert ui_to_api(wf, OBJECT_INFO)["10:7:5"]["inputs"]["steps"] == 15
    # older frontends configure definitions in file order: the outer one (listed first) holds an
    # instance of one not configured yet, whose saved widget value is then lost
    assert ui_to_api(wf, OBJECT_INFO, frontend_version="1.27.10")["10:7:5"]["inputs"]["steps"] == 30
    wf["definitions"]["subgraphs"].reverse()
    assert ui_to_api(wf, OBJECT_INFO, frontend_version="1.27.10")["10:7:5"]["inputs"]["steps"] == 15


def test_bypassed_and_muted_nodes_inside_a_subgraph():
    bypassed = ui_to_api(workflow(sampler_subgraph(sampler_mode=4)), OBJECT_INFO)
    assert "10:5" not in bypassed and bypassed["4"]["inputs"]["latent"] == ["2", 0]  # LATENT passes through
    muted = ui_to_api(workflow(sampler_subgraph(sampler_mode=2)), OBJECT_INFO)
    assert "10:5" not in muted and "latent" not in muted["4"]["inputs"]  # inputs from muted nodes go


def test_a_bypassed_root_instance_sends_no_nodes_on_todays_frontend_and_its_nodes_before():
    today = ui_to_api(workflow(instance_mode=4), OBJECT_INFO)
    assert sorted(today) == ["1", "2", "4"] and today["4"]["inputs"]["latent"] == ["2", 0]
    old = ui_to_api(workflow(instance_mode=4), OBJECT_INFO, frontend_version="1.27.10")
    assert sorted(old) == ["1", "10:5", "2", "4"] and old["4"]["inputs"]["latent"] == ["2", 0]
    muted = ui_to_api(workflow(instance_mode=2), OBJECT_INFO)
    assert sorted(muted) == ["1", "2", "4"] and "latent" not in muted["4"]["inputs"]


def test_reroutes_legacy_nodes_and_native_link_reroutes_are_followed():
    definition = sampler_subgraph()
    # route the MODEL link inside the subgraph through a legacy Reroute node 8
    definition["nodes"].append(node(8, "Reroute", [("", "*", 1)], [("", "MODEL", [30])]))
    definition["links"] = [l for l in definition["links"] if l["id"] != 1] + [
        link(1, -10, 0, 8, 0, "MODEL"), {**link(30, 8, 0, 5, 0, "MODEL"), "parentId": 2}]
    definition["nodes"][0]["inputs"][0]["link"] = 30
    definition["reroutes"] = [{"id": 2, "pos": [0, 0], "linkIds": [30]}]
    wf = workflow(definition)
    wf["extra"] = {"reroutes": [{"id": 1, "pos": [5, 5], "linkIds": [13]}], "linkExtensions": [{"id": 13, "parentId": 1}]}
    api = ui_to_api(wf, OBJECT_INFO)
    assert api["10:5"]["inputs"]["model"] == ["1", 0] and api["4"]["inputs"]["latent"] == ["10:5", 0]
    assert not any(n["class_type"] == "Reroute" for n in api.values())


def test_a_primitive_node_gives_its_value_to_every_widget_it_feeds():
    wf = workflow()
    wf["nodes"].append(node(6, "PrimitiveNode", [], [("INT", "INT", [15, 16])], [48, "fixed"]))
    wf["nodes"][1]["inputs"] = [{"name": "width", "type": "INT", "link": 15, "widget": {"name": "width"}},
                                {"name": "length", "type": "INT", "link": 16, "widget": {"name": "length"}}]
    wf["links"] += [[15, 6, 0, 2, 0, "INT"], [16, 6, 0, 2, 1, "INT"]]
    api = ui_to_api(wf, OBJECT_INFO)
    assert api["2"]["inputs"] == {"width": 48, "length": 48} and "6" not in api


def test_colliding_ids_inside_subgraphs_are_renumbered_like_todays_frontend():
    definition = sampler_subgraph()
    definition["nodes"][0]["id"] = 4  # the root's Save is node 4 too
    for l in definition["links"]:
        l["origin_id"] = 4 if l["origin_id"] == 5 else l["origin_id"]
        l["target_id"] = 4 if l["target_id"] == 5 else l["target_id"]
    api = ui_to_api(workflow(definition), OBJECT_INFO)
    assert sorted(api) == ["1", "10:11", "2", "4"]  # last_node_id 10 -> 11
    assert api["4"]["inputs"]["latent"] == ["10:11", 0] and api["10:11"]["class_type"] == "Sampler"
    old = ui_to_api(workflow(definition), OBJECT_INFO, frontend_version="1.27.10")
    assert sorted(old) == ["1", "10:4", "2", "4"]


def test_errors_name_the_node_as_the_user_sees_it():
    definition = sampler_subgraph()
    definition["nodes"][0]["type"] = "NotInstalled"
    with pytest.raises(WorkflowFormatError, match=r"node 10:5 'Inner sampler' \(in subgraph 'Sample group', "
                                                  r"instance node 10 'My group'\): type 'NotInstalled' is not installed"):
        ui_to_api(workflow(definition), OBJECT_INFO)
    wf = workflow()
    wf["definitions"]["subgraphs"] = []
    with pytest.raises(WorkflowFormatError, match=r"node 10 'My group': type '11111111-.*' is a subgraph whose "
                                                  r"definition is missing"):
        ui_to_api(wf, OBJECT_INFO)
    definition = sampler_subgraph()
    definition["links"] = [l for l in definition["links"] if l["id"] != 3]
    with pytest.raises(WorkflowFormatError, match=r"node 10:5 'Inner sampler' .*: link 3 is missing"):
        ui_to_api(workflow(definition), OBJECT_INFO)
    grouped = workflow()
    grouped["nodes"][3]["type"] = "workflow>Saver"
    grouped["extra"] = {"groupNodes": {"Saver": {"nodes": [], "links": [], "external": []}}}
    with pytest.raises(WorkflowFormatError, match=r"node 4: type 'workflow>Saver' is a group node .* convert "
                                                  r"the group node to a subgraph"):
        ui_to_api(grouped, OBJECT_INFO)
    looped = sampler_subgraph()
    looped["nodes"][0]["type"] = SG  # the subgraph contains an instance of itself
    with pytest.raises(WorkflowFormatError, match="contains itself"):
        ui_to_api(workflow(looped), OBJECT_INFO)


def test_set_addresses_nodes_inside_subgraphs_by_id_path_or_title():
    api = ui_to_api(workflow(), OBJECT_INFO)
    p = apply_overrides(copy.deepcopy(api), ["10:5.seed=3", "Inner sampler.steps=5"])
    assert p["10:5"]["inputs"]["seed"] == 3 and p["10:5"]["inputs"]["steps"] == 5
    with pytest.raises(WorkflowFormatError, match=r"10 is a subgraph, set an input of a node inside it: "
                                                  r"10:5 \(Inner sampler\)"):
        apply_overrides(copy.deepcopy(api), ["10.steps=4"])
    api["4"]["inputs"]["format.codec"] = "auto"  # an input whose name has a dot (V3 dynamic combo)
    assert apply_overrides(api, ["Save.format.codec=h264"])["4"]["inputs"]["format.codec"] == "h264"


def test_a_dynamic_combos_seed_has_no_control_value_and_hidden_widgets_are_saved():
    info = {"Gen": {"input": {"required": {
        "mode": ("COMFY_DYNAMICCOMBO_V3", {"options": [{"key": "on", "inputs": {"required": {
            "seed": ("INT", {"default": 0}), "top_k": ("INT", {"default": 1})}}}]}),
        "width": ("INT", {"default": 512, "hidden": True, "socketless": True}),
        "color": ("COLOR", {"default": "#000000", "socketless": True})}},
        "input_order": {"required": ["mode", "width", "color"]}, "output": [], "output_name": []}}
    inputs = {}
    read_widgets(input_specs(info["Gen"]), ["on", 5, 64, 1024, "#ffffff"], 0, inputs)
    assert inputs == {"mode": "on", "mode.seed": 5, "mode.top_k": 64, "width": 1024, "color": "#ffffff"}
    api = {"1": {"class_type": "Gen", "inputs": inputs, "_meta": {"title": "Gen"}}}
    assert ui_to_api(api_to_ui(api, info), info) == api  # the writer saves hidden widgets too


def test_frontend_widgets_and_list_values_are_sent_as_the_frontend_sends_them():
    info = {"Compare": {"input": {"required": {"compare_view": ("IMAGECOMPARE", {"socketless": True}),
                                               "points": ("CURVE", {"default": {"points": []}, "socketless": True}),
                                               "palette": ("COLORS", {"default": []}),
                                               "box": ("BOUNDING_BOX", {"forceInput": True})}},
                        "input_order": {"required": ["compare_view", "points", "palette", "box"]},
                        "output": [], "output_name": []}}
    ui = {"nodes": [node(1, "Compare", [], [], [{"before": "a.png"}, {"points": [[0, 0]]}, ["#fff", "#000"]])],
          "links": []}
    assert ui_to_api(ui, info)["1"]["inputs"] == {
        "compare_view": {"__value__": ["", ""]}, "points": {"points": [[0, 0]]}, "palette": {"__value__": ["#fff", "#000"]}}


def test_custom_combo_sends_its_index_and_options_as_the_frontend_does():
    info = {"CustomCombo": {"input": {"required": {"choice": ("COMBO", {"options": []})}},
                            "input_order": {"required": ["choice"]}, "output": ["STRING", "INT"],
                            "output_name": ["STRING", "INDEX"]}}
    ui = {"nodes": [node(1, "CustomCombo", [], [], ["Default", 1, "Quality", "Default", ""])], "links": []}
    assert ui_to_api(ui, info)["1"]["inputs"] == {"choice": "Default", "index": 1, "option1": "Quality",
                                                  "option2": "Default", "option3": ""}


LOAD3D_INFO = {
    "Load3D": {"input": {"required": {"model_file": (["toy.glb", "none"], {}), "image": ("LOAD_3D", {}),
                                      "width": ("INT", {"default": 1024}), "height": ("INT", {"default": 1024})}},
               "input_order": {"required": ["model_file", "image", "width", "height"]},
               "output": ["IMAGE"], "output_name": ["image"]},
}


def test_load3d_buttons_and_viewer_take_their_places_and_the_saved_camera_is_sent(caplog):
    """Load3D saves its three buttons after the model file, then the viewer's placeholder, then width
    and height; the frontend sends the buttons as inputs and the viewer's state (the saved camera,
    three.js vectors flagged) in place of the placeholder."""
    camera = {"position": {"x": 1.5, "y": 2, "z": 3}, "target": {"x": 0, "y": 0, "z": 0}, "zoom": 1}
    wf = {"nodes": [{**node(1, "Load3D", [], [("image", "IMAGE", [])],
                            ["toy.glb", "upload3dmodel", "uploadExtraResources", "clear", "", 512, 256]),
                     "properties": {"Camera Config": {"cameraType": "perspective", "state": camera}}}],
          "links": []}
    with caplog.at_level("WARNING", logger="wanmask_runner"):
        inputs = ui_to_api(wf, LOAD3D_INFO)["1"]["inputs"]
    assert (inputs["model_file"], inputs["width"], inputs["height"]) == ("toy.glb", 512, 256)
    assert inputs["upload 3d model"] == "upload3dmodel" and inputs["clear"] == "clear"
    assert inputs["image"]["camera_info"]["position"] == {"isVector3": True, "x": 1.5, "y": 2, "z": 3}
    assert inputs["image"]["image"] == "" and inputs["image"]["model_3d_info"] == []
    assert any("scene captures" in r.getMessage() for r in caplog.records)
    wf["nodes"][0]["properties"] = {}
    assert ui_to_api(wf, LOAD3D_INFO)["1"]["inputs"]["image"]["camera_info"] is None  # never moved: none saved
