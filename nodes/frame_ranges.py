"""Frame-range nodes used around the embed builders: WanMaskTemporal (a keep/generate MASK from pixel
frame ranges) and WanMaskTrimLatent (drops latent frames from the start and/or end of a sampled latent).
The math lives in ``wan/temporal.py`` and ``wan/latents.py``."""
from __future__ import annotations

from comfy_api.latest import io

from .inputs import MAX_RES, category, first_error, schema, within
from ..masking import conventions
from ..wan.frames import parse_ranges
from ..wan.latents import trim_video_latent
from ..wan.temporal import temporal_mask


class WanMaskTemporal(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="WanMaskTemporal",
            display_name="Wan Mask Temporal (keep frame ranges)",
            category=category("embeds"),
            search_aliases=["frame mask", "keep frames", "temporal mask", "extend video"],
            description="A temporal MASK [F,H,W] from frame ranges to keep: 0 on kept frames, 1 (generate) "
                        "elsewhere. For extension, loop and keyframe workflows.",
            inputs=[
                io.Int.Input("length", default=81, min=1, max=MAX_RES, step=4, tooltip="Pixel frames F."),
                io.Int.Input("width", default=832, min=1, max=MAX_RES, step=8, tooltip="Mask width."),
                io.Int.Input("height", default=480, min=1, max=MAX_RES, step=8, tooltip="Mask height."),
                io.String.Input("keep", default="0-0", tooltip=
                    "Pixel frames to keep (mask 0), inclusive ranges: e.g. '0-0, 77-80' or '0-15'; single frames "
                    "'40'; negative bounds from the end as 'a:b', e.g. '-4:-1'. Everything else is 1 = generate."),
            ],
            outputs=[io.Mask.Output(display_name="mask", tooltip=
                f"[F,H,W]: {conventions.NOISE_MASK}. For VACE control_masks this is 1 = reactive.")],
        )

    @classmethod
    def validate_inputs(cls, length=None, keep=None):
        return first_error(lambda: within("length", length, 1, MAX_RES),
                           lambda: parse_ranges(keep, length) if keep and length else None)

    @classmethod
    def execute(cls, length, width, height, keep) -> io.NodeOutput:
        return io.NodeOutput(temporal_mask(length, height, width, keep))


class WanMaskTrimLatent(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="WanMaskTrimLatent",
            display_name="Wan Mask Trim Latent (start/end)",
            category=category("latent"),
            search_aliases=["trim video latent", "drop reference frame"],
            description="Drops latent frames from the start (reference frames: trim_latent of the VACE/Animate "
                        "embeds) and/or the end (a separately encoded end image: trim_end_latent of the I2V "
                        "embeds) before decoding. The noise mask, if any, is trimmed with it.",
            inputs=[
                io.Latent.Input("samples", tooltip="Sampled Wan video latent [B,C,T,h,w]."),
                io.Int.Input("trim_start", default=0, min=0, max=99999, tooltip="Latent frames to drop at the start."),
                io.Int.Input("trim_end", default=0, min=0, max=99999, tooltip="Latent frames to drop at the end."),
            ],
            outputs=[io.Latent.Output(tooltip="The latent without the dropped frames (noise mask trimmed with it).")],
        )

    @classmethod
    def execute(cls, samples, trim_start, trim_end) -> io.NodeOutput:
        return io.NodeOutput(trim_video_latent(samples, trim_start, trim_end))
