"""Wan VAE nodes: WanMaskVAELoader, WanMaskVAEDecode, WanMaskVAEEncode.

The loader returns a regular ComfyUI ``VAE`` (comfy.sd.VAE) whose ``first_stage_model`` is this
pack's streaming Wan VAE, so native VAEDecode / VAEEncode / WanImageToVideo and every node that
calls ``vae.encode`` / ``vae.decode`` stream through it.
"""
from __future__ import annotations

import logging

import folder_paths
import torch
from comfy_api.latest import io

from . import comfy_compat as compat
from .inputs import category, check_choices, first_error, precision_input, schema, tiling_inputs
from ..vae.base import DTYPES, WanVAEBase
from ..vae.image_conversion import image_to_video, video_to_image
from ..vae.loading import build_wan_vae
from ..vae.stream import StreamOptions

log = logging.getLogger("WanMasking")
_ATTR = "_wanmask_streaming_vae"


def _progress_callback():
    """A ``progress(done, total)`` that drives one ComfyUI ProgressBar per run."""
    state = {}

    def progress(done, total):
        if done == 0 or "bar" not in state:
            state["bar"] = compat.progress_bar(total)
        state["bar"].update_absolute(done, total)

    return progress


def _resolve(name: str, device: torch.device, for_decode: bool) -> torch.dtype:
    if name != "auto":
        return DTYPES[name]
    if for_decode and device.type == "cuda" and compat.should_use_bf16(device):
        return torch.bfloat16
    return torch.float32


def attach_streaming_model(vae, model: WanVAEBase, decode_precision="auto", encode_precision="auto",
                           cache_offload=False):
    """Make ``vae`` (a comfy.sd.VAE) run ``model`` for every encode/decode and manage it with a ModelPatcher."""
    dec = _resolve(decode_precision, compat.vae_device(vae), True)
    enc = _resolve(encode_precision, compat.vae_device(vae), False)
    model.set_precision(enc, dec)
    model.options = StreamOptions(offload=bool(cache_offload), progress=_progress_callback(),
                                  check_interrupt=compat.throw_if_interrupted,
                                  output_device=compat.intermediate_device())
    compat.wire_vae(vae, model, decode_dtype=dec, encode_dtype=enc)
    compat.remember(vae, _ATTR, vae)
    log.info("WanMasking VAE: %s, encode %s, decode %s, cache offload %s", type(model).__name__,
             str(enc).replace("torch.", ""), str(dec).replace("torch.", ""), bool(cache_offload))
    return vae


def streaming_vae(vae):
    """The streaming version of ``vae``: itself when it came from WanMaskVAELoader, else a converted
    copy (made once, kept on the VAE object) for a native Wan VAE."""
    if isinstance(compat.vae_model(vae), WanVAEBase):
        return vae
    cached = compat.remembered(vae, _ATTR)
    if cached is not None:
        return cached
    model = build_wan_vae(compat.native_vae_weights(vae), name="vae")
    dtype_name = {v: k for k, v in DTYPES.items()}.get(compat.vae_dtype(vae), "fp32")
    streaming = attach_streaming_model(compat.copy_vae(vae), model, dtype_name, dtype_name, False)
    compat.remember(vae, _ATTR, streaming)
    return streaming


def _working_set(svae, kind: str, shape, **options) -> int:
    """The traced working set of one decode/encode with these options. A shape the model cannot take
    (the call right after raises the clear error) gets ComfyUI's own estimate instead."""
    try:
        return getattr(compat.vae_model(svae), f"{kind}_working_set")(shape, **options)
    except Exception:  # noqa: BLE001 - the decode/encode itself reports bad input
        return compat.native_memory_estimate(svae, kind, shape)


class WanMaskVAELoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="WanMaskVAELoader",
            display_name="Wan VAE Loader (streaming, causal)",
            category=category("vae_loader"),
            search_aliases=["load vae", "wan vae", "streaming vae", "low memory vae"],
            description="Loads a Wan 2.1 (16-ch) or Wan 2.2 5B (48-ch) VAE from the vae folder as a ComfyUI VAE "
                        "that streams: one latent frame at a time with the causal cache, finished frames moved off "
                        "the GPU. Native VAEDecode, VAEEncode and WanImageToVideo use it unchanged. Unlike native, "
                        "a pixel clip whose frame count is not 1+4k raises an error instead of silently dropping "
                        "frames.",
            inputs=[
                io.Combo.Input("vae_name", options=folder_paths.get_filename_list("vae"), tooltip=
                    "An official Wan VAE file (wan_2.1_vae.safetensors or wan2.2_vae.safetensors), identified by "
                    "its keys and shapes; any other VAE is refused, naming what it is."),
                precision_input("decode_precision",
                    "Decoder precision. auto: bf16 on a GPU that supports it (fine for decoding), else fp32. "
                    "fp16 can overflow; that is detected and reported."),
                precision_input("encode_precision",
                    "Encoder precision. auto: fp32 (bf16 encoding measurably hurts latents)."),
                io.Boolean.Input("cache_offload", default=False, tooltip=
                    "Keep the causal feature cache in pinned CPU memory, copied back ahead of use on a side "
                    "CUDA stream (saves several GB at 720p). No effect on results."),
            ],
            outputs=[io.Vae.Output(tooltip="A ComfyUI VAE that streams through this pack's causal Wan VAE.")],
        )

    @classmethod
    def validate_inputs(cls, vae_name=None, decode_precision=None, encode_precision=None):
        return first_error(lambda: check_choices(cls, vae_name=vae_name, decode_precision=decode_precision, encode_precision=encode_precision))

    @classmethod
    def execute(cls, vae_name, decode_precision, encode_precision, cache_offload) -> io.NodeOutput:
        sd, metadata = compat.read_vae_file(vae_name)
        # this pack's identification first, on every ComfyUI: native's error for a non-Wan file names
        # checkpoints, and newer ComfyUI tells Wan from other Wan-layout VAEs by its own rules
        model = build_wan_vae(sd, name=f"vae_name ({vae_name})")
        vae = compat.native_vae(sd, metadata)  # native attributes: ratios, latent format, devices
        return io.NodeOutput(attach_streaming_model(vae, model, decode_precision, encode_precision, cache_offload))


class WanMaskVAEDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="WanMaskVAEDecode",
            display_name="Wan VAE Decode (streaming, tiled)",
            category=category("vae"),
            search_aliases=["vae decode", "tiled decode", "decode video", "low memory decode"],
            description="Decodes a Wan latent with the streaming causal VAE, with explicit spatial tiling and "
                        "temporal chunking. Accepts the VAE from WanMaskVAELoader or a native Wan VAE (converted "
                        "once). Output: 1+4(T-1) frames per latent, like native VAEDecode.",
            inputs=[
                io.Latent.Input("samples", tooltip="Wan video latent [B,C,T,h,w]: 16 ch for Wan 2.1, 48 ch for Wan 2.2 5B."),
                io.Vae.Input("vae", tooltip="A Wan VAE (WanMaskVAELoader, or native VAELoader)."),
                *tiling_inputs(),
            ],
            outputs=[io.Image.Output(tooltip="The decoded frames [B*(1+4(T-1)), H, W, 3] in [0, 1].")],
        )

    @classmethod
    def execute(cls, samples, vae, tile_size, overlap, temporal_chunk) -> io.NodeOutput:
        svae = streaming_vae(vae)
        z = samples["samples"]
        model = compat.vae_model(svae)
        # ComfyUI frees memory for the working set of this decode, with this node's tiling and chunking
        compat.load_vae_for(svae, _working_set(svae, "decode", z.shape, tile=tile_size, overlap=overlap,
                                               temporal_chunk=temporal_chunk))
        video = model.decode(z, tile=tile_size, overlap=overlap, temporal_chunk=temporal_chunk,
                                              progress=_progress_callback(),
                                              output_device=compat.intermediate_device())
        return io.NodeOutput(video_to_image(video))


class WanMaskVAEEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="WanMaskVAEEncode",
            display_name="Wan VAE Encode (streaming, tiled)",
            category=category("vae"),
            search_aliases=["vae encode", "tiled encode", "encode video"],
            description="Encodes frames with the streaming causal VAE (frame 0, then groups of 4), with explicit "
                        "spatial tiling and temporal chunking. The frame count must be 1+4k: choose 'pad' to "
                        "repeat the last frame (with a warning) instead of an error. Pixels in IMAGE space [0, 1].",
            inputs=[
                io.Image.Input("pixels", tooltip="RGB frames [F,H,W,3] in [0,1]; F = 1+4k; H, W multiples of 8 "
                                                 "(Wan 2.1) or 16 (Wan 2.2)."),
                io.Vae.Input("vae", tooltip="A Wan VAE (WanMaskVAELoader, or native VAELoader)."),
                *tiling_inputs(),
                io.Combo.Input("frame_count", options=["error", "pad"], default="error", tooltip=
                    "When the frame count is not 1+4k: error (default), or pad by repeating the last frame up to "
                    "the next 1+4k (logged; trim after decoding). Native VAEEncode silently drops the extra "
                    "frames."),
            ],
            outputs=[io.Latent.Output(tooltip="The Wan video latent [1, C, T, h, w].")],
        )

    @classmethod
    def validate_inputs(cls, frame_count=None):
        return first_error(lambda: check_choices(cls, frame_count=frame_count))

    @classmethod
    def execute(cls, pixels, vae, tile_size, overlap, temporal_chunk, frame_count) -> io.NodeOutput:
        svae = streaming_vae(vae)
        x = image_to_video(pixels)
        model = compat.vae_model(svae)
        compat.load_vae_for(svae, _working_set(svae, "encode", x.shape, tile=tile_size, overlap=overlap,
                                               temporal_chunk=temporal_chunk, pad_frames=frame_count == "pad"))
        z = model.encode(x, tile=tile_size, overlap=overlap, temporal_chunk=temporal_chunk,
                                          pad_frames=frame_count == "pad", progress=_progress_callback(),
                                          output_device=compat.intermediate_device())
        return io.NodeOutput({"samples": z})
