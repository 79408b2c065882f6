"""The frontend behaviours that changed between versions, and the renumbering of colliding node
ids inside subgraphs that today's frontend does when it loads a workflow."""
from __future__ import annotations

# Frontend behaviours that changed (approximate versions, from the frontend's pull requests):
DEDUPE_SINCE = (1, 40, 0)  # colliding node ids inside subgraphs are renumbered on load (PR 8762, 9510)
SKIP_DISABLED_SINCE = (1, 39, 3)  # a muted/bypassed root subgraph instance sends none of its nodes (PR 8494)
# Promoted widgets of an instance keep their own values (a widget value store): a PrimitiveNode
# linked to the instance no longer reaches the widget inside. Seen on 1.49.6, not on 1.27.10; the
# version it changed in is a guess.
PROMOTED_STORE_SINCE = (1, 39, 0)
SORTED_DEFINITIONS_SINCE = (1, 40, 0)  # inner subgraph definitions are configured first (with PR 9510)


def parse_version(version) -> tuple | None:
    """A frontend version ("1.27.10", "v1.40.0-rc1", or a tuple) as (major, minor, patch); None when unknown."""
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
    version = parse_version(frontend_version)
    return version is None or version >= DEDUPE_SINCE


def dedupe_node_ids(ui: dict, definitions: list[dict]) -> list[dict]:
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

