"""Context windows that every Wan mask follows: WanMaskContextWindows.

The inputs are native ``WanContextWindowsManual``'s, as the running ComfyUI declares them (same
schedules, fuse methods, units and defaults), plus ``given_frames_as_guides``. The per-window math
lives in ``wan/context_windows.py``; the context handler protocol in the compatibility module.
"""
from __future__ import annotations

import logging

from comfy_api.latest import io

from . import comfy_compat as compat
from .inputs import category, schema
from ..wan.context_windows import WanWindowing

log = logging.getLogger("WanMasking")

GUIDES_TIP = (
    "EXPERIMENTAL. Off (default): every per-frame conditioning is sliced to exactly the window's frames, so a "
    "given frame (start, end, keyframe, VACE reference, Animate motion frames) conditions only the windows that "
    "contain it. On: each window also sees every given frame it lacks, appended after its own frames with its "
    "conditioning (its 'given' concat-mask slots, 1 - concat_mask = 1) and the current latent at its position; "
    "those outputs are dropped before fusing (as ComfyUI 0.33 does for LTXV guide frames).")


class WanMaskContextWindows(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        native = compat.native_wan_context_windows_schema()
        return schema(
            node_id="WanMaskContextWindows",
            display_name="Wan Mask Context Windows",
            category=category("context"),
            search_aliases=["context windows", "long video", "sliding window", "wan context"],
            description=(
                "Native WanContextWindowsManual (same inputs, schedules and fuse methods) for which every Wan "
                "conditioning follows the window: the I2V concat image and mask, the VACE context and mask, "
                "Animate's pose and face, each sliced on its own time axis with exactly the window's frames "
                "(anchor included). The noise mask is applied to the whole latent outside the windows. "
                "Optionally, the given frames are put into every window as guides."),
            inputs=[*native.inputs, io.Boolean.Input("given_frames_as_guides", default=False, tooltip=GUIDES_TIP)],
            outputs=[io.Model.Output(tooltip="A clone of the model that samples in these context windows.")],
        )

    @classmethod
    def execute(cls, model, given_frames_as_guides: bool = False, **native_inputs) -> io.NodeOutput:
        native = compat.native_wan_context_handler(**native_inputs)
        settings = compat.context_handler_settings(native)
        windowing = WanWindowing(guides=given_frames_as_guides, dim=native.dim, **settings)
        if given_frames_as_guides:
            log.warning("WanMaskContextWindows: given_frames_as_guides is experimental; every window also sees the "
                        "clip's given frames.")
        return io.NodeOutput(compat.install_context_windows(model, native, windowing))
