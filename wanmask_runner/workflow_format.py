"""UI-format (nodes + links, as the frontend saves) <-> API-format (what POST /prompt takes) workflows.

The conversion needs ``/object_info``: it tells which inputs are widgets (their values are in a
UI node's ``widgets_values``, in declaration order) and which are sockets (links).
"""
from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger("wanmask_runner")

DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"  # a V3 combo whose chosen option brings its own inputs ("name.sub")
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", DYNAMIC_COMBO}
SEED_NAMES = ("seed", "noise_seed")
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload")
# UI nodes that are frontend-only and never reach the server.
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
MUTED, BYPASSED = 2, 4
# Widgets of the frontend's own for these input types; their values are saved like any widget's.
FRONTEND_WIDGETS = {"COLOR", "COLORS", "CURVE", "BOUNDING_BOX", "BOUNDING_BOXES", "COMPOSITOR", "IMAGECOMPARE",
                    "LOAD_3D"}
VIEWPORT = "LOAD_3D"  # the frontend's 3D viewer: it sends the viewer's state, not the saved value
# Widgets whose value the frontend does not send as saved, but as this.
SENT_AS = {"IMAGECOMPARE": ["", ""]}
# Nodes the frontend gives widgets of its own after the declared ones, sent as inputs (the node
# takes any input): CustomCombo's chosen index and its options.
FRONTEND_EXTRA_WIDGETS = {
    "CustomCombo": lambda rest: {**({"index": rest[0]} if rest else {}),
                                 **{f"option{i}": v for i, v in enumerate(rest[1:], 1)}},
}
# Button widgets the frontend adds after a node's first widget (name -> the value it saves and
# sends; the server takes any input): Load3D's upload and clear buttons.
FRONTEND_BUTTONS = {
    "Load3D": {"upload 3d model": "upload3dmodel", "upload extra resources": "uploadExtraResources", "clear": "clear"},
}
NODE_WIDTH, NODE_ROW = 360, 26  # layout of generated UI workflows, in canvas pixels


class WorkflowFormatError(ValueError):
    """A workflow that cannot be converted (unknown node type, broken link, ...)."""


def is_ui_format(workflow: dict) -> bool:
    return isinstance(workflow.get("nodes"), list) and "links" in workflow


def _input_specs(info: dict) -> list[tuple[str, str, dict]]:
    """[(name, type, options)] in declaration order: required, then optional. A COMBO's choices
    are in ``options["options"]`` (V1 lists them as the type itself). Hidden inputs (``hidden``
    in their options) are listed too."""
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


def widget_kind(kind: str, opts: dict) -> str:
    """The widget type the frontend draws for an input (``widgetType`` overrides a socket type such
    as ``FLOAT,INT``)."""
    return opts.get("widgetType") or kind


def is_widget(kind: str, opts: dict) -> bool:
    """Whether the frontend gives an input a widget (and a place in ``widgets_values``): the basic
    types, and the frontend's own widgets (colors, curves, bounding boxes, ...) that inputs without
    a socket (``socketless``) declare."""
    if opts.get("forceInput", False):
        return False
    return widget_kind(kind, opts) in WIDGET_TYPES or bool(opts.get("socketless")) or \
        widget_kind(kind, opts) in FRONTEND_WIDGETS


def has_seed_control(name: str, kind: str, opts: dict) -> bool:
    """The frontend adds a 'control after generate' widget (one more saved value) to inputs that ask
    for it and, by legacy rule, to every INT named seed or noise_seed."""
    return bool(opts.get("control_after_generate")) or (widget_kind(kind, opts) == "INT" and name in SEED_NAMES)


def serialized_count(name: str, kind: str, opts: dict) -> int:
    """Values a widget takes in ``widgets_values``: a seed with control_after_generate and a file
    combo with an upload button serialize one extra value each."""
    upload = widget_kind(kind, opts) == "COMBO" and any(opts.get(f) for f in UPLOAD_FLAGS)  # not Painter's
    return 2 if has_seed_control(name, kind, opts) or upload else 1


