"""Properties of the UI <-> API conversion over random workflows (hypothesis), from a small fake
``/object_info`` with a widget of each kind (INT, FLOAT, STRING, BOOLEAN, COMBO in both forms, a
dynamic combo), seeds with a control value, optional inputs and widgets converted to sockets:

- an API prompt laid out as a UI workflow (and saved as JSON) converts back to itself;
- ``--set`` by id, title or class type sets exactly that input, and reading it back gives the value;
- a random nesting of subgraphs flattens to every inner node exactly once, at its ``a:b:c`` id path;
- a chain of reroutes and bypassed nodes collapses to the output it starts from.
"""
from __future__ import annotations

import copy
import json

import pytest
from hypothesis import assume, given, settings, strategies as st

from comfyui_wanmasking.wanmask_runner.workflow.convert import api_to_ui, ui_to_api
from comfyui_wanmasking.wanmask_runner.workflow.errors import WorkflowFormatError
from comfyui_wanmasking.wanmask_runner.workflow.overrides import apply_overrides
from comfyui_wanmasking.wanmask_runner.workflow.widgets import DYNAMIC_COMBO, input_specs, is_widget

PROPERTY = settings(max_examples=100, deadline=None, database=None)


def node_type(required: dict, optional: dict | None = None, outputs=(), display_name=None) -> dict:
    info = {"input": {"required": required, "optional": optional or {}},
            "input_order": {"required": list(required), "optional": list(optional or {})},
            "output": list(outputs), "output_name": [o.lower() for o in outputs]}
    if display_name:
        info["display_name"] = display_name
    return info


OBJECT_INFO = {
    "Source": node_type({"ckpt": (["a.safetensors", "b.safetensors"],)}, outputs=("MODEL", "INT", "FLOAT", "STRING"),
                        display_name="Load Source"),
    "Numbers": node_type({"count": ("INT", {"default": 4, "min": 0, "max": 64}), "ratio": ("FLOAT", {"default": 0.5}),
                          "text": ("STRING", {"default": "", "multiline": True}), "flag": ("BOOLEAN", {"default": True}),
                          "seed": ("INT", {"default": 0})},  # a seed by the legacy rule (its name)
                         {"strength": ("FLOAT", {"default": 1.0})}, outputs=("LATENT", "INT")),
    "Sampler": node_type({"model": ("MODEL", {}), "latent": ("LATENT", {}),
                          "noise": ("INT", {"default": 1, "control_after_generate": True}),
                          "mode": ("COMBO", {"options": ["euler", "dpm", "ddim"]})},
                         {"extra": ("LATENT", {}), "steps": ("INT", {"default": 20, "forceInput": True}),
                          "label": ("STRING", {"default": "x"})}, outputs=("LATENT",)),
    "Resize": node_type({"image": ("LATENT", {}),
                         "resize": (DYNAMIC_COMBO, {"options": [
                             {"key": "scale", "inputs": {"required": {"factor": ("FLOAT", {"default": 2.0})}}},
                             {"key": "fixed", "inputs": {"required": {"width": ("INT", {"default": 8}),
                                                                      "seed": ("INT", {"default": 3})}}}]})},
                        outputs=("LATENT",)),
    "Leaf": node_type({"v": ("INT", {"default": 0})}, outputs=("INT",)),
    "Sink": node_type({"x": ("INT", {"forceInput": True})}),
}
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
TITLES = st.text("abcdefgh", min_size=1, max_size=3)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)


def widget_values(kind: str, opts: dict):
    """What a widget of this kind may hold."""
    if kind == "INT":
        return st.integers(-2 ** 53, 2 ** 53)
    if kind == "FLOAT":
        return FLOATS
    if kind == "BOOLEAN":
        return st.booleans()
    if kind == "STRING":
        return TEXT
    return st.sampled_from([o["key"] if isinstance(o, dict) else o for o in opts["options"]])


