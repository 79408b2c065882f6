"""What a node's widgets hold while a workflow is flattened: the saved ``widgets_values`` (defaults
for widgets the saved list lacks), what PrimitiveNodes set, and a subgraph instance's promoted
widgets. A part of :class:`~.subgraphs.Scope`, which gives it ``conv``, ``nodes``, ``links``,
``parent``, ``instance``, ``definition`` and the structure methods it uses."""
from __future__ import annotations

import logging

from .links import instance_inputs
from .widgets import (FRONTEND_BUTTONS, FRONTEND_EXTRA_WIDGETS, VIEWPORT, has_seed_control, input_specs,
                      read_widgets, viewport_state)

log = logging.getLogger("wanmask_runner")


class WidgetValues:
    """The widget values of a :class:`~.subgraphs.Scope`'s nodes."""

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