def read_widgets(specs, values: list, pos: int, inputs: dict, prefix: str = "") -> int:
    """Fill ``inputs`` from positional ``widgets_values`` (from ``pos``; returns the next position).

    A dynamic combo's value is followed by its chosen option's widgets, named ``combo.sub`` as
    the frontend names them in the API prompt (the legacy seed rule looks at that full name, so
    a combo's ``seed`` has no control value). Widgets the saved list lacks (added to the node after
    the workflow was saved) get their defaults, as the frontend gives them. Hidden widgets are
    saved like the others (Painter's width and height).
    """
    for name, kind, opts in specs:
        if not is_widget(kind, opts):
            continue
        value = values[pos] if pos < len(values) else widget_default(kind, opts)
        inputs[prefix + name] = SENT_AS.get(widget_kind(kind, opts), value)
        pos += serialized_count(prefix + name, kind, opts)
        pos = read_widgets(_option_specs(kind, opts, value), values, pos, inputs, f"{prefix}{name}.")
    return pos


def viewport_state(node: dict) -> dict:
    """What a 3D viewer widget (``LOAD_3D``) sends, headless: the camera saved on the node
    (``properties["Camera Config"]``; None when it was never moved) and no scene captures. The
    frontend sends its live viewer's state: the same camera once restored, and for the Load3D node
    captures of the rendered scene, which only a browser can make."""
    config = (node.get("properties") or {}).get("Camera Config")
    camera = dict(config["state"]) if isinstance(config, dict) and isinstance(config.get("state"), dict) else None
    if camera is not None:  # three.js vectors serialize with their isVector3 flag
        for key in ("position", "target"):
            if isinstance(camera.get(key), dict):
                camera[key] = {"isVector3": True, **camera[key]}
    return {"image": "", "mask": "", "normal": "", "recording": "", "camera_info": camera, "model_3d_info": []}


SUBGRAPH_INPUT, SUBGRAPH_OUTPUT = -10, -20  # ids of a subgraph's input and output nodes in its links


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def _types_match(a, b) -> bool:
    """LiteGraph's isValidConnection: '*' and '' match anything, 'A,B' lists match any member."""
    a, b = ("" if t in ("*", None, 0) else str(t) for t in (a, b))
    if not a or not b or a == b:
        return True
    a, b = a.lower(), b.lower()
    if "," not in a and "," not in b:
        return a == b
    return any(_types_match(x, y) for x in a.split(",") for y in b.split(","))


def _links_of(graph: dict) -> dict:
    """id -> (origin_id, origin_slot, target_id, target_slot, type), from the list form of the root
    graph ([id, from, slot, to, slot, type]) or the object form of subgraphs. Native reroutes
    (``parentId``, ``extra.reroutes``) only change how a link is drawn, so they are not needed."""
    links = {}
    for link in graph.get("links") or []:
        if isinstance(link, dict):
            links[link["id"]] = (link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"],
                                 link.get("type"))
        elif isinstance(link, list) and len(link) >= 5:
            links[link[0]] = tuple(link[1:5]) + (link[5] if len(link) > 5 else None,)
    return links


