"""UI-format (nodes + links, as the frontend saves) <-> API-format (what POST /prompt takes) workflows.

The conversion needs ``/object_info``: it tells which inputs are widgets (their values are in a
UI node's ``widgets_values``, in declaration order) and which are sockets (links).
"""
from __future__ import annotations

import json
from typing import Any

DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"  # a V3 combo whose chosen option brings its own inputs ("name.sub")
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", DYNAMIC_COMBO}
SEED_NAMES = ("seed", "noise_seed")
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload")
# UI nodes that are frontend-only and never reach the server.
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
MUTED, BYPASSED = 2, 4
NODE_WIDTH, NODE_ROW = 360, 26  # layout of generated UI workflows, in canvas pixels


class WorkflowFormatError(ValueError):
    """A workflow that cannot be converted (unknown node type, broken link, ...)."""


def is_ui_format(workflow: dict) -> bool:
    return isinstance(workflow.get("nodes"), list) and "links" in workflow


def _input_specs(info: dict) -> list[tuple[str, str, dict]]:
    """[(name, type, options)] in declaration order: required, then optional. A COMBO's choices
    are in ``options["options"]`` (V1 lists them as the type itself). Hidden inputs (``hidden``
    in their options) are listed too: they have no widget and no saved value."""
    specs = []
    order = info.get("input_order") or {k: list(v) for k, v in info.get("input", {}).items()}
    for section in ("required", "optional"):
        declared = info.get("input", {}).get(section, {})
        for name in order.get(section, []):
            spec = declared.get(name)
            if spec is None:
                continue
            kind, opts = spec[0], dict(spec[1]) if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if isinstance(kind, list):
                kind, opts["options"] = "COMBO", kind
            specs.append((name, kind, opts))
    return specs


def _option_specs(kind: str, opts: dict, value) -> list[tuple[str, str, dict]]:
    """The inputs a dynamic combo's chosen option adds (none for other inputs or unknown choices)."""
    if kind != DYNAMIC_COMBO:
        return []
    option = next((o for o in opts.get("options", []) if isinstance(o, dict) and o.get("key") == value), None)
    return _input_specs({"input": option["inputs"]}) if option else []


def widget_default(kind: str, opts: dict):
    """The value the frontend gives a widget the saved workflow lacks: its default, else the first choice."""
    if "default" in opts:
        return opts["default"]
    choices = opts.get("options") or []
    first = choices[0] if choices else None
    return first.get("key") if isinstance(first, dict) else first


def is_widget(kind: str, opts: dict) -> bool:
    return kind in WIDGET_TYPES and not opts.get("forceInput", False)


def has_seed_control(name: str, kind: str, opts: dict) -> bool:
    """The frontend adds a 'control after generate' widget (one more saved value) to inputs that ask
    for it and, by legacy rule, to every INT named seed or noise_seed."""
    return bool(opts.get("control_after_generate")) or (kind == "INT" and name in SEED_NAMES)


def serialized_count(name: str, kind: str, opts: dict) -> int:
    """Values a widget takes in ``widgets_values``: a seed with control_after_generate and an upload
    widget serialize one extra value each."""
    return 2 if has_seed_control(name, kind, opts) or any(opts.get(f) for f in UPLOAD_FLAGS) else 1


def read_widgets(specs, values: list, pos: int, inputs: dict, prefix: str = "") -> int:
    """Fill ``inputs`` from positional ``widgets_values`` (from ``pos``; returns the next position).

    A dynamic combo's value is followed by its chosen option's widgets, named ``combo.sub`` as
    the frontend names them in the API prompt. Widgets the saved list lacks (added to the node
    after the workflow was saved) get their defaults, as the frontend gives them; so do hidden
    widget inputs, which take no saved value.
    """
    for name, kind, opts in specs:
        if not is_widget(kind, opts):
            continue
        if opts.get("hidden"):
            inputs[prefix + name] = widget_default(kind, opts)
            continue
        value = values[pos] if pos < len(values) else widget_default(kind, opts)
        inputs[prefix + name] = value
        pos += serialized_count(name, kind, opts)
        pos = read_widgets(_option_specs(kind, opts, value), values, pos, inputs, f"{prefix}{name}.")
    return pos


def ui_to_api(ui: dict, object_info: dict) -> dict:
    """Convert a UI-format workflow to an API-format prompt.

    Muted nodes are dropped; bypassed nodes pass their first input of a matching type through.
    """
    links = {l[0]: l for l in ui.get("links", [])}  # id -> [id, from_node, from_slot, to_node, to_slot, type]
    nodes = {n["id"]: n for n in ui["nodes"]}
    prompt: dict[str, Any] = {}

    def source(link_id):
        """Follow a link through reroutes and bypassed nodes to a real output [node_id, slot]."""
        seen = set()
        while link_id is not None:
            if link_id in seen:
                raise WorkflowFormatError(f"link {link_id} loops through bypassed/reroute nodes")
            seen.add(link_id)
            link = links.get(link_id)
            if link is None:
                raise WorkflowFormatError(f"link {link_id} is referenced by a node but missing from 'links'")
            node = nodes[link[1]]
            if node["type"] == "Reroute":
                link_id = (node.get("inputs") or [{}])[0].get("link")
            elif node.get("mode") == BYPASSED:
                out_type = link[5]
                match = [i for i in node.get("inputs", []) if i.get("type") == out_type and i.get("link") is not None]
                link_id = match[0]["link"] if match else None
            else:
                return [str(link[1]), link[2]]
        return None

    for node in ui["nodes"]:
        kind = node["type"]
        if kind in FRONTEND_ONLY or node.get("mode") in (MUTED, BYPASSED):
            continue
        info = object_info.get(kind)
        if info is None:
            raise WorkflowFormatError(f"node {node['id']}: type {kind!r} is not installed on this ComfyUI "
                                      f"(missing custom node pack?)")
        inputs: dict[str, Any] = {}
        values = list(node.get("widgets_values") or [])
        if isinstance(node.get("widgets_values"), dict):  # some nodes save a dict by name
            inputs.update(node["widgets_values"])
            values = []
        if values or not isinstance(node.get("widgets_values"), dict):
            read_widgets(_input_specs(info), values, 0, inputs)
        for inp in node.get("inputs", []):
            if inp.get("link") is not None:
                src = source(inp["link"])
                if src is not None:
                    inputs[inp["name"]] = src
        prompt[str(node["id"])] = {"class_type": kind, "inputs": inputs,
                                   "_meta": {"title": node.get("title") or info.get("display_name", kind)}}
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
        for name, kind, opts in _input_specs(info):
            value = node["inputs"].get(name)
            linked = isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            if opts.get("hidden") and not linked:
                continue
            if is_widget(kind, opts):
                widgets.extend(_write_widgets(name, kind, opts, node["inputs"], linked))
                if not linked:
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
        multiline = sum(1 for _, kind, opts in _input_specs(info) if kind == "STRING" and opts.get("multiline"))
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


