"""Shared pieces of the pack's node schemas (V3 ``io.ComfyNode``): input factories used by more
than one node, the ``advanced`` flag where this ComfyUI has it, and node categories placed beside
the native Wan nodes.

Feature detection only: ``advanced`` inputs (expert options the frontend folds away) and
``search_aliases`` are declared the way the running ``comfy_api`` accepts them, and left out where
it has no way to say them.
"""
from __future__ import annotations

import dataclasses
import inspect

import nodes as comfy_nodes
from comfy_api.latest import io

from . import comfy_compat as compat
from ..masking.geometry import WAN21
from ..wan.frames import check_length

MAX_RES = comfy_nodes.MAX_RESOLUTION


def _accepts(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def expert(inp: io.Input) -> io.Input:
    """Mark an expert option, which the frontend folds away: ``advanced`` where this comfy_api has the
    flag, else the same key in the input's extra options (as older ComfyUI's own V1 nodes give it)."""
    if _accepts(type(inp).__init__, "advanced"):
        inp.advanced = True
    elif isinstance(getattr(inp, "extra_dict", None), dict):
        inp.extra_dict = {**inp.extra_dict, "advanced": True}
    return inp


_SCHEMA_FIELDS = {f.name for f in dataclasses.fields(io.Schema)}


def schema(*, search_aliases: list[str] | None = None, **fields) -> io.Schema:
    """``io.Schema(**fields)``, with ``search_aliases`` where this ComfyUI's schema has them."""
    if search_aliases and "search_aliases" in _SCHEMA_FIELDS:
        fields["search_aliases"] = search_aliases
    return io.Schema(**fields)


# Where the pack's nodes sit in the node library: beside the native node of the same kind, in a
# "wan masking" folder (0.33: model/conditioning/wan/masking; 0.3.64: conditioning/video_models/wan masking).
_BESIDE = {
    "embeds": ("WanImageToVideo", "conditioning/video_models"),
    "latent": ("SetLatentNoiseMask", "latent/inpaint"),
    "vae_loader": ("VAELoader", "loaders"),
    "vae": ("VAEDecode", "latent"),
    "sampler": ("KSampler", "sampling"),
    "training": ("TrainLoraNode", "training"),
    "context": ("WanContextWindowsManual", "context"),
}


def category(kind: str) -> str:
    native_id, fallback = _BESIDE[kind]
    parent = compat.native_category(native_id) or fallback
    return f"{parent}/masking" if parent.rstrip("/").endswith("wan") else f"{parent}/wan masking"


# ---- input factories ---------------------------------------------------------------------------

_SIZE_TIP = ("Pixel {} of the video; a multiple of 16 (32 for the Wan 2.2 5B VAE). Images of another size are "
             "center-cropped and resized, with a warning.")
LENGTH_TIP = "Pixel frames, 1+4k (e.g. 17, 49, 81). Other counts are refused: the Wan VAE would drop frames."


def video_inputs(length_default: int = 81) -> list[io.Input]:
    """positive, negative, vae, width, height, length, batch_size: the inputs every embeds node opens with."""
    return [
        io.Conditioning.Input("positive", tooltip="Text conditioning; the embeds are added to it."),
        io.Conditioning.Input("negative", tooltip="Negative text conditioning; gets the same embeds."),
        io.Vae.Input("vae", tooltip="The Wan VAE of the model (Wan 2.1 16 ch, or Wan 2.2 5B 48 ch)."),
        io.Int.Input("width", default=832, min=16, max=MAX_RES, step=16, tooltip=_SIZE_TIP.format("width")),
        io.Int.Input("height", default=480, min=16, max=MAX_RES, step=16, tooltip=_SIZE_TIP.format("height")),
        io.Int.Input("length", default=length_default, min=1, max=MAX_RES, step=4, tooltip=LENGTH_TIP),
        io.Int.Input("batch_size", default=1, min=1, max=4096, tooltip="Latent batch size."),
    ]


def embeds_outputs(positive: str, negative: str, latent: str) -> list[io.Output]:
    """positive, negative, latent: the outputs every embeds node opens with (tooltips given)."""
    return [io.Conditioning.Output(display_name="positive", tooltip=positive),
            io.Conditioning.Output(display_name="negative", tooltip=negative),
            io.Latent.Output(display_name="latent", tooltip=latent)]


def tiling_inputs() -> list[io.Input]:
    """tile_size, overlap, temporal_chunk of the streaming VAE's decode and encode."""
    return [
        io.Int.Input("tile_size", default=0, min=0, max=4096, step=16, tooltip=
            "Spatial tile size in pixels (0 = no tiling). Each tile keeps its own causal cache for the whole "
            "clip, so tiles never flicker in time. Multiple of 8 (Wan 2.1) or 16 (Wan 2.2)."),
        expert(io.Int.Input("overlap", default=64, min=0, max=1024, step=16, tooltip=
            "Feathered overlap between tiles in pixels (linear blend). Multiple of 8 / 16.")),
        expert(io.Int.Input("temporal_chunk", default=1, min=1, max=64, tooltip=
            "Latent frames per model call after frame 0 (1 = upstream streaming, flat memory). "
            "Larger can be faster on big GPUs; memory grows with it. Results are the same.")),
    ]


PRECISIONS = ["auto", "bf16", "fp16", "fp32"]


def precision_input(name: str, tooltip: str) -> io.Input:
    return io.Combo.Input(name, options=PRECISIONS, default="auto", tooltip=tooltip)


# ---- validate_inputs helpers -------------------------------------------------------------------
# ComfyUI skips its own min/max and option checks for the inputs a validate_inputs names, so the
# validators below repeat them for those inputs. A linked input arrives as None and is checked when
# the node runs.

def within(name: str, value, lo, hi) -> None:
    """ValueError unless lo <= value <= hi (the widget's own bounds)."""
    if value is not None and not lo <= value <= hi:
        raise ValueError(f"{name}: {value} is outside {lo}..{hi}.")


def check_pixel_length(length, name: str = "length") -> None:
    """ValueError unless a pixel-frame count is within its widget's bounds and 1+4k (the same rule for
    every Wan VAE). None (a linked input) is checked when the node runs."""
    if length is not None:
        within(name, length, 1, MAX_RES)
        check_length(length, WAN21, name)


def first_error(*checks) -> bool | str:
    """Run each zero-argument check in turn: True when none raises, else the first ValueError's message."""
    try:
        for check in checks:
            check()
    except ValueError as e:
        return str(e)
    return True


def check_choices(cls: type[io.ComfyNode], **values) -> None:
    """ValueError unless each given value is one of its combo input's options in ``cls``'s schema.

    ComfyUI 0.3.64 checks V1 combo lists at /prompt but not V3 ``COMBO`` inputs, so without this a
    bad choice there would only fail when the node runs; 0.33 checks both (and skips its own check
    for the inputs a validate_inputs names, which this repeats)."""
    options = {i.id: list(getattr(i, "options", None) or []) for i in cls.define_schema().inputs}
    for name, value in values.items():
        if value is not None and options.get(name) and value not in options[name]:
            shown = options[name] if len(options[name]) <= 20 else f"{len(options[name])} choices"
            raise ValueError(f"{name}: {value!r} is not one of {shown}. Fix: pick one of the listed values.")


def check_widgets(cls: type[io.ComfyNode], values: dict) -> None:
    """ValueError for the first widget value outside its input's options or bounds in ``cls``'s
    schema: the checks ComfyUI itself skips for a node whose validate_inputs takes ``**kwargs``.
    A list value (a node with ``is_input_list``) is checked item by item; None (a link) is skipped."""
    for inp in cls.define_schema().inputs:
        raw = values.get(inp.id)
        for value in raw if isinstance(raw, list) else [raw]:
            if value is None or isinstance(value, (list, dict)):
                continue
            options = list(getattr(inp, "options", None) or [])
            if options and value not in options:
                check_choices(cls, **{inp.id: value})
            lo, hi = getattr(inp, "min", None), getattr(inp, "max", None)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and (lo is not None or hi is not None):
                within(inp.id, value, lo if lo is not None else value, hi if hi is not None else value)