class _Scope:
    """The root graph, or one instance of a subgraph (its nodes get ids ``instance:inner``)."""

    def __init__(self, conv: "_Converter", graph: dict, path: tuple = (), instance: dict | None = None,
                 parent: "_Scope | None" = None, definition: dict | None = None):
        self.conv, self.graph, self.path = conv, graph, path
        self.instance, self.parent, self.definition = instance, parent, definition
        self.nodes = {n["id"]: n for n in graph.get("nodes") or []}
        self.links = _links_of(graph)
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
    def child(self, node: dict) -> "_Scope":
        """The scope of a subgraph instance in this scope."""
        if node["id"] not in self.children:
            definition = self.conv.definitions[node["type"]]
            if any(s.definition is definition for s in self._ancestry()):
                raise WorkflowFormatError(f"{self.where(node)}: subgraph {definition.get('name')!r} contains itself")
            self.children[node["id"]] = _Scope(self.conv, definition, self.path + (str(node["id"]),), node, self,
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
                specs = _input_specs(info)
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
                spec = next((s for s in _input_specs(info) if s[0] == widget), None)
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
        if slot < len(inputs) and _types_match(inputs[slot].get("type"), out_type) and \
                _types_match(inputs[slot].get("type"), want_type):
            return slot
        exact = next((i for i, inp in enumerate(inputs) if inp.get("type") == want_type), -1)
        if exact >= 0:
            return exact
        return next((i for i, inp in enumerate(inputs) if _types_match(inp.get("type"), out_type)
                     and _types_match(inp.get("type"), want_type)), -1)

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


class _Converter:
    def __init__(self, ui: dict, object_info: dict, frontend_version=None):
        self.ui, self.object_info = ui, object_info
        definitions = [d for d in (ui.get("definitions") or {}).get("subgraphs") or []
                       if isinstance(d, dict) and "id" in d]
        if dedupes_subgraph_ids(frontend_version):
            definitions = _dedupe_node_ids(ui, definitions)
        version = _version(frontend_version)
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


# Frontend behaviours that changed (approximate versions, from the frontend's pull requests):
DEDUPE_SINCE = (1, 40, 0)  # colliding node ids inside subgraphs are renumbered on load (PR 8762, 9510)
SKIP_DISABLED_SINCE = (1, 39, 3)  # a muted/bypassed root subgraph instance sends none of its nodes (PR 8494)
# Promoted widgets of an instance keep their own values (a widget value store): a PrimitiveNode
# linked to the instance no longer reaches the widget inside. Seen on 1.49.6, not on 1.27.10; the
# version it changed in is a guess.
PROMOTED_STORE_SINCE = (1, 39, 0)
SORTED_DEFINITIONS_SINCE = (1, 40, 0)  # inner subgraph definitions are configured first (with PR 9510)


def _version(version) -> tuple | None:
    if version is None or isinstance(version, tuple):
        return version
    try:
        return tuple(int(p) for p in str(version).lstrip("v").split("-")[0].split(".")[:3])
    except ValueError:
        return None


def dedupes_subgraph_ids(frontend_version=None) -> bool:
    """Whether a frontend of this version gives nodes inside subgraphs whose ids collide with
    root nodes (or with an earlier subgraph's nodes) new ids when it loads a workflow. Unknown
    versions: as today's frontend does."""
    version = _version(frontend_version)
    return version is None or version >= DEDUPE_SINCE


def _dedupe_node_ids(ui: dict, definitions: list[dict]) -> list[dict]:
    """The frontend's renumbering, on copies: root ids are kept; a subgraph node whose id was seen
    before (in the root graph or an earlier definition) takes the next free id after the
    workflow's last node id, and the links of its subgraph follow."""
    used = {n["id"] for n in ui.get("nodes") or [] if isinstance(n.get("id"), int)}
    last = (ui.get("state") or {}).get("lastNodeId") if isinstance(ui.get("state"), dict) else None
    last = last if isinstance(last, int) else ui.get("last_node_id") if isinstance(ui.get("last_node_id"), int) else 0
    result = []
    for definition in definitions:
        remap = {}
        nodes = []
        for node in definition.get("nodes") or []:
            node_id = node.get("id")
            if isinstance(node_id, int) and node_id in used:
                while last + 1 in used:
                    last += 1
                last += 1
                remap[node_id] = last
                used.add(last)
                node = {**node, "id": last}
            elif isinstance(node_id, int):
                used.add(node_id)
                last = max(last, node_id)
            nodes.append(node)
        if remap:
            links = []
            for link in definition.get("links") or []:
                if isinstance(link, dict):
                    link = {**link, "origin_id": remap.get(link.get("origin_id"), link.get("origin_id")),
                            "target_id": remap.get(link.get("target_id"), link.get("target_id"))}
                links.append(link)
            definition = {**definition, "nodes": nodes, "links": links}
        result.append(definition)
    return result


def instance_inputs(instance: dict, definition: dict) -> list[dict]:
    """A subgraph instance's inputs in its saved order (links into the instance count slots in
    it), each matched to its definition's input (``slot``: that input's index) by name and type,
    then by name; inputs of the definition the saved instance lacks follow, unlinked."""
    sg_inputs = list(definition.get("inputs") or [])
    taken: set = set()
    result = []
    for saved in instance.get("inputs") or []:
        if not isinstance(saved, dict):
            continue
        name, kind = saved.get("name"), saved.get("type")
        slot = next((k for k, i in enumerate(sg_inputs) if k not in taken and i.get("name") == name
                     and i.get("type") == kind), None)
        if slot is None:
            slot = next((k for k, i in enumerate(sg_inputs) if k not in taken and i.get("name") == name), None)
        if slot is not None:
            taken.add(slot)
        result.append({"name": name, "type": kind, "link": saved.get("link"), "slot": slot})
    for k, sg_input in enumerate(sg_inputs):
        if k not in taken:
            result.append({"name": sg_input.get("name"), "type": sg_input.get("type"), "link": None, "slot": k})
    return result


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
    conv = _Converter(ui, object_info, frontend_version)
    prompt: dict[str, Any] = {}
    _Scope(conv, ui).emit(prompt)
    for node in prompt.values():  # inputs linked to dropped (muted) nodes go, as in the frontend
        for name in [n for n, v in node["inputs"].items() if _is_link(v) and v[0] not in prompt]:
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
        for name, kind, opts in _input_specs(info):
            value = node["inputs"].get(name)
            linked = isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            if is_widget(kind, opts):  # hidden widgets too: the frontend saves their values
                widgets.extend(_write_widgets(name, kind, opts, node["inputs"], linked))
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
    out = [value] + (["fixed"] if has_seed_control(prefix + name, kind, opts) else [])
    for sub, sub_kind, sub_opts in _option_specs(kind, opts, value):
        if is_widget(sub_kind, sub_opts):
            out += _write_widgets(sub, sub_kind, sub_opts, inputs, prefix=f"{prefix}{name}.")
    return out


def parse_value(text: str) -> Any:
    """A --set value: JSON when it parses (numbers, true/false, lists), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _override_matches(prompt: dict, node_ref: str) -> list[str]:
    """Node ids a --set NODE names: an id (``12:5`` inside subgraphs), a title, or a class type."""
    if node_ref in prompt:
        return [node_ref]
    return [nid for nid, n in prompt.items() if n.get("_meta", {}).get("title") == node_ref] or \
        [nid for nid, n in prompt.items() if n.get("class_type") == node_ref]


def apply_overrides(prompt: dict, overrides: list[str]) -> dict:
    """Apply ``NODE.INPUT=VALUE`` overrides; NODE is a node id (``12:5`` for node 5 inside the
    subgraph instance 12, as the frontend numbers them), a title, or a class type that occurs
    once. INPUT may itself hold dots (``SaveVideo.format.codec=h264``): the first split whose
    left part names a node is used."""
    for item in overrides:
        target, sep, raw = item.partition("=")
        splits = [(target[:i], target[i + 1:]) for i, c in enumerate(target) if c == "."]
        splits = [(ref, name) for ref, name in splits if ref and name]
        if not sep or not splits:
            raise WorkflowFormatError(f"--set {item!r}: expected NODE.INPUT=VALUE, e.g. KSampler.steps=4 or 3.seed=1")
        found = next(((ref, name, m) for ref, name in splits if (m := _override_matches(prompt, ref))), None)
        if found is None:
            node_ref = splits[-1][0]
            inner = sorted(nid for nid in prompt if nid.startswith(node_ref + ":"))
            hint = ""
            if inner:
                names = ", ".join(f"{nid} ({prompt[nid].get('_meta', {}).get('title') or prompt[nid]['class_type']})"
                                  for nid in inner[:12])
                hint = f"; {node_ref} is a subgraph, set an input of a node inside it: {names}"
            raise WorkflowFormatError(f"--set {item!r}: no node matches {node_ref!r}{hint}")
        node_ref, input_name, matches = found
        if len(matches) != 1:
            raise WorkflowFormatError(f"--set {item!r}: {len(matches)} nodes ({', '.join(matches)}) match "
                                      f"{node_ref!r}; use a node id instead")
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
