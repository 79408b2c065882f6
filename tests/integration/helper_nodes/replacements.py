"""Node replacements registered for the tests (ComfyUI 0.33+, where the server has a
``node_replace_manager``): retired test node types whose successors are core nodes, so a saved
workflow with them exercises an explicit mapping (old_widget_ids, set_value, output_mapping, an
input the mapping drops).

* ``WanMaskTestRetiredScale`` (inputs ``pixels`` IMAGE and ``mask`` MASK, widget ``factor``; outputs
  MASK then IMAGE) -> ``ImageScaleBy``: pixels -> image, factor -> scale_by, upscale_method set to
  "bicubic", old output 1 -> new output 0; ``mask`` is not mapped.
* ``WanMaskTestRetiredLatent`` (widgets ``w``, ``h``) -> ``EmptyLatentImage``: w -> width, h -> height
  (it runs on the CPU, for the runner's end-to-end test).
"""
NODE_CLASS_MAPPINGS: dict = {}

try:
    from comfy_api.latest import io
    from server import PromptServer

    _manager = getattr(PromptServer.instance, "node_replace_manager", None)
except Exception:  # ComfyUI 0.3.x: no node replacements
    _manager = None

if _manager is not None and hasattr(io, "NodeReplace"):
    _manager.register(io.NodeReplace(
        new_node_id="ImageScaleBy", old_node_id="WanMaskTestRetiredScale", old_widget_ids=["factor"],
        input_mapping=[{"new_id": "image", "old_id": "pixels"}, {"new_id": "scale_by", "old_id": "factor"},
                       {"new_id": "upscale_method", "set_value": "bicubic"}],
        output_mapping=[{"old_idx": 1, "new_idx": 0}]))
    _manager.register(io.NodeReplace(
        new_node_id="EmptyLatentImage", old_node_id="WanMaskTestRetiredLatent", old_widget_ids=["w", "h"],
        input_mapping=[{"new_id": "width", "old_id": "w"}, {"new_id": "height", "old_id": "h"}]))
