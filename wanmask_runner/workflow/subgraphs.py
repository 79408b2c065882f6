"""Flattening a UI-format workflow to API nodes: the root graph and each subgraph instance as a
:class:`Scope` (inner nodes get the frontend's ids ``instance:inner``), nested instances as child
scopes. What a node's widgets hold is :class:`~.widget_values.WidgetValues`; where a link comes
from, :class:`~.link_sources.LinkSources`."""
from __future__ import annotations

from .errors import WorkflowFormatError
from .link_sources import LinkSources
from .links import BYPASSED, FRONTEND_ONLY, MUTED, instance_inputs, links_of
from .newer_core_nodes import missing_core_node
from .versions import (PROMOTED_STORE_SINCE, SKIP_DISABLED_SINCE, SORTED_DEFINITIONS_SINCE, dedupe_node_ids,
                       dedupes_subgraph_ids, parse_version)
from .widget_values import WidgetValues


class Scope(WidgetValues, LinkSources):
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
                newer = missing_core_node(kind)
                if newer:
                    why = newer
                elif looks_like_subgraph:
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

