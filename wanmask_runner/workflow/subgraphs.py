"""Flattening a UI-format workflow to API nodes: the root graph and each subgraph instance as a
:class:`Scope` (inner nodes get the frontend's ids ``instance:inner``), with what each node's
widgets hold (saved values, PrimitiveNodes, promoted widgets) and where each link comes from
(through reroutes, bypassed nodes and subgraph boundaries)."""
from __future__ import annotations

import logging

from .errors import WorkflowFormatError
from .links import BYPASSED, FRONTEND_ONLY, MUTED, SUBGRAPH_INPUT, instance_inputs, links_of, types_match
from .versions import (PROMOTED_STORE_SINCE, SKIP_DISABLED_SINCE, SORTED_DEFINITIONS_SINCE, dedupe_node_ids,
                       dedupes_subgraph_ids, parse_version)
from .widgets import (FRONTEND_BUTTONS, FRONTEND_EXTRA_WIDGETS, VIEWPORT, has_seed_control, input_specs,
                      read_widgets, viewport_state)

log = logging.getLogger("wanmask_runner")


class Scope:
    """The root graph, or one instance of a subgraph (its nodes get ids ``instance:inner``)."""

    def __init__(self, conv: "Conversion", graph: dict, path: tuple = (), instance: dict | None = None,
                 parent: "Scope | None" = None, definition: dict | None = None):
        self.conv, self.graph, self.path = conv, graph, path
        self.instance, self.parent, self.definition = instance, parent, definition
        self.nodes = {n["id"]: n for n in graph.get("nodes") or []}
        self.links = links_of(graph)
        self.children: dict = {}
        self.widget_cache: dict = {}
        self.primitive_values: dict = {}  # (node id, widget name) -> value a PrimitiveNode gives it
        self.promoted: dict = {}  # subgraph input index -> value of the instance's promoted widget
        self.instance_inputs: list = []  # the instance's inputs, in its order (links to it use these slots)
        self.by_slot: dict = {}  # subgraph input index -> the instance input for it
        if definition is not None:
            self.instance_inputs = instance_inputs(instance, definition)
            self.by_slot = {i["slot"]: i for i in self.instance_inputs if i["slot"] is not None}
        for node in self.nodes.values():
            if node.get("type") == "PrimitiveNode":
                self._apply_primitive(node)
        if definition is not None:
            if not conv.promoted_widgets_own_values:
                self._inherit_primitives()
            self._promote()

    # ---- naming -------------------------------------------------------------------------
    def exec_id(self, node_id) -> str:
        return ":".join(self.path + (str(node_id),))

    def where(self, node: dict) -> str:
        """How the user finds a node: its id path, its title, and the subgraph it is in."""
        title = node.get("title")
        text = f"node {self.exec_id(node['id'])}"
        if title and title != node.get("type"):
            text += f" {title!r}"
        if self.definition is not None:
            text += f" (in subgraph {self.definition.get('name') or self.definition['id']!r}, instance " \
                    f"{self.parent.where(self.instance)})"
        return text

    # ---- structure ----------------------------------------------------------------------
    def child(self, node: dict) -> "Scope":
        """The scope of a subgraph instance in this scope."""
        if node["id"] not in self.children:
            definition = self.conv.definitions[node["type"]]
            if any(s.definition is definition for s in self._ancestry()):
                raise WorkflowFormatError(f"{self.where(node)}: subgraph {definition.get('name')!r} contains itself")
            self.children[node["id"]] = Scope(self.conv, definition, self.path + (str(node["id"]),), node, self,
                                               definition)
        return self.children[node["id"]]

    def _ancestry(self):
        scope = self
        while scope is not None:
            yield scope
            scope = scope.parent

    def is_instance(self, node: dict) -> bool:
        return node.get("type") in self.conv.definitions

    def drops_disabled_instance(self, node: dict) -> bool:
        """A muted or bypassed subgraph instance in the root graph whose nodes the frontend does not send."""
        return self.is_instance(node) and not self.path and node.get("mode") in (MUTED, BYPASSED) \
            and self.conv.skips_disabled_instances

    def inputs_of(self, node: dict) -> list[dict]:
        return self.child(node).instance_inputs if self.is_instance(node) else list(node.get("inputs") or [])

    def outputs_of(self, node: dict) -> list[dict]:
        if self.is_instance(node):
            return list(self.conv.definitions[node["type"]].get("outputs") or [])
        return list(node.get("outputs") or [])

    def link(self, link_id, node: dict) -> tuple:
        link = self.links.get(link_id)
        if link is None:
            raise WorkflowFormatError(f"{self.where(node)}: link {link_id} is missing from the workflow's links")
        return link

    # ---- widget values ------------------------------------------------------------------
    def widget_values(self, node: dict) -> dict:
        """name -> value of a node's widgets: the saved ``widgets_values`` (defaults for widgets the
        saved list lacks), then what PrimitiveNodes set. Subgraph instances: their promoted widgets."""
        if node["id"] in self.widget_cache:
            return self.widget_cache[node["id"]]
        if self.is_instance(node):
            child = self.child(node)
            values = {child.definition["inputs"][k]["name"]: v for k, v in child.promoted.items()}
        else:
            values = {}
            info = self.conv.object_info.get(node.get("type"))
            saved = node.get("widgets_values")
            if isinstance(saved, dict):  # some nodes save a dict by name
                values.update(saved)
            elif info is not None:
                saved = list(saved or [])
                buttons = FRONTEND_BUTTONS.get(node.get("type"))
                if buttons and len(saved) > 1 and saved[1:1 + len(buttons)] == list(buttons.values()):
                    del saved[1:1 + len(buttons)]  # saved after the first widget, sent as they are
                    values.update(buttons)
                specs = input_specs(info)
                pos = read_widgets(specs, saved, 0, values)
                for name, kind, _ in specs:
                    if kind != VIEWPORT or name not in values:
                        continue
                    values[name] = viewport_state(node)
                    if node.get("type") in FRONTEND_BUTTONS:  # Load3D: its outputs are the captures
                        log.warning("%s: its 3D viewer's scene captures (image, mask, normal) are rendered by the "
                                    "browser when the frontend queues; headless they are empty and the camera is "
                                    "the one saved on the node", self.where(node))
                extra = FRONTEND_EXTRA_WIDGETS.get(node.get("type"))
                if extra:  # widgets the frontend adds to this node (the server takes any input)
                    values.update(extra(saved[pos:]))
        for (node_id, name), value in self.primitive_values.items():
            if node_id == node["id"]:
                values[name] = value
        self.widget_cache[node["id"]] = values
        return values

    def _apply_primitive(self, primitive: dict):
        """A PrimitiveNode copies its value into the widget of every input it is linked to (as the
        frontend's applyToGraph does before converting)."""
        saved = primitive.get("widgets_values")
        if not isinstance(saved, list) or not saved:
            return
        for out in primitive.get("outputs") or []:
            for link_id in out.get("links") or []:
                link = self.links.get(link_id)
                target = self.nodes.get(link[2]) if link else None
                if target is None:
                    continue
                slot = link[3]
                if self.is_instance(target):  # its promoted widget of that input
                    inputs = instance_inputs(target, self.conv.definitions[target["type"]])
                    name = inputs[slot]["name"] if slot < len(inputs) else None
                else:
                    inputs = target.get("inputs") or []
                    inp = inputs[slot] if slot < len(inputs) else None
                    name = (inp.get("widget") or {}).get("name") if inp else None
                if name:
                    self.primitive_values[(target["id"], name)] = saved[0]
            break  # the primitive's one output

    def _inherit_primitives(self):
        """Older frontends: a PrimitiveNode linked to an instance's input sets the widgets inside
        that the input feeds (today's keep the instance's widget apart)."""
        for (node_id, name), value in self.parent.primitive_values.items():
            if node_id != self.instance["id"]:
                continue
            for k, sg_input in enumerate(self.definition.get("inputs") or []):
                if sg_input.get("name") != name:
                    continue
                for link_id in sg_input.get("linkIds") or []:
                    link = self.links.get(link_id)
                    target = self.nodes.get(link[2]) if link else None
                    inputs = self.inputs_of(target) if target else []
                    inp = inputs[link[3]] if target and link[3] < len(inputs) else {}
                    widget = (inp.get("widget") or {}).get("name") or (inp.get("name") if self.is_instance(target) else None)
                    if widget:
                        self.primitive_values[(target["id"], widget)] = value

    def _promote(self):
        """The instance's widgets for subgraph inputs that lead to a widget inside: their value is the
        instance's ``widgets_values`` (in input order), else the inner widget's own value."""
        definition, instance = self.definition, self.instance
        saved = instance.get("widgets_values")
        saved = saved if isinstance(saved, list) else []
        if self.conv.configured_too_early(definition, self.parent.definition):
            saved = []
        promoted = []
        for k, sg_input in enumerate(definition.get("inputs") or []):
            source = self._widget_source(sg_input)
            if source is not None:
                promoted.append((k, source))
        extra = len(saved) > len(promoted)
        pos = 0
        for k, (node, name, has_control) in promoted:
            value = saved[pos] if pos < len(saved) else None
            self.promoted[k] = value if value is not None else self.widget_values(node).get(name)
            pos += 2 if extra and has_control else 1
        for (node_id, name), value in self.parent.primitive_values.items() if self.parent else ():
            if node_id == instance["id"]:
                for k, sg_input in enumerate(definition.get("inputs") or []):
                    if sg_input.get("name") == name and k in self.promoted:
                        self.promoted[k] = value

    def _widget_source(self, sg_input: dict):
        """(inner node, widget name, has a control-after-generate value) that a subgraph input feeds."""
        for link_id in sg_input.get("linkIds") or []:
            link = self.links.get(link_id)
            node = self.nodes.get(link[2]) if link else None
            if node is None:
                continue
            inputs = self.inputs_of(node)
            inp = inputs[link[3]] if link[3] < len(inputs) else None
            if inp is None:
                continue
            if self.is_instance(node):
                if inp.get("slot") in self.child(node).promoted:
                    return node, inp["name"], False
                continue
            widget = (inp.get("widget") or {}).get("name")
            if widget:
                info = self.conv.object_info.get(node.get("type")) or {}
                spec = next((s for s in input_specs(info) if s[0] == widget), None)
                return node, widget, bool(spec and has_seed_control(*spec))
        return None

    # ---- links --------------------------------------------------------------------------
    def resolve_link(self, link_id, want_type, node: dict, visited: set):
        """What a link into ``node`` carries: ("link", id, slot), ("value", v) or None (nothing)."""
        origin_id, origin_slot, *_ = self.link(link_id, node)
        if origin_id == SUBGRAPH_INPUT:
            if self.definition is None:
                raise WorkflowFormatError(f"{self.where(node)}: link {link_id} comes from a subgraph input, "
                                          f"but the node is not in a subgraph")
            count = len(self.definition.get("inputs") or [])
            if not 0 <= origin_slot < count:
                raise WorkflowFormatError(f"{self.where(node)}: link {link_id} comes from input {origin_slot} of "
                                          f"its subgraph, which has {count}")
            outer = self.by_slot.get(origin_slot) or {}
            if outer.get("link") is None:
                return ("value", self.promoted[origin_slot]) if origin_slot in self.promoted else None
            return self.parent.resolve_link(outer["link"], outer.get("type"), self.instance, visited)
        origin = self.nodes.get(origin_id)
        if origin is None:
            raise WorkflowFormatError(f"{self.where(node)}: link {link_id} comes from node "
                                      f"{self.exec_id(origin_id)}, which is not in the workflow")
        return self.resolve_output(origin, origin_slot, want_type, visited)

    def resolve_output(self, node: dict, slot: int, want_type, visited: set):
        key = (self.path, node["id"], slot)
        if key in visited:
            raise WorkflowFormatError(f"{self.where(node)}: its output {slot} loops back to itself through "
                                      f"bypassed nodes, reroutes or subgraphs")
        visited.add(key)
        inputs = self.inputs_of(node)
        if node.get("mode") == BYPASSED:
            index = self._bypass_input(node, inputs, slot, want_type)
            if index < 0 or index >= len(inputs) or inputs[index].get("link") is None:
                return None
            return self.resolve_link(inputs[index]["link"], inputs[index].get("type"), node, visited)
        if self.drops_disabled_instance(node) and node.get("mode") == MUTED:
            return ("link", self.exec_id(node["id"]), slot)  # a node that is not sent: the input goes
        if self.is_instance(node):
            child = self.child(node)
            outputs = child.definition.get("outputs") or []
            link_ids = outputs[slot].get("linkIds") or [] if slot < len(outputs) else []
            inner = next((child.links[i] for i in link_ids if i in child.links), None)
            if inner is None:
                return None
            if inner[0] == SUBGRAPH_INPUT:  # an input wired straight through to an output
                outer = child.by_slot.get(inner[1]) or {}
                if outer.get("link") is None:
                    return None
                return self.resolve_link(outer["link"], want_type, node, visited)
            origin = child.nodes.get(inner[0])
            if origin is None:
                raise WorkflowFormatError(f"{self.where(node)}: output {slot} of its subgraph comes from node "
                                          f"{inner[0]}, which is not in the subgraph")
            return child.resolve_output(origin, inner[1], want_type, visited)
        if node.get("type") in FRONTEND_ONLY:  # reroutes pass their input through; primitives set widgets
            if slot < len(inputs) and inputs[slot].get("link") is not None:
                return self.resolve_link(inputs[slot]["link"], want_type, node, visited)
            return None
        return ("link", self.exec_id(node["id"]), slot)

    def _bypass_input(self, node: dict, inputs: list, slot: int, want_type) -> int:
        """The input a bypassed node passes to output ``slot`` (the frontend's rule), or -1."""
        if want_type in ("*", "", None):
            return slot if len(inputs) > slot else 0
        outputs = self.outputs_of(node)
        out_type = outputs[slot].get("type") if slot < len(outputs) else None
        if slot < len(inputs) and types_match(inputs[slot].get("type"), out_type) and \
                types_match(inputs[slot].get("type"), want_type):
            return slot
        exact = next((i for i, inp in enumerate(inputs) if inp.get("type") == want_type), -1)
        if exact >= 0:
            return exact
        return next((i for i, inp in enumerate(inputs) if types_match(inp.get("type"), out_type)
                     and types_match(inp.get("type"), want_type)), -1)

    # ---- conversion ---------------------------------------------------------------------
    def emit(self, prompt: dict):
        for node in self.graph.get("nodes") or []:
            kind = node.get("type")
            if self.is_instance(node):
                # As the frontend does: a muted or bypassed instance in the root graph sends none of
                # its nodes (since 1.39.3); one inside a subgraph sends its nodes in their own modes.
                if not self.drops_disabled_instance(node):
                    self.child(node).emit(prompt)
                continue
            if kind in FRONTEND_ONLY or node.get("mode") in (MUTED, BYPASSED):
                continue
            info = self.conv.object_info.get(kind)
            if info is None:
                looks_like_subgraph = isinstance(kind, str) and len(kind) == 36 and kind.count("-") == 4
                group = isinstance(kind, str) and kind.split(">", 1)[-1].split("/", 1)[-1] in \
                    ((self.conv.ui.get("extra") or {}).get("groupNodes") or {}) and kind.startswith("workflow")
                if looks_like_subgraph:
                    why = "is a subgraph whose definition is missing from the workflow's definitions.subgraphs"
                elif group:
                    why = ("is a group node (the frontend's older grouping, extra.groupNodes), which the runner "
                           "does not expand; open the workflow in the frontend and convert the group node to a "
                           "subgraph, then save it")
                else:
                    why = "is not installed on this ComfyUI (missing custom node pack?)"
                raise WorkflowFormatError(f"{self.where(node)}: type {kind!r} {why}")
            inputs = {k: ({"__value__": v} if isinstance(v, list) else v)
                      for k, v in self.widget_values(node).items()}
            for inp in node.get("inputs") or []:
                if inp.get("link") is None:
                    continue
                found = self.resolve_link(inp["link"], inp.get("type"), node, set())
                if found is None:
                    continue
                if found[0] == "value":
                    inputs[inp["name"]] = {"__value__": found[1]} if isinstance(found[1], list) else found[1]
                else:
                    inputs[inp["name"]] = [found[1], found[2]]
            prompt[self.exec_id(node["id"])] = {
                "class_type": kind, "inputs": inputs,
                "_meta": {"title": node.get("title") or info.get("display_name", kind)}}


