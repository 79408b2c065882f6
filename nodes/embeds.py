"""Model-mask (embed builder) nodes: WanMaskI2VEmbeds, WanMaskVaceEmbeds and WanMaskAnimateEmbeds.

They output native CONDITIONING and LATENT, so the native KSampler and Wan models use them. The
math lives in ``wan/``; these declarations wrap the ComfyUI VAE into an ``encode`` callable, add the
results to the conditioning and hook up progress and interrupts.
"""
from __future__ import annotations

import functools
import logging

import comfy.clip_vision
import node_helpers
from comfy_api.latest import io

from . import comfy_compat as compat
from .inputs import (
    category, check_choices, check_pixel_length, embeds_outputs, expert, first_error, schema, video_inputs,
)
from ..masking import conventions
from ..masking.geometry import WAN21, geometry_for_channels
from ..wan.animate import build_animate_embeds
from ..wan.frames import parse_indices
from ..wan.i2v import MAX_TRAINED_LATENT_FRAMES, NULL_FILLS, build_i2v_embeds, join_clip_vision_tokens
from ..wan.latents import empty_video_latent
from ..wan.vace import build_vace_embeds

log = logging.getLogger("WanMasking")


@functools.cache
def note_native_animate_placement() -> int | None:
    """Once per process, when a character mask is used: say where this ComfyUI's native WanAnimateToVideo
    puts the mask (probed, :func:`comfy_compat.native_animate_mask_slot_shift`) when it differs from this
    pack (frame 0 in slots 0-3, frame f in slot f+3). Returns the probed shift."""
    shift = compat.native_animate_mask_slot_shift()
    if shift == compat.ANIMATE_SLOT_SHIFT_SAME_SLOT:
        log.warning("WanMaskAnimateEmbeds: this ComfyUI's native WanAnimateToVideo writes character-mask frame f "
                    "to concat-mask slot f (about 3 frames early); this node writes it to slot f+3 (frame 0 to "
                    "slots 0-3), as upstream Wan-Animate and native ComfyUI after PR #16406 do. Results differ "
                    "from this version's native node where the mask moves.")
    elif shift is None:
        log.info("WanMaskAnimateEmbeds: the character-mask placement of native WanAnimateToVideo could not be "
                 "probed; this node writes frame f to slot f+3 (frame 0 to slots 0-3).")
    return shift


class _EncodeProgress:
    """Progress bar + interrupt check handed to the core as ``should_stop``: one step per VAE encode the
    builder may run, so the bar's length is that builder's most encodes."""

    def __init__(self, encodes: int):
        self.bar = compat.progress_bar(encodes)

    @classmethod
    def i2v(cls) -> "_EncodeProgress":
        return cls(encodes=2)  # the clip, and end_image when it is its own latent frame

    @classmethod
    def vace(cls) -> "_EncodeProgress":
        return cls(encodes=3)  # the inactive frames, the reactive frames and reference_image

    @classmethod
    def animate(cls) -> "_EncodeProgress":
        return cls(encodes=3)  # reference_image, the background clip and pose_video

    def __call__(self):
        compat.throw_if_interrupted()
        self.bar.update(1)


def _encoder(vae):
    def encode(pixels):
        compat.throw_if_interrupted()
        return vae.encode(pixels)
    return encode


def _empty_latent(batch_size, channels, frames, h, w) -> dict:
    return empty_video_latent(batch_size, channels, frames, h, w, compat.intermediate_device())


def _set(positive, negative, values, negative_values=None, append=False):
    return (node_helpers.conditioning_set_values(positive, values, append=append),
            node_helpers.conditioning_set_values(negative, negative_values or values, append=append))


