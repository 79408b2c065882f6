"""``--set NODE.INPUT=VALUE``: overrides of an API prompt's inputs."""
from __future__ import annotations

import json
from typing import Any

from .errors import WorkflowFormatError


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


def override_target(prompt: dict, item: str) -> tuple[str, str, object]:
    """(node id, input name, value) that one override sets, by the runner's own matching (raises
    WorkflowFormatError when it names no node, or several)."""
    skeleton = {nid: {"class_type": n.get("class_type"), "_meta": n.get("_meta", {}), "inputs": {}}
                for nid, n in prompt.items()}
    apply_overrides(skeleton, [item])
    nid = next(nid for nid, n in skeleton.items() if n["inputs"])
    (name, value), = skeleton[nid]["inputs"].items()
    return nid, name, value
