"""Pieces of UI-format workflows, in the frontend's own saved shape: nodes and links."""
from __future__ import annotations


def node(nid, kind, inputs=(), outputs=(), widgets=(), mode=0, title=None, pos=(0, 0)):
    """A UI node; inputs: (name, type, link[, widget name]); outputs: (name, type, [link ids])."""
    n = {"id": nid, "type": kind, "pos": list(pos), "size": [300, 110], "flags": {}, "order": 0, "mode": mode,
         "inputs": [{"name": i[0], "type": i[1], "link": i[2], **({"widget": {"name": i[3]}} if len(i) > 3 else {})}
                    for i in inputs],
         "outputs": [{"name": o[0], "type": o[1], "links": list(o[2])} for o in outputs],
         "properties": {"Node name for S&R": kind}, "widgets_values": list(widgets)}
    if title:
        n["title"] = title
    return n


def link(lid, src, slot, dst, dst_slot, kind, parent=None):
    """A UI link (object form, as in subgraphs and the root graph's ``links`` of newer frontends);
    ``parent``: the reroute it passes through."""
    out = {"id": lid, "origin_id": src, "origin_slot": slot, "target_id": dst, "target_slot": dst_slot, "type": kind}
    if parent is not None:
        out["parentId"] = parent
    return out
