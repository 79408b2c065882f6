"""UI-format (nodes + links, as the frontend saves) <-> API-format (what POST /prompt takes) workflows.

The conversion needs ``/object_info``: it tells which inputs are widgets (their values are in a
UI node's ``widgets_values``, in declaration order) and which are sockets (links).
"""
from __future__ import annotations

from typing import Any

from .errors import WorkflowFormatError
from .links import is_link
from .subgraphs import Conversion, Scope
from .widgets import input_specs, is_widget, write_widgets

NODE_WIDTH, NODE_ROW = 360, 26  # layout of generated UI workflows, in canvas pixels


def is_ui_format(workflow: dict) -> bool:
    """Whether a workflow is UI-format (nodes and links, as the frontend saves), not an API prompt."""
    return isinstance(workflow.get("nodes"), list) and "links" in workflow


def ui_to_api(ui: dict, object_info: dict, frontend_version=None) -> dict:
    """Convert a UI-format workflow to an API-format prompt, as the frontend's graphToPrompt does.

    Subgraph instances (a node whose type is the id of one of ``definitions.subgraphs``) are
    expanded, nested ones too; their nodes get the frontend's ids ``instance:inner``. Muted nodes
    are dropped, and so are inputs linked to them; bypassed nodes pass an input of a matching
    type through; reroutes are followed; PrimitiveNodes give their value to every widget they
    are linked to. ``frontend_version`` (e.g. "1.27.10") picks the behaviours that changed between
    frontends (renumbering of colliding node ids inside subgraphs); by default today's.
    Node replacements the server registers are applied before, by
    :func:`wanmask_runner.node_replacements.replace_then_convert`.
    """
    conv = Conversion(ui, object_info, frontend_version)
    prompt: dict[str, Any] = {}
    Scope(conv, ui).emit(prompt)
    for node in prompt.values():  # inputs linked to dropped (muted) nodes go, as in the frontend
        for name in [n for n, v in node["inputs"].items() if is_link(v) and v[0] not in prompt]:
            del node["inputs"][name]
    return prompt


def api_to_ui(prompt: dict, object_info: dict) -> dict:
    """Lay out an API-format prompt as a UI-format workflow (left to right by dependency depth)."""
    ids = {nid: int(nid) for nid in prompt}
    depth: dict[str, int] = {}

    def node_depth(nid, stack=()):
        if nid in depth:
            return depth[nid]
        if nid in stack:
            raise WorkflowFormatError(f"node {nid} is part of a cycle")
        ups = [v[0] for v in prompt[nid]["inputs"].values() if isinstance(v, list) and len(v) == 2]
        depth[nid] = 1 + max((node_depth(u, stack + (nid,)) for u in ups), default=-1)
        return depth[nid]

    for nid in prompt:
        node_depth(nid)
    links, ui_nodes, column_bottom = [], [], {}
    outputs: dict[str, list[dict]] = {}
    for nid in sorted(prompt, key=lambda n: (depth[n], ids[n])):
        info = object_info[prompt[nid]["class_type"]]
        outputs[nid] = [{"name": name, "type": typ, "links": [], "slot_index": i}
                        for i, (typ, name) in enumerate(zip(info["output"], info.get("output_name", info["output"])))]
    def title_of(nid):
        info = object_info[prompt[nid]["class_type"]]
        return prompt[nid].get("_meta", {}).get("title", info.get("display_name") or prompt[nid]["class_type"])

    # Columns by dependency depth, each as wide as its longest title needs (about 7 px a character).
    widths: dict[int, int] = {}
    for nid in prompt:
        widths[depth[nid]] = max(widths.get(depth[nid], NODE_WIDTH), 7 * len(title_of(nid)) + 60)
    left = {0: 60}
    for col in range(1, max(widths, default=0) + 1):
        left[col] = left[col - 1] + widths.get(col - 1, NODE_WIDTH) + 60
    for nid in sorted(prompt, key=lambda n: (depth[n], ids[n])):
        node = prompt[nid]
        info = object_info[node["class_type"]]
        ui_inputs, widgets = [], []
        for name, kind, opts in input_specs(info):
            value = node["inputs"].get(name)
            linked = isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            if is_widget(kind, opts):  # hidden widgets too: the frontend saves their values
                widgets.extend(write_widgets(name, kind, opts, node["inputs"], linked))
                if not linked:
                    continue
            elif opts.get("hidden") and not linked:
                continue
            if not linked and value is not None:
                raise WorkflowFormatError(f"node {nid}: input {name!r} of type {kind} must be a link")
            entry = {"name": name, "type": kind, "link": None}
            if is_widget(kind, opts):
                entry["widget"] = {"name": name}
            if linked:
                link_id = len(links) + 1
                src, slot = value
                links.append([link_id, ids[src], slot, ids[nid], len(ui_inputs), kind])
                outputs[src][slot]["links"].append(link_id)
                entry["link"] = link_id
            ui_inputs.append(entry)
        col = depth[nid]
        # Height as LiteGraph draws it: title, one row per socket pair, one per widget (+ text boxes).
        sockets = max(len(ui_inputs), len(outputs[nid]))
        multiline = sum(1 for _, kind, opts in input_specs(info) if kind == "STRING" and opts.get("multiline"))
        height = 30 + NODE_ROW * (sockets + len(widgets)) + 80 * multiline
        top = column_bottom.get(col, 60)
        column_bottom[col] = top + height + 50
        ui_nodes.append({
            "id": ids[nid], "type": node["class_type"], "pos": [left[col], top],
            "size": [widths[col], height], "flags": {}, "order": len(ui_nodes), "mode": 0,
            "inputs": ui_inputs, "outputs": outputs[nid],
            "title": title_of(nid),
            "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": widgets,
        })
    return {"last_node_id": max(ids.values(), default=0), "last_link_id": len(links), "nodes": ui_nodes,
            "links": links, "groups": [], "config": {}, "extra": {}, "version": 0.4}

