"""Where a link into a node comes from while a workflow is flattened: through reroutes, bypassed
nodes and subgraph boundaries, to a node's output or a value. A part of :class:`~.subgraphs.Scope`,
which gives it ``nodes``, ``definition``, ``parent``, ``instance``, ``by_slot`` and the structure
methods it uses."""
from __future__ import annotations

from .errors import WorkflowFormatError
from .links import BYPASSED, FRONTEND_ONLY, MUTED, SUBGRAPH_INPUT, types_match


class LinkSources:
    """What the links of a :class:`~.subgraphs.Scope` carry."""

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
