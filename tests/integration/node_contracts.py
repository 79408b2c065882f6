"""The public contract of the pack's nodes, as /object_info shows it: ids, input names, sections and
order, types and widget options, outputs and their order. Saved workflows depend on all of it.

``contract(entry)`` normalizes one /object_info entry so that the V1 and V3 spellings of the same
input compare equal (a V1 combo ``[[options], {...}]`` and a V3 ``["COMBO", {"options": [...]}]``).
The snapshots in ``data/node_contracts_<version>.json`` were taken from the V1 declarations before
the nodes became ``io.ComfyNode``s; a node added later (WanMaskContextWindows) as first declared.
Write a new one with
``python -m tests.integration.node_contracts OBJECT_INFO.json OUT.json``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
WIDGET_KEYS = ("default", "min", "max", "step", "multiline", "multiselect")


def widget(spec) -> dict:
    """One /object_info input spec as {type, options (combos), default, min, max, step, ...}."""
    kind, opts = spec[0], (spec[1] if len(spec) > 1 else {}) or {}
    out = {"type": "COMBO" if isinstance(kind, list) or kind == "COMBO" else kind}
    if out["type"] == "COMBO":
        out["options"] = list(kind) if isinstance(kind, list) else list(opts.get("options", []))
    for key in WIDGET_KEYS:
        if key in opts and not (key in ("multiselect", "multiline") and opts[key] is False):
            out[key] = opts[key]
    return out


def contract(entry: dict) -> dict:
    """Inputs (section, name, type, widget options) in order, outputs in order, output_node, lists."""
    order = entry.get("input_order") or {s: list(v) for s, v in entry["input"].items()}
    inputs = [{"section": section, "name": name, **widget(entry["input"][section][name])}
              for section in ("required", "optional") for name in order.get(section, [])]
    return {"inputs": inputs,
            "outputs": [{"type": t, "name": n, "is_list": bool(lst)} for t, n, lst in
                        zip(entry["output"], entry["output_name"], entry["output_is_list"])],
            "output_node": bool(entry.get("output_node")),
            "is_input_list": bool(entry.get("is_input_list"))}


def pack_contracts(object_info: dict) -> dict:
    """The contract of every node of the pack (ids starting WanMask, test helpers excluded)."""
    return {node_id: contract(entry) for node_id, entry in sorted(object_info.items())
            if node_id.startswith("WanMask") and not node_id.startswith(("WanMaskTest", "WanMaskDemo"))}


def snapshot_path(version: str) -> Path:
    return DATA / f"node_contracts_{version}.json"


if __name__ == "__main__":
    Path(sys.argv[2]).write_text(json.dumps(pack_contracts(json.loads(Path(sys.argv[1]).read_text())), indent=1) + "\n")