@st.composite
def api_prompts(draw, max_nodes: int = 7) -> dict:
    """An API prompt of the fake types, its nodes in dependency order with distinct int ids: every
    widget has a value or (converted to a socket) a link to an earlier output of its type; sockets
    are linked, optional ones sometimes not."""
    ids = draw(st.lists(st.integers(1, 500), min_size=1, max_size=max_nodes, unique=True))
    prompt: dict = {}
    for nid in ids:
        class_type = draw(st.sampled_from(sorted(t for t in OBJECT_INFO if t != "Sink")))
        info = OBJECT_INFO[class_type]
        inputs: dict = {}
        for name, kind, opts in input_specs(info):
            sources = [[src, slot] for src, node in prompt.items()
                       for slot, out in enumerate(OBJECT_INFO[node["class_type"]]["output"]) if out == kind]
            if is_widget(kind, opts):
                if sources and kind != "COMBO" and draw(st.booleans()):  # a widget converted to a socket
                    inputs[name] = draw(st.sampled_from(sources))
                    continue
                inputs[name] = draw(widget_values(kind, opts))
                chosen = next((o for o in opts["options"] if o["key"] == inputs[name]), None) \
                    if kind == DYNAMIC_COMBO else None
                for sub, sub_kind, sub_opts in input_specs({"input": chosen["inputs"]}) if chosen else ():
                    inputs[f"{name}.{sub}"] = draw(widget_values(sub_kind, sub_opts))
            elif sources and (name in info["input"]["required"] or draw(st.booleans())):
                inputs[name] = draw(st.sampled_from(sources))
        prompt[str(nid)] = {"class_type": class_type, "inputs": inputs, "_meta": {"title": draw(TITLES)}}
    return prompt


@PROPERTY
@given(api_prompts())
def test_an_api_prompt_laid_out_as_ui_converts_back_to_itself(prompt):
    saved = json.loads(json.dumps(api_to_ui(prompt, OBJECT_INFO)))  # as a file on disk
    assert ui_to_api(saved, OBJECT_INFO) == prompt


@PROPERTY
@given(api_prompts(), st.data())
def test_set_by_id_title_or_class_type_sets_that_input(prompt, data):
    nid = data.draw(st.sampled_from(sorted(prompt)))
    node = prompt[nid]
    names = sorted({spec[0] for spec in input_specs(OBJECT_INFO[node["class_type"]])} | set(node["inputs"]))
    name = data.draw(st.sampled_from(names))
    value = data.draw(st.one_of(st.integers(), FLOATS, st.booleans(), TEXT, st.lists(st.integers(), max_size=3)))
    titled = [n for n in prompt.values() if n["_meta"]["title"] == node["_meta"]["title"]]
    of_type = [n for n in prompt.values() if n["class_type"] == node["class_type"]]
    refs = [nid] + ([node["_meta"]["title"]] if len(titled) == 1 else []) + \
        ([node["class_type"]] if len(of_type) == 1 and not any(n["_meta"]["title"] == node["class_type"]
                                                               for n in prompt.values()) else [])
    ref = data.draw(st.sampled_from(refs))
    result = apply_overrides(copy.deepcopy(prompt), [f"{ref}.{name}={json.dumps(value)}"])
    assert result[nid]["inputs"][name] == value
    expected = copy.deepcopy(prompt)
    expected[nid]["inputs"][name] = value
    assert result == expected  # nothing else changed


@PROPERTY
@given(api_prompts(), st.data())
def test_set_by_a_class_type_of_several_nodes_is_refused(prompt, data):
    counts = {}
    for node in prompt.values():
        counts[node["class_type"]] = counts.get(node["class_type"], 0) + 1
    shared = sorted(t for t, n in counts.items() if n > 1)
    titles = {n["_meta"]["title"] for n in prompt.values()}
    shared = [t for t in shared if t not in titles]
    assume(shared)
    with pytest.raises(WorkflowFormatError, match="use a node id instead"):
        apply_overrides(copy.deepcopy(prompt), [f"{data.draw(st.sampled_from(shared))}.anything=1"])


def subgraph_id(index: int) -> str:
    return f"{index:08d}-0000-4000-8000-000000000000"


