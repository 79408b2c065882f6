"""Node replacements the server registers (``GET /node_replacements``, ComfyUI 0.33+), applied to a
UI-format workflow before it is converted.

A saved workflow may name a node type that this ComfyUI no longer has, where the server registers
its successor (``ResizeImagesByLongerEdge`` -> ``ImageScaleToMaxDimension``, ``Load3DAnimation`` ->
``Load3D``, ...). The frontend shows such nodes as missing and replaces them when the user clicks
"Replace" (frontend 1.49: ``useNodeReplacement.replaceWithMapping``); headless there is nobody to
click, so the runner does the same replacement and says so (a warning per node). As the frontend:

- the new node keeps the old one's id, mode, title and properties;
- ``input_mapping`` moves a link from the old input ``old_id`` to the new input ``new_id``, and the
  old widget value at the position of ``old_id`` in ``old_widget_ids`` to the widget ``new_id``;
  ``set_value`` sets a widget; widgets not named keep their defaults;
- ``output_mapping`` moves the links of old output ``old_idx`` to new output ``new_idx``;
- a replacement with neither mapping maps by name: inputs of the same name keep their links, and
  the old widget values go to the new widgets in order;
- links into inputs the mapping does not name are dropped (each is named in the warning).

One difference, on purpose: the frontend skips mappings to dotted inputs (``images.image0`` of an
Autogrow, ``resize_type.multiplier`` of a DynamicCombo), so it would lose those values; the runner
maps them as the server does for API prompts (``NodeReplaceManager.apply_replacements``), and
warns that the frontend would not.
"""
from __future__ import annotations

import copy
import logging

from .legacy_layouts import migrate_legacy_layouts
from .workflow.convert import ui_to_api
from .workflow.links import FRONTEND_ONLY, links_of
from .workflow.widgets import (has_seed_control, input_specs, is_widget, option_specs, read_widgets, serialized_count,
                               write_widgets)

log = logging.getLogger("wanmask_runner")


def _widget_names(specs, values: dict, prefix: str = "") -> list[str]:
    """The names of a node's widgets in ``widgets_values`` order, as the frontend creates them: a
    seed's control value and a file combo's upload button take a place of their own."""
    names = []
    for name, kind, opts in specs:
        if not is_widget(kind, opts):
            continue
        names.append(prefix + name)
        if serialized_count(prefix + name, kind, opts) == 2:
            names.append("control_after_generate" if has_seed_control(prefix + name, kind, opts) else "upload")
        names += _widget_names(option_specs(kind, opts, values.get(prefix + name)), values, f"{prefix}{name}.")
    return names


def _set_link(link, field: str, value):
    """Set ``origin_slot`` or ``target_slot`` of a saved link, in its list or its object form."""
    if isinstance(link, dict):
        link[field] = value
    else:
        link[{"origin_slot": 2, "target_slot": 4}[field]] = value


def _default_mapping(node: dict, new_slots: list[str], new_widgets: list[str], new_outputs: list[str]) -> dict:
    """The frontend's ``generateDefaultMapping``: same-named inputs and outputs, widgets in order."""
    old_inputs = {i.get("name") for i in node.get("inputs") or [] if isinstance(i, dict)}
    mapping = [{"old_id": n, "new_id": n} for n in new_slots if n in old_inputs]
    mapping += [{"old_id": n, "new_id": n} for n in dict.fromkeys(new_widgets) if n not in old_inputs]
    outputs = [{"old_idx": k, "new_idx": new_outputs.index(o.get("name"))}
               for k, o in enumerate(node.get("outputs") or []) if isinstance(o, dict) and o.get("name") in new_outputs]
    return {"input_mapping": mapping or None, "output_mapping": outputs or None, "old_widget_ids": new_widgets or None}