class Conversion:
    """One conversion: the workflow, ``/object_info``, the subgraph definitions by id (renumbered
    as the frontend of ``frontend_version`` does) and that frontend's behaviours."""

    def __init__(self, ui: dict, object_info: dict, frontend_version=None):
        self.ui, self.object_info = ui, object_info
        definitions = [d for d in (ui.get("definitions") or {}).get("subgraphs") or []
                       if isinstance(d, dict) and "id" in d]
        if dedupes_subgraph_ids(frontend_version):
            definitions = dedupe_node_ids(ui, definitions)
        version = parse_version(frontend_version)
        self.skips_disabled_instances = version is None or version >= SKIP_DISABLED_SINCE
        self.promoted_widgets_own_values = version is None or version >= PROMOTED_STORE_SINCE
        self.definitions = {d["id"]: d for d in definitions}
        self.order = {d["id"]: i for i, d in enumerate(definitions)}
        self.sorts_definitions = version is None or version >= SORTED_DEFINITIONS_SINCE

    def configured_too_early(self, definition: dict, container: dict | None) -> bool:
        """Older frontends configure subgraph definitions in file order: an instance inside a
        definition that comes before its own definition finds no promoted widgets, so its saved
        widget values are lost (today's frontend configures the inner definitions first)."""
        return container is not None and not self.sorts_definitions and \
            self.order.get(definition["id"], 0) > self.order.get(container["id"], 0)