@st.composite
def nested_subgraphs(draw):
    """(UI workflow, {expected id path: leaf value}): a root graph and up to four subgraph
    definitions, each holding Leaf nodes and instances of later definitions (so none contains
    itself), a definition instanced any number of times. Node ids are distinct across all graphs
    (the frontend renumbers colliding ones), each leaf's value is its own."""
    count = draw(st.integers(0, 4))
    pool = iter(draw(st.lists(st.integers(1, 10_000), min_size=60, max_size=60, unique=True)))
    graphs = []  # [(leaf ids, [(instance id, definition index)])], definitions then the root
    for index in [*range(count), count]:
        later = list(range(index + 1, count)) if index < count else list(range(count))
        leaves = [next(pool) for _ in range(draw(st.integers(0 if later else 1, 3)))]
        instances = [(next(pool), draw(st.sampled_from(later))) for _ in range(draw(st.integers(0, 3 if later else 0)))]
        graphs.append((leaves, instances))

    def nodes_of(leaves, instances):
        nodes = [{"id": i, "type": "Leaf", "mode": 0, "inputs": [], "outputs": [{"name": "int", "type": "INT", "links": []}],
                  "widgets_values": [i]} for i in leaves]
        nodes += [{"id": i, "type": subgraph_id(d), "mode": 0, "inputs": [], "outputs": [], "widgets_values": []}
                  for i, d in instances]
        return draw(st.permutations(nodes))

    definitions = [{"id": subgraph_id(d), "name": f"graph {d}", "nodes": nodes_of(*graphs[d]), "links": [],
                    "inputs": [], "outputs": []} for d in range(count)]
    ui = {"nodes": nodes_of(*graphs[count]), "links": [], "definitions": {"subgraphs": definitions},
          "last_node_id": 10_000}

    def expand(index, path):
        leaves, instances = graphs[index]
        found = {":".join(path + (str(i),)): i for i in leaves}
        for i, d in instances:
            found.update(expand(d, path + (str(i),)))
        return found

    return ui, expand(count, ())


@PROPERTY
@given(nested_subgraphs())
def test_flattening_nested_subgraphs_keeps_every_inner_node_once_at_its_id_path(case):
    ui, expected = case
    prompt = ui_to_api(ui, OBJECT_INFO)
    assert {nid: node["inputs"]["v"] for nid, node in prompt.items()} == expected
    assert all(node["class_type"] == "Leaf" for node in prompt.values())


@PROPERTY
@given(st.lists(st.sampled_from(["Reroute", "bypassed"]), max_size=8), st.sampled_from([0, 1]),
       st.lists(st.integers(1, 1000), min_size=10, max_size=10, unique=True))
def test_a_chain_of_reroutes_and_bypassed_nodes_collapses_to_its_source(chain, start, ids):
    """Source output ``start`` (LATENT or INT) -> the chain -> Sink.x: Sink reads that output itself."""
    kind = ["LATENT", "INT"][start]
    nodes = [{"id": ids[0], "type": "Numbers", "mode": 0, "inputs": [], "widgets_values": [1, 0.5, "", True, 0, "fixed"],
              "outputs": [{"name": "latent", "type": "LATENT", "links": []}, {"name": "int", "type": "INT", "links": []}]}]
    links: list = []
    origin, origin_slot = ids[0], start
    for k, step in enumerate(chain, 1):
        links.append([len(links) + 1, origin, origin_slot, ids[k], 0, kind])
        if step == "Reroute":
            nodes.append({"id": ids[k], "type": "Reroute", "mode": 0, "inputs": [{"name": "", "type": "*", "link": len(links)}],
                          "outputs": [{"name": "", "type": kind, "links": []}]})
        else:  # a bypassed node: its input of the chain's type passes through
            nodes.append({"id": ids[k], "type": "Leaf", "mode": 4, "widgets_values": [7],
                          "inputs": [{"name": "v", "type": kind, "link": len(links), "widget": {"name": "v"}}],
                          "outputs": [{"name": "int", "type": kind, "links": []}]})
        origin, origin_slot = ids[k], 0
    links.append([len(links) + 1, origin, origin_slot, ids[-1], 0, kind])
    nodes.append({"id": ids[-1], "type": "Sink", "mode": 0, "inputs": [{"name": "x", "type": kind, "link": len(links)}],
                  "outputs": [], "widgets_values": []})
    prompt = ui_to_api({"nodes": nodes, "links": links}, OBJECT_INFO)
    assert sorted(prompt) == sorted([str(ids[0]), str(ids[-1])])
    assert prompt[str(ids[-1])]["inputs"]["x"] == [str(ids[0]), start]


def test_a_file_combo_with_an_upload_button_round_trips():
    """Found by the round trip above: api_to_ui wrote no value for the upload button, which ui_to_api reads
    as one, so the widget after it was lost. The frontend saves "image" there (LoadImage, LoadVideo)."""
    info = {"Img": node_type({"image": (["a.png", "b.png"], {"image_upload": True}), "n": ("INT", {"default": 1})},
                             outputs=("IMAGE",))}
    prompt = {"1": {"class_type": "Img", "inputs": {"image": "b.png", "n": 5}, "_meta": {"title": "x"}}}
    ui = api_to_ui(prompt, info)
    assert ui["nodes"][0]["widgets_values"] == ["b.png", "image", 5]
    assert ui_to_api(ui, info) == prompt