def declared_input_names(info: dict, inputs: dict) -> set[str]:
    """The input names a node of this type takes in this ComfyUI, given its values: every declared,
    non-hidden input, plus the ``combo.sub`` inputs of the options its dynamic combos choose."""
    names: set[str] = set()

    def walk(specs, prefix):
        for name, kind, opts in specs:
            names.add(prefix + name)
            walk(_option_specs(kind, opts, inputs.get(prefix + name)), f"{prefix}{name}.")

    walk(_input_specs(info), "")
    return names


def _write_widgets(name: str, kind: str, opts: dict, inputs: dict, linked: bool = False, prefix: str = "") -> list:
    """The ``widgets_values`` entries of one widget (and of a dynamic combo's chosen option)."""
    value = inputs.get(prefix + name)
    value = widget_default(kind, opts) if linked or value is None else value
    out = [value] + (["fixed"] if has_seed_control(name, kind, opts) else [])
    for sub, sub_kind, sub_opts in _option_specs(kind, opts, value):
        if is_widget(sub_kind, sub_opts) and not sub_opts.get("hidden"):
            out += _write_widgets(sub, sub_kind, sub_opts, inputs, prefix=f"{prefix}{name}.")
    return out


def parse_value(text: str) -> Any:
    """A --set value: JSON when it parses (numbers, true/false, lists), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(prompt: dict, overrides: list[str]) -> dict:
    """Apply ``NODE.INPUT=VALUE`` overrides; NODE is a node id, a title, or a class type that occurs once."""
    for item in overrides:
        target, sep, raw = item.partition("=")
        node_ref, dot, input_name = target.rpartition(".")
        if not sep or not dot or not node_ref or not input_name:
            raise WorkflowFormatError(f"--set {item!r}: expected NODE.INPUT=VALUE, e.g. KSampler.steps=4 or 3.seed=1")
        if node_ref in prompt:
            matches = [node_ref]
        else:
            matches = [nid for nid, n in prompt.items() if n.get("_meta", {}).get("title") == node_ref] or \
                      [nid for nid, n in prompt.items() if n["class_type"] == node_ref]
        if len(matches) != 1:
            found = "no node" if not matches else f"{len(matches)} nodes ({', '.join(matches)})"
            raise WorkflowFormatError(f"--set {item!r}: {found} match {node_ref!r}; use a node id instead")
        prompt[matches[0]]["inputs"][input_name] = parse_value(raw)
    return prompt


def check_against_object_info(prompt: dict, object_info: dict, check_choices: bool = True) -> list[str]:
    """Problems that ComfyUI's validation would also find, without running anything.

    Checks node types, required inputs, link targets and types, and numeric ranges. File-name
    choices (models, inputs) differ between installations, so with ``check_choices=False`` COMBO
    values are not checked.
    """
    problems = []
    for nid, node in prompt.items():
        info = object_info.get(node.get("class_type"))
        if info is None:
            problems.append(f"node {nid}: unknown type {node.get('class_type')!r}")
            continue
        required = set(info.get("input", {}).get("required", {}))
        for name, kind, opts in _input_specs(info):
            value = node["inputs"].get(name)
            if value is None:
                if name in required:
                    problems.append(f"node {nid} ({node['class_type']}): required input {name!r} is missing")
                continue
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                src = prompt.get(value[0])
                if src is None:
                    problems.append(f"node {nid}: input {name!r} links to missing node {value[0]}")
                    continue
                outs = object_info.get(src["class_type"], {}).get("output", [])
                if value[1] >= len(outs):
                    problems.append(f"node {nid}: input {name!r} links to output {value[1]} of node {value[0]}, "
                                    f"which has {len(outs)}")
                elif kind != "*" and outs[value[1]] != "*" and kind != "COMBO" and outs[value[1]] != kind:
                    problems.append(f"node {nid}: input {name!r} wants {kind}, node {value[0]} gives {outs[value[1]]}")
            elif kind in ("INT", "FLOAT"):
                if "min" in opts and value < opts["min"] or "max" in opts and value > opts["max"]:
                    problems.append(f"node {nid}: {name}={value} is outside [{opts.get('min')}, {opts.get('max')}]")
            elif kind == "COMBO" and check_choices and opts.get("options") and value not in opts["options"]:
                problems.append(f"node {nid}: {name}={value!r} is not one of {opts['options'][:8]}")
    return problems
