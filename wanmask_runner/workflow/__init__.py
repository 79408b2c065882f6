"""The runner's UI-format <-> API-format conversion, as ComfyUI's frontend does it.

- ``convert``: :func:`ui_to_api`, :func:`api_to_ui`, :func:`is_ui_format` (the entry points);
- ``subgraphs``: flattening the root graph and each subgraph instance (``instance:inner`` ids), with
  ``widget_values`` (saved values, PrimitiveNodes, promoted widgets) and ``link_sources`` (through
  reroutes, bypassed nodes and subgraph boundaries);
- ``links``: links, node modes, reroutes and primitives, a subgraph instance's inputs;
- ``widgets``: ``/object_info`` input specs and where each widget's value sits in ``widgets_values``;
- ``versions``: the frontend behaviours that changed between versions;
- ``overrides``: ``--set NODE.INPUT=VALUE`` (:func:`apply_overrides`);
- ``validate``: :func:`check_against_object_info`;
- ``newer_core_nodes``: ComfyUI's own node types that came after the tested versions (the loop nodes),
  and which ComfyUI has them;
- ``errors``: :class:`WorkflowFormatError`.
"""
