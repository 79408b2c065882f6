"""The graph of a UI-format workflow: its links (list form in the root graph, object form in
subgraphs), node modes, the frontend-only nodes (reroutes, primitives, notes), the ids of a
subgraph's input and output nodes, LiteGraph's type matching, and a subgraph instance's inputs."""
from __future__ import annotations

# UI nodes that are frontend-only and never reach the server.
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
MUTED, BYPASSED = 2, 4
SUBGRAPH_INPUT, SUBGRAPH_OUTPUT = -10, -20  # ids of a subgraph's input and output nodes in its links


def is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def types_match(a, b) -> bool:
    """LiteGraph's isValidConnection: '*' and '' match anything, 'A,B' lists match any member."""
    a, b = ("" if t in ("*", None, 0) else str(t) for t in (a, b))
    if not a or not b or a == b:
        return True
    a, b = a.lower(), b.lower()
    if "," not in a and "," not in b:
        return a == b
    return any(types_match(x, y) for x in a.split(",") for y in b.split(","))


def links_of(graph: dict) -> dict:
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