class WanMaskI2VEmbeds(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="WanMaskI2VEmbeds",
            display_name="Wan Mask I2V / First-Last / Keyframe Embeds",
            category=category("embeds"),
            search_aliases=["image to video", "first last frame", "keyframes", "flf2v", "i2v"],
            description="Wan I2V / first-last-frame / keyframe conditioning for 36-channel I2V and FLF2V models. "
                        "Known frames (start, end, keyframes at any pixel frame) each mark exactly their own slot "
                        "of the causal layout (frame 0 fills slots 0..3, frame f sits in slot f+3). "
                        f"concat_mask: {conventions.NATIVE_CONCAT_MASK}.",
            inputs=[
                *video_inputs(),
                io.Boolean.Input("fun_or_fl2v_model", default=True, tooltip=
                    "On (official FLF2V, Fun-InP, Wan 2.2): the end image is the last pixel frame and the whole "
                    "clip is encoded at once (= native WanFirstLastFrameToVideo). Off (plain Wan 2.1 I2V): the "
                    "end image is encoded alone as one extra latent frame after the clip, to be dropped after "
                    "sampling with WanMaskTrimLatent (trim_end = trim_end_latent); length must stay <= "
                    f"{WAN21.pixel_frames(MAX_TRAINED_LATENT_FRAMES - 1)}."),
                io.Combo.Input("null_fill", options=list(NULL_FILLS), default="gray", tooltip=
                    f"Pixels of unknown frames before encoding: gray = {conventions.FILL_GRAY} (native ComfyUI; "
                    f"0 in the VAE's [-1,1] input), black = {conventions.FILL_BLACK} (WanVideoWrapper; -1 in the "
                    "VAE input)."),
                expert(io.Float.Input("latent_strength", default=1.0, min=0.0, max=10.0, step=0.01, tooltip=
                    "Scales the latent frames holding a known frame toward the empty latent (1.0 = as encoded, "
                    "as native; ~0.95 can soften a hard end frame).")),
                io.Image.Input("start_image", optional=True, tooltip="Frames 0..n-1 of the clip (n = its frame count)."),
                io.Image.Input("end_image", optional=True, tooltip="The last frame(s) of the clip (see fun_or_fl2v_model)."),
                io.Image.Input("keyframes", optional=True, tooltip=
                    "Images placed at the pixel frames in keyframe_indices (one each)."),
                io.String.Input("keyframe_indices", optional=True, default="", tooltip=
                    "Comma-separated pixel frame index per keyframe image, e.g. '0, 40, 80'; negative counts "
                    "from the end (-1 = last frame). Must be inside the clip."),
                io.ClipVisionOutput.Input("clip_vision_output", optional=True, tooltip=
                    "CLIP vision features for models with img_emb (of the start image for first-last-frame)."),
                expert(io.Boolean.Input("keep_given_latents", optional=True, default=False, tooltip=
                    "Off (native): the latent is empty and the model alone reproduces the given frames. On: the "
                    "latent holds the encoded frames with a noise_mask (1 = regenerate, 0 = keep) that keeps the "
                    "latent frames whose four slots are all given (e.g. latent 0 of a start image), so they come "
                    "back exactly.")),
                io.ClipVisionOutput.Input("clip_vision_end_output", optional=True, tooltip=
                    "First-last-frame (FLF2V): CLIP vision features of the end image. Its tokens follow "
                    "clip_vision_output's, as native WanFirstLastFrameToVideo joins clip_vision_start_image and "
                    "clip_vision_end_image."),
                io.Image.Input("ref_pad_image", optional=True, tooltip=
                    "ID-V2V padding: the FIRST frame of this image (RGB, resized like start_image) fills every "
                    "unknown frame instead of the null_fill gray/black; the known frames go on top and "
                    "concat_mask is unchanged (1 = generate, 0 = given). As native WanImageToVideo's "
                    "ref_pad_image (newer ComfyUI). Stack it with WanMaskVaceEmbeds (same positive/negative) "
                    "for the ID-V2V conditioning: VACE context on an I2V base."),
            ],
            outputs=[
                *embeds_outputs("Positive with concat_latent_image and concat_mask.", "Negative, same embeds.",
                                "Empty latent with the right number of latent frames."),
                io.Mask.Output(display_name="temporal_mask", tooltip=
                    "Per pixel frame [F,H,W]: 1 = generated, 0 = given frame (for preview)."),
                io.Int.Output(display_name="trim_end_latent", tooltip=
                    "Latent frames to drop from the end after sampling (1 with a separately encoded end image)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, length=None, keyframe_indices=None, null_fill=None):
        return first_error(lambda: check_pixel_length(length),
                           lambda: parse_indices(keyframe_indices, length) if keyframe_indices and length else None,
                           lambda: check_choices(cls, null_fill=null_fill))

    @classmethod
    def execute(cls, positive, negative, vae, width, height, length, batch_size, fun_or_fl2v_model, null_fill,
                latent_strength, start_image=None, end_image=None, keyframes=None, keyframe_indices="",
                clip_vision_output=None, keep_given_latents=False, clip_vision_end_output=None,
                ref_pad_image=None) -> io.NodeOutput:
        geometry = geometry_for_channels(compat.vae_latent_channels(vae), "vae")
        out = build_i2v_embeds(
            _encoder(vae), length=length, height=height, width=width, geometry=geometry, start_image=start_image,
            end_image=end_image, keyframes=keyframes, keyframe_indices=keyframe_indices,
            fun_or_fl2v_model=fun_or_fl2v_model, null_fill=null_fill, latent_strength=latent_strength,
            latent_mean=compat.empty_latent_mean(geometry.latent_channels), should_stop=_EncodeProgress.i2v(),
            ref_pad_image=ref_pad_image)
        values = {"concat_latent_image": out.concat_latent_image, "concat_mask": out.concat_mask}
        if clip_vision_output is not None and clip_vision_end_output is not None:
            joined = comfy.clip_vision.Output()
            joined.penultimate_hidden_states = join_clip_vision_tokens(
                clip_vision_output.penultimate_hidden_states, clip_vision_end_output.penultimate_hidden_states)
            values["clip_vision_output"] = joined
        elif clip_vision_output is not None or clip_vision_end_output is not None:
            values["clip_vision_output"] = clip_vision_end_output if clip_vision_output is None else clip_vision_output
        positive, negative = _set(positive, negative, values)
        latent = _empty_latent(batch_size, geometry.latent_channels, out.latent_frames,
                               *out.concat_latent_image.shape[-2:])
        if keep_given_latents:
            latent = out.given_latent(batch_size, latent["samples"])
        return io.NodeOutput(positive, negative, latent, out.frame_mask_video(height, width), out.trim_end_latent)


class WanMaskVaceEmbeds(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="WanMaskVaceEmbeds",
            display_name="Wan Mask VACE Embeds",
            category=category("embeds"),
            search_aliases=["vace", "vace inpaint", "control video", "reference image"],
            description="VACE context (inactive/reactive frames, 64-channel packed mask, reference image) for Wan "
                        f"VACE models. control_masks: {conventions.VACE_MASK}. Chaining several adds contexts.",
            inputs=[
                *video_inputs(),
                io.Float.Input("strength", default=1.0, min=0.0, max=1000.0, step=0.01,
                               tooltip="VACE strength: scales this context's hints in every VACE block."),
                expert(io.Float.Input("mask_threshold", default=0.5, min=0.0, max=1.0, step=0.01, tooltip=
                    "Binarizes soft control masks (after resizing): >= threshold -> 1 (reactive), below -> 0, with "
                    "a warning when soft values were found. 0 = keep soft values (VACE was trained on binary "
                    "masks).")),
                io.Image.Input("control_video", optional=True, tooltip=
                    "Frames to keep/edit (inpainting) or a control video (pose, depth...). Missing frames are "
                    "gray 0.5; extra ones trimmed."),
                io.Mask.Input("control_masks", optional=True, tooltip=
                    f"{conventions.VACE_MASK}. 1 frame = every frame; missing frames are 1 (generate); extra ones "
                    "trimmed (warnings)."),
                io.Image.Input("reference_image", optional=True, tooltip=
                    "Reference image, prepended as one latent frame (trim it after sampling with trim_latent)."),
            ],
            outputs=[
                *embeds_outputs("Positive with vace_frames, vace_mask, vace_strength appended.", "Negative, same.",
                                "Empty latent (reference frame included)."),
                io.Int.Output(display_name="trim_latent", tooltip=
                    "Latent frames to drop from the START after sampling (TrimVideoLatent)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, length=None):
        return first_error(lambda: check_pixel_length(length))

    @classmethod
    def execute(cls, positive, negative, vae, width, height, length, batch_size, strength, mask_threshold,
                control_video=None, control_masks=None, reference_image=None) -> io.NodeOutput:
        geometry = geometry_for_channels(compat.vae_latent_channels(vae), "vae")
        out = build_vace_embeds(_encoder(vae), length=length, height=height, width=width,
                                control_video=control_video, control_masks=control_masks,
                                reference_image=reference_image, threshold=mask_threshold,
                                latent_mean=compat.empty_latent_mean(geometry.latent_channels), geometry=geometry,
                                should_stop=_EncodeProgress.vace())
        positive, negative = _set(positive, negative, {"vace_frames": [out.vace_frames], "vace_mask": [out.vace_mask],
                                                       "vace_strength": [strength]}, append=True)
        latent = _empty_latent(batch_size, geometry.latent_channels, out.latent_frames, *out.vace_frames.shape[-2:])
        return io.NodeOutput(positive, negative, latent, out.trim_latent)


class WanMaskAnimateEmbeds(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="WanMaskAnimateEmbeds",
            display_name="Wan Mask Animate Embeds",
            category=category("embeds"),
            search_aliases=["wan animate", "character replacement", "pose video", "continue motion"],
            description="Wan-Animate conditioning: reference, pose, face, and for character replacement a "
                        "background video with its character mask (both or neither). Each character-mask frame is "
                        "packed into the slot of its own causal group. concat_mask: "
                        + conventions.NATIVE_CONCAT_MASK + ". Long videos by chunks: connect the previous chunk's "
                        "decoded frames to continue_motion and its video_frame_offset output here, then drop "
                        "trim_image frames from this chunk's decode.",
            inputs=[
                *video_inputs(length_default=77),
                io.ClipVisionOutput.Input("clip_vision_output", optional=True,
                                          tooltip="CLIP vision features of the reference."),
                io.Image.Input("reference_image", optional=True,
                               tooltip="The character to animate (black if absent, as native)."),
                io.Image.Input("face_video", optional=True, tooltip="Face crops driving expressions (resized to 512x512)."),
                io.Image.Input("pose_video", optional=True,
                               tooltip="Pose video (padded by repeating its last frame, with a warning)."),
                io.Image.Input("bg_images", optional=True, tooltip="Background video to keep (replacement mode). Needs mask."),
                io.Mask.Input("mask", optional=True, tooltip=
                    "Character mask: 1 = character region (generate), 0 = background (kept from bg_images). "
                    "Needs bg_images."),
                io.Image.Input("continue_motion", optional=True, tooltip=
                    "Long videos by chunks: the previous chunk's decoded frames. Its last "
                    "continue_motion_max_frames open this clip as given frames (concat mask 0 in exactly their "
                    "slots)."),
                io.Int.Input("continue_motion_max_frames", optional=True, default=5, min=1, max=16384, step=4,
                             tooltip="How many of the last continue_motion frames to keep (1+4k fills whole latent "
                                     "frames)."),
                io.Int.Input("video_frame_offset", optional=True, default=0, min=0, max=1000000, tooltip=
                    "Where this chunk starts in the pose / face / background / mask videos. Connect the previous "
                    "chunk's video_frame_offset output. With continue_motion it is moved back by the motion "
                    "frames. A driving video that ends before it is an error."),
            ],
            outputs=[
                *embeds_outputs("Positive with the Animate embeds.", "Negative (face video all -1).",
                                "Empty latent (reference frame included)."),
                io.Int.Output(display_name="trim_latent", tooltip=
                    "Latent frames to drop from the START after sampling (the reference; TrimVideoLatent)."),
                io.Int.Output(display_name="trim_image", tooltip=
                    "Decoded frames to drop from the START: the continue_motion frames, which repeat the previous "
                    "chunk (0 without continue_motion)."),
                io.Int.Output(display_name="video_frame_offset", tooltip=
                    "Start of the next chunk in the driving videos (this chunk's start + length)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, length=None):
        return first_error(lambda: check_pixel_length(length))

    @classmethod
    def execute(cls, positive, negative, vae, width, height, length, batch_size, clip_vision_output=None,
                reference_image=None, face_video=None, pose_video=None, bg_images=None, mask=None,
                continue_motion=None, continue_motion_max_frames=5, video_frame_offset=0) -> io.NodeOutput:
        geometry = geometry_for_channels(compat.vae_latent_channels(vae), "vae")
        if mask is not None:
            note_native_animate_placement()
        out = build_animate_embeds(_encoder(vae), length=length, height=height, width=width, geometry=geometry,
                                   reference_image=reference_image, pose_video=pose_video, face_video=face_video,
                                   bg_images=bg_images, mask=mask, continue_motion=continue_motion,
                                   continue_motion_max_frames=continue_motion_max_frames,
                                   video_frame_offset=video_frame_offset, should_stop=_EncodeProgress.animate())
        pos = {"concat_latent_image": out.concat_latent_image, "concat_mask": out.concat_mask}
        if out.pose_video_latent is not None:
            pos["pose_video_latent"] = out.pose_video_latent
        if clip_vision_output is not None:
            pos["clip_vision_output"] = clip_vision_output
        neg = dict(pos)
        if out.face_video_pixels is not None:
            pos["face_video_pixels"] = out.face_video_pixels
            neg["face_video_pixels"] = out.negative_face_pixels()
        positive, negative = _set(positive, negative, pos, neg)
        latent = _empty_latent(batch_size, geometry.latent_channels, out.latent_frames,
                               *out.concat_latent_image.shape[-2:])
        return io.NodeOutput(positive, negative, latent, out.trim_latent, out.trim_image, out.video_frame_offset)
