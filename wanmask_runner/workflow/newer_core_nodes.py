"""ComfyUI's own node types that came after the versions the runner is tested with (0.3.64, 0.33.0):
a workflow saved on a newer ComfyUI can hold them, and a ComfyUI that lacks one should say which
ComfyUI has it rather than suggest a missing custom node pack. Whether the server has a type is
read from its ``/object_info`` (feature detection), never from its version.

Loop nodes, ``StartLoop`` / ``EndLoop`` (``comfy_extras/nodes_loop.py``; V3 ``Schema.loop_boundary``
"start" / "end", which ``execution.validate_prompt`` collects for ``validate_loops``), came with
"Implement Generic Loops" (Comfy-Org/ComfyUI PR #16227, merged September 2026), after 0.33.0
(2026-08-22). The official workflow templates that use them (comfyui-workflow-templates-json
0.1.123, index.json: ``video_wan_animate2``, ``image_ming_image_01_design_image_edit``) declare ``minComfyUIVersion``
0.36.0 and 0.38.0; every other node of the first one is in 0.33.0 except ``GetItemFromList``. The
first release that has them is therefore 0.36.0 at the latest; the public sources checked do not
say whether 0.34 or 0.35 had them.

How the frontend converts them: as ordinary nodes. In comfyui-frontend-package 1.58.1,
``graphToPrompt`` (``static/assets/app-sW8NrIg5.js``, ``var graphToPrompt=``) has no loop-specific
code: every node that is not virtual, muted or bypassed goes out with its widgets and resolved
links, like any other; no asset but the locale files (``nodeDefs-*.js``) names StartLoop, EndLoop,
``loop_boundary`` or ``_loop_body`` (a key StartLoop reads from the prompt as the server holds it). So
the conversion needs nothing for them where the server has them: StartLoop's ``mode`` is a dynamic
combo (``mode.num_iterations``, ...), EndLoop's ``terminations.terminationN`` sockets an autogrow
input, and their MatchType sockets plain links, as for any node.
"""
from __future__ import annotations

LOOP_NODES = ("ComfyUI's own loop node (Start Loop / End Loop, \"Implement Generic Loops\", ComfyUI PR #16227), "
              "added after ComfyUI 0.33.0: ComfyUI 0.36.0 and newer have it")
ADDED_AFTER_TESTED = {
    "StartLoop": LOOP_NODES,
    "EndLoop": LOOP_NODES,
    # In the same official templates as the loop nodes (minComfyUIVersion 0.36.0); not in 0.33.0.
    "GetItemFromList": "one of ComfyUI's own list nodes, added after ComfyUI 0.33.0: ComfyUI 0.36.0 and newer have it",
}


def missing_core_node(kind) -> str | None:
    """Why a ComfyUI lacks ``kind`` when it is one of ComfyUI's own newer nodes (which ComfyUI has it,
    and the fix); None for any other type."""
    what = ADDED_AFTER_TESTED.get(kind) if isinstance(kind, str) else None
    if what is None:
        return None
    return f"is {what}; this ComfyUI does not have it (update ComfyUI)"


def refusal_hint(error: dict | None) -> str | None:
    """For ComfyUI's refusal of an API prompt with a node type it does not have (0.33's
    "missing_node_type" names it in ``extra_info.class_type``; 0.3.64's "invalid_prompt" in its
    message): which ComfyUI has it, when it is one of ComfyUI's own newer nodes."""
    if not isinstance(error, dict) or error.get("type") not in ("missing_node_type", "invalid_prompt"):
        return None
    kind = (error.get("extra_info") or {}).get("class_type")
    text = f"{error.get('message', '')} {error.get('details', '')}".replace("'", " ").replace('"', " ").split()
    kind = kind or next((k for k in ADDED_AFTER_TESTED if k in text), None)
    why = missing_core_node(kind)
    return f"  type {kind!r} {why}" if why else None