def _replace_node(graph: dict, index: int, replacement: dict, info: dict, where: str) -> str:
    """Rebuild ``graph["nodes"][index]`` as a node of ``replacement["new_node_id"]``; the warning."""
    node = graph["nodes"][index]
    new_type = replacement["new_node_id"]
    specs = input_specs(info)
    values: dict = {}
    read_widgets(specs, [], 0, values)  # a new node's widgets start at their defaults
    new_widgets = _widget_names(specs, values)
    new_slots = [name for name, _, opts in specs if not opts.get("hidden")]
    new_outputs = list(info.get("output_name") or info.get("output") or [])
    if replacement.get("input_mapping") is None and replacement.get("output_mapping") is None:
        replacement = {**replacement, **_default_mapping(node, new_slots, new_widgets, new_outputs)}
    saved = node.get("widgets_values") if isinstance(node.get("widgets_values"), list) else []
    old_widget_ids = replacement.get("old_widget_ids") or []
    old_inputs = {i.get("name"): i for i in node.get("inputs") or [] if isinstance(i, dict)}
    moved: dict = {}  # new input name -> link id
    set_by: dict = {}
    dotted = []
    for entry in replacement.get("input_mapping") or []:
        new_id = entry.get("new_id")
        if not isinstance(new_id, str):
            continue
        if "." in new_id:
            dotted.append(new_id)
        if "set_value" in entry:
            set_by[new_id] = entry["set_value"]
            continue
        old_id = entry.get("old_id")
        old = old_inputs.get(old_id)
        if old is not None and old.get("link") is not None and (new_id in new_slots or "." in new_id):
            moved[new_id] = old["link"]
        if old_id in old_widget_ids:
            position = old_widget_ids.index(old_id)
            if position < len(saved) and (new_id in values or "." in new_id):
                set_by[new_id] = saved[position]
    values.update(set_by)
    widgets = []
    for name, kind, opts in specs:
        if is_widget(kind, opts):
            widgets += write_widgets(name, kind, opts, values)
    kinds = {name: kind for name, kind, _ in specs}
    raw = {link["id"] if isinstance(link, dict) else link[0]: link
           for link in graph.get("links") or [] if isinstance(link, (dict, list)) and link}
    inputs = []
    for slot, (name, link_id) in enumerate(moved.items()):
        entry = {"name": name, "type": kinds.get(name, "*"), "link": link_id}
        if name in values:
            entry["widget"] = {"name": name}
        inputs.append(entry)
        if link_id in raw:
            _set_link(raw[link_id], "target_slot", slot)
    gone = {old["link"] for old in old_inputs.values() if old.get("link") is not None} - set(moved.values())
    dropped = [f"the link into {old.get('name')!r}" for old in old_inputs.values() if old.get("link") in gone]
    graph["links"] = [link for link_id, link in raw.items() if link_id not in gone]
    new_slot_of = {e.get("old_idx"): e.get("new_idx") for e in replacement.get("output_mapping") or []}
    for link_id, (origin, origin_slot, *_) in links_of(graph).items():  # unmapped outputs keep their slot
        if origin == node["id"] and origin_slot in new_slot_of:
            _set_link(raw[link_id], "origin_slot", new_slot_of[origin_slot])
    by_slot: dict = {}
    for link_id, (origin, origin_slot, *_) in links_of(graph).items():
        if origin == node["id"]:
            by_slot.setdefault(origin_slot, []).append(link_id)
    types = list(info.get("output") or [])
    outputs = [{"name": name, "type": types[k] if k < len(types) else None, "links": by_slot.get(k, [])}
               for k, name in enumerate(new_outputs)]
    properties = dict(node.get("properties") or {})
    if "Node name for S&R" in properties:
        properties["Node name for S&R"] = new_type
    new_node = {**{k: v for k, v in node.items() if k not in ("inputs", "outputs", "widgets_values", "type")},
                "type": new_type, "inputs": inputs, "outputs": outputs, "widgets_values": widgets,
                "properties": properties}
    graph["nodes"][index] = new_node
    named = {e.get("old_id") for e in replacement.get("input_mapping") or [] if "old_id" in e}
    lost = [n for n in old_widget_ids[:len(saved)] if n not in named] + \
        [f"value {k}" for k in range(len(old_widget_ids), len(saved))]
    note = f"{where}: type {node.get('type')!r} is not on this ComfyUI; replaced by {new_type!r}, as the server " \
           f"registers it (/node_replacements) and as the frontend's Replace does"
    if dropped:
        note += "; dropped (the replacement maps no new input for them): " + ", ".join(dropped)
    if lost:
        note += "; saved widget values the replacement does not map (the new widgets keep their defaults): " + \
            ", ".join(lost)
    if dotted:
        note += f"; mapped {', '.join(dotted)} as the server does (the frontend's Replace skips dotted inputs)"
    return note


def apply_node_replacements(ui: dict, object_info: dict, replacements: dict | None) -> tuple[dict, list[str]]:
    """A copy of the UI workflow with every node whose type this ComfyUI lacks, and for which the
    server registers a replacement whose new type it has, replaced (root graph and subgraph
    definitions); and one warning per replaced node. Without replacements: the workflow itself."""
    if not replacements:
        return ui, []
    definitions = [d for d in (ui.get("definitions") or {}).get("subgraphs") or [] if isinstance(d, dict)]
    subgraph_ids = {d.get("id") for d in definitions}

    def wanted(node) -> dict | None:
        kind = node.get("type") if isinstance(node, dict) else None
        if not isinstance(kind, str) or kind in object_info or kind in subgraph_ids or kind in FRONTEND_ONLY:
            return None
        options = replacements.get(kind) or []
        first = options[0] if options and isinstance(options[0], dict) else None  # the server takes the first
        return first if first and first.get("new_node_id") in object_info else None

    graphs = [ui] + definitions
    if not any(wanted(n) for g in graphs for n in g.get("nodes") or []):
        return ui, []
    ui = copy.deepcopy(ui)
    definitions = [d for d in (ui.get("definitions") or {}).get("subgraphs") or [] if isinstance(d, dict)]
    notes = []
    for graph in [ui] + definitions:
        for index, node in enumerate(graph.get("nodes") or []):
            replacement = wanted(node)
            if replacement is None:
                continue
            title = f" {node['title']!r}" if node.get("title") else ""
            where = f"node {node.get('id')}{title}" + (
                f" (in subgraph {graph.get('name') or graph.get('id')!r})" if graph is not ui else "")
            notes.append(_replace_node(graph, index, replacement, object_info[replacement["new_node_id"]], where))
    return ui, notes


def replace_then_convert(ui: dict, object_info: dict, frontend_version=None, replacements: dict | None = None) -> dict:
    """:func:`~wanmask_runner.workflow.convert.ui_to_api` after the pack's own old widget layouts are
    brought to today's (:mod:`legacy_layouts`) and the server's node replacements are applied (one
    warning logged per migrated or replaced node)."""
    ui, migrated = migrate_legacy_layouts(ui)
    ui, notes = apply_node_replacements(ui, object_info, replacements)
    for note in migrated + notes:
        log.warning("%s", note)
    return ui_to_api(ui, object_info, frontend_version)
