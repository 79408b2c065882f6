"""An API prompt checked against ``/object_info``, as ComfyUI's validation would, running nothing."""
from __future__ import annotations

from .newer_core_nodes import missing_core_node
from .widgets import input_specs

MATCH_TYPE = "COMFY_MATCHTYPE_V3"  # a V3 socket whose type is its template's (allowed_types), fixed by its link


def accepts(kind: str, opts: dict, given: str) -> bool:
    """Whether an input of type ``kind`` takes a link from an output of type ``given``: the same type,
    any type ("*"), a COMBO, a MatchType input's allowed types. A MatchType output has the type of
    what feeds its template, which only running tells, so it is not flagged."""
    if kind == MATCH_TYPE:
        allowed = str(((opts.get("template") or {}).get("allowed_types")) or "*").split(",")
        return "*" in allowed or given in allowed or given in ("*", MATCH_TYPE)
    return "*" in (kind, given) or kind == "COMBO" or given == MATCH_TYPE or given == kind


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
            newer = missing_core_node(node.get("class_type"))
            problems.append(f"node {nid}: unknown type {node.get('class_type')!r}" + (f": it {newer}" if newer else ""))
            continue
        required = set(info.get("input", {}).get("required", {}))
        for name, kind, opts in input_specs(info):
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
                elif not accepts(kind, opts, outs[value[1]]):
                    problems.append(f"node {nid}: input {name!r} wants {kind}, node {value[0]} gives {outs[value[1]]}")
            elif kind in ("INT", "FLOAT"):
                if "min" in opts and value < opts["min"] or "max" in opts and value > opts["max"]:
                    problems.append(f"node {nid}: {name}={value} is outside [{opts.get('min')}, {opts.get('max')}]")
            elif kind == "COMBO" and check_choices and opts.get("options") and value not in opts["options"]:
                problems.append(f"node {nid}: {name}={value!r} is not one of {opts['options'][:8]}")
    return problems
