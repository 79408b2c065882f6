"""UI <-> API workflow conversion and --set overrides (no ComfyUI needed: a small object_info)."""
import pytest

from comfyui_wanmasking.wanmask_runner.workflow.convert import api_to_ui, is_ui_format, ui_to_api
from comfyui_wanmasking.wanmask_runner.workflow.errors import WorkflowFormatError
from comfyui_wanmasking.wanmask_runner.workflow.overrides import apply_overrides

OBJECT_INFO = {
    "Loader": {"input": {"required": {"name": (["a.safetensors", "b.safetensors"], {})}},
               "input_order": {"required": ["name"]}, "output": ["MODEL"], "output_name": ["MODEL"]},
    "Latent": {"input": {"required": {"width": ("INT", {"default": 64}), "length": ("INT", {"default": 9})}},
               "input_order": {"required": ["width", "length"]}, "output": ["LATENT"], "output_name": ["LATENT"]},
    "Sampler": {"input": {"required": {"model": ("MODEL", {}), "seed": ("INT", {"default": 0, "control_after_generate": True}),
                                       "steps": ("INT", {"default": 20}), "latent": ("LATENT", {})},
                          "optional": {"strength": ("FLOAT", {"default": 1.0})}},
                "input_order": {"required": ["model", "seed", "steps", "latent"], "optional": ["strength"]},
                "output": ["LATENT"], "output_name": ["LATENT"]},
    "Save": {"input": {"required": {"latent": ("LATENT", {}), "prefix": ("STRING", {"default": "x"})}},
             "input_order": {"required": ["latent", "prefix"]}, "output": [], "output_name": []},
}

API = {
    "1": {"class_type": "Loader", "inputs": {"name": "b.safetensors"}, "_meta": {"title": "Load"}},
    "2": {"class_type": "Latent", "inputs": {"width": 32, "length": 17}, "_meta": {"title": "Empty"}},
    "3": {"class_type": "Sampler", "inputs": {"model": ["1", 0], "seed": 5, "steps": 4, "latent": ["2", 0],
                                              "strength": 0.5}, "_meta": {"title": "Sample"}},
    "4": {"class_type": "Save", "inputs": {"latent": ["3", 0], "prefix": "out"}, "_meta": {"title": "Save"}},
}


def test_api_to_ui_to_api_round_trips():
    ui = api_to_ui(API, OBJECT_INFO)
    assert is_ui_format(ui) and not is_ui_format(API)
    assert ui_to_api(ui, OBJECT_INFO) == API


def test_ui_layout_has_links_and_seed_control_value():
    ui = api_to_ui(API, OBJECT_INFO)
    sampler = next(n for n in ui["nodes"] if n["type"] == "Sampler")
    assert sampler["widgets_values"] == [5, "fixed", 4, 0.5]  # seed, its control, steps, strength
    assert [i["name"] for i in sampler["inputs"]] == ["model", "latent"]
    assert len(ui["links"]) == 3 and ui["last_link_id"] == 3
    for link_id, src, slot, dst, dst_slot, kind in ui["links"]:
        dst_node = next(n for n in ui["nodes"] if n["id"] == dst)
        assert dst_node["inputs"][dst_slot]["link"] == link_id
        src_node = next(n for n in ui["nodes"] if n["id"] == src)
        assert link_id in src_node["outputs"][slot]["links"] and src_node["outputs"][slot]["type"] == kind


def test_bypassed_nodes_pass_through_and_muted_nodes_drop():
    ui = api_to_ui(API, OBJECT_INFO)
    sampler = next(n for n in ui["nodes"] if n["type"] == "Sampler")
    sampler["mode"] = 4  # bypass: Save then reads the Latent node directly
    api = ui_to_api(ui, OBJECT_INFO)
    assert "3" not in api and api["4"]["inputs"]["latent"] == ["2", 0]
    sampler["mode"] = 2  # muted
    assert "3" not in ui_to_api(ui, OBJECT_INFO)


def test_reroutes_are_followed():
    ui = api_to_ui(API, OBJECT_INFO)
    # route link 1 (Loader -> Sampler.model) through a Reroute node
    link = next(l for l in ui["links"] if l[5] == "MODEL")
    ui["nodes"].append({"id": 99, "type": "Reroute", "inputs": [{"name": "", "type": "*", "link": 100}],
                        "outputs": [{"name": "", "type": "MODEL", "links": [link[0]]}], "mode": 0})
    ui["links"].append([100, link[1], link[2], 99, 0, "MODEL"])
    link[1], link[2] = 99, 0
    assert ui_to_api(ui, OBJECT_INFO)["3"]["inputs"]["model"] == ["1", 0]


def test_unknown_node_type_names_the_node():
    ui = api_to_ui(API, OBJECT_INFO)
    info = {k: v for k, v in OBJECT_INFO.items() if k != "Save"}
    with pytest.raises(WorkflowFormatError, match=r"node 4: type 'Save' is not installed"):
        ui_to_api(ui, info)


def test_overrides_by_id_title_and_class():
    import copy
    p = apply_overrides(copy.deepcopy(API), ["3.seed=9", "Empty.width=48", "Save.prefix=run one", "Loader.name=a.safetensors"])
    assert p["3"]["inputs"]["seed"] == 9 and p["2"]["inputs"]["width"] == 48
    assert p["4"]["inputs"]["prefix"] == "run one" and p["1"]["inputs"]["name"] == "a.safetensors"


@pytest.mark.parametrize("bad,match", [("steps=4", "expected NODE.INPUT=VALUE"), ("Nope.steps=1", "no node match"),
                                       ("3.steps", "expected NODE.INPUT=VALUE")])
def test_bad_overrides_are_explained(bad, match):
    with pytest.raises(WorkflowFormatError, match=match):
        apply_overrides(dict(API), [bad])


def test_an_int_named_seed_gets_the_frontends_control_value_even_without_the_flag():
    info = {"Train": {"input": {"required": {"seed": ("INT", {"default": 0}), "rank": ("INT", {"default": 8})}},
                      "input_order": {"required": ["seed", "rank"]}, "output": [], "output_name": []}}
    api = {"1": {"class_type": "Train", "inputs": {"seed": 3, "rank": 16}, "_meta": {"title": "Train"}}}
    ui = api_to_ui(api, info)
    assert ui["nodes"][0]["widgets_values"] == [3, "fixed", 16]
    assert ui_to_api(ui, info) == api
