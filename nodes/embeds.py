"""Model-mask (embed builder) nodes: WanMaskI2VEmbeds, WanMaskVaceEmbeds, WanMaskTemporal,
WanMaskAnimateEmbeds and WanMaskTrimLatent.

They output native CONDITIONING and LATENT, so the native KSampler and Wan models use them. The
math lives in ``wan/``; these adapters wrap the ComfyUI VAE into an ``encode`` callable, add the
results to the conditioning and hook up progress and interrupts.
"""
from __future__ import annotations

import comfy.clip_vision
import comfy.latent_formats
import node_helpers
import nodes as comfy_nodes
import torch

from . import comfy_compat as compat
from ..masking import conventions
from ..masking.geometry import WAN21, geometry_for_channels
from ..wan.animate import build_animate_embeds
from ..wan.i2v import MAX_TRAINED_LATENT_FRAMES, NULL_FILLS, build_i2v_embeds, join_clip_vision_tokens, trim_latent
from ..wan.temporal import temporal_mask
from ..wan.vace import build_vace_embeds

CATEGORY = "WanMasking/embeds"
MAX_RES = comfy_nodes.MAX_RESOLUTION

_SIZE_TIP = "Pixel {} of the video; a multiple of 16 (32 for the Wan 2.2 5B VAE). Images of another size are " \
            "center-cropped and resized, with a warning."
_LENGTH_TIP = "Pixel frames, 1+4k (e.g. 17, 49, 81). Other counts are refused: the Wan VAE would drop frames."


def _common_inputs(length_default=81):
    return {
        "positive": ("CONDITIONING", {"tooltip": "Text conditioning; the embeds are added to it."}),
        "negative": ("CONDITIONING", {"tooltip": "Negative text conditioning; gets the same embeds."}),
        "vae": ("VAE", {"tooltip": "The Wan VAE of the model (Wan 2.1 16 ch, or Wan 2.2 5B 48 ch)."}),
        "width": ("INT", {"default": 832, "min": 16, "max": MAX_RES, "step": 16, "tooltip": _SIZE_TIP.format("width")}),
        "height": ("INT", {"default": 480, "min": 16, "max": MAX_RES, "step": 16, "tooltip": _SIZE_TIP.format("height")}),
        "length": ("INT", {"default": length_default, "min": 1, "max": MAX_RES, "step": 4, "tooltip": _LENGTH_TIP}),
        "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096, "tooltip": "Latent batch size."}),
    }


class _Hooks:
    """Progress bar + interrupt check handed to the core as ``should_stop``."""

    def __init__(self, steps: int):
        self.bar = compat.progress_bar(steps)

    def __call__(self):
        compat.throw_if_interrupted()
        self.bar.update(1)


def _encoder(vae):
    def encode(pixels: torch.Tensor) -> torch.Tensor:
        compat.throw_if_interrupted()
        return vae.encode(pixels)
    return encode


def _latent_mean(channels: int) -> torch.Tensor:
    """The empty latent in raw VAE space (per channel), i.e. 0 after the model's normalization."""
    fmt = comfy.latent_formats.Wan22() if channels == 48 else comfy.latent_formats.Wan21()
    return fmt.process_out(torch.zeros(1, channels, 1, 1, 1)).flatten()


def _empty_latent(batch_size, channels, frames, h, w):
    return {"samples": torch.zeros([batch_size, channels, frames, h, w],
                                   device=compat.intermediate_device())}


def _set(positive, negative, values, negative_values=None, append=False):
    return (node_helpers.conditioning_set_values(positive, values, append=append),
            node_helpers.conditioning_set_values(negative, negative_values or values, append=append))


class WanMaskI2VEmbeds:
    DESCRIPTION = (
        "Wan I2V / first-last-frame / keyframe conditioning for 36-channel I2V and FLF2V models. Known frames "
        "(start, end, keyframes at any pixel frame) each mark exactly their own slot of the causal layout "
        "(frame 0 fills slots 0..3, frame f sits in slot f+3). "
        f"concat_mask: {conventions.NATIVE_CONCAT_MASK}.")

    @classmethod
    def INPUT_TYPES(cls):
        required = _common_inputs()
        required.update({
            "fun_or_fl2v_model": ("BOOLEAN", {"default": True, "tooltip":
                "On (official FLF2V, Fun-InP, Wan 2.2): the end image is the last pixel frame and the whole clip is "
                "encoded at once (= native WanFirstLastFrameToVideo). Off (plain Wan 2.1 I2V): the end image is "
                "encoded alone as one extra latent frame after the clip, to be dropped after sampling with "
                f"WanMaskTrimLatent (trim_end = trim_end_latent); length must stay <= "
                f"{WAN21.pixel_frames(MAX_TRAINED_LATENT_FRAMES - 1)}."}),
            "null_fill": (list(NULL_FILLS), {"default": "gray", "tooltip":
                f"Pixels of unknown frames before encoding: gray = {conventions.FILL_GRAY} (native ComfyUI; 0 in "
                f"the VAE's [-1,1] input), black = {conventions.FILL_BLACK} (WanVideoWrapper; -1 in the VAE input)."}),
            "latent_strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01, "tooltip":
                "Scales the latent frames holding a known frame toward the empty latent (1.0 = as encoded, as "
                "native; ~0.95 can soften a hard end frame)."}),
        })
        return {"required": required, "optional": {
            "start_image": ("IMAGE", {"tooltip": "Frames 0..n-1 of the clip (n = its frame count)."}),
            "end_image": ("IMAGE", {"tooltip": "The last frame(s) of the clip (see fun_or_fl2v_model)."}),
            "keyframes": ("IMAGE", {"tooltip": "Images placed at the pixel frames in keyframe_indices (one each)."}),
            "keyframe_indices": ("STRING", {"default": "", "tooltip":
                "Comma-separated pixel frame index per keyframe image, e.g. '0, 40, 80'; negative counts from the "
                "end (-1 = last frame). Must be inside the clip."}),
            "clip_vision_output": ("CLIP_VISION_OUTPUT", {"tooltip": "CLIP vision features for models with img_emb "
                                   "(of the start image for first-last-frame)."}),
            "keep_given_latents": ("BOOLEAN", {"default": False, "tooltip":
                "Off (native): the latent is empty and the model alone reproduces the given frames. On: the latent "
                "holds the encoded frames with a noise_mask (1 = regenerate, 0 = keep) that keeps the latent frames "
                "whose four slots are all given (e.g. latent 0 of a start image), so they come back exactly."}),
            "clip_vision_end_output": ("CLIP_VISION_OUTPUT", {"tooltip": "First-last-frame (FLF2V): CLIP vision "
                "features of the end image. Its tokens follow clip_vision_output's, as native "
                "WanFirstLastFrameToVideo joins clip_vision_start_image and clip_vision_end_image."}),
        }}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT", "MASK", "INT")
    RETURN_NAMES = ("positive", "negative", "latent", "temporal_mask", "trim_end_latent")
    OUTPUT_TOOLTIPS = ("Positive with concat_latent_image and concat_mask.", "Negative, same embeds.",
                       "Empty latent with the right number of latent frames.",
                       "Per pixel frame [F,H,W]: 1 = generated, 0 = given frame (for preview).",
                       "Latent frames to drop from the end after sampling (1 with a separately encoded end image).")
    FUNCTION = "build"
    CATEGORY = CATEGORY

    def build(self, positive, negative, vae, width, height, length, batch_size, fun_or_fl2v_model, null_fill,
              latent_strength, start_image=None, end_image=None, keyframes=None, keyframe_indices="",
              clip_vision_output=None, keep_given_latents=False, clip_vision_end_output=None):
        geometry = geometry_for_channels(vae.latent_channels, "vae")
        hooks = _Hooks(2)
        out = build_i2v_embeds(
            _encoder(vae), length=length, height=height, width=width, geometry=geometry, start_image=start_image,
            end_image=end_image, keyframes=keyframes, keyframe_indices=keyframe_indices,
            fun_or_fl2v_model=fun_or_fl2v_model, null_fill=null_fill, latent_strength=latent_strength,
            latent_mean=_latent_mean(geometry.latent_channels), should_stop=hooks)
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
            latent["samples"] = out.concat_latent_image.to(latent["samples"]).repeat(batch_size, 1, 1, 1, 1)
            latent["noise_mask"] = out.keep_noise_mask().to(latent["samples"])
        frames = out.frame_mask[:, None, None].expand(length, height, width).contiguous()
        return (positive, negative, latent, frames, out.trim_end_latent)


class WanMaskVaceEmbeds:
    DESCRIPTION = ("VACE context (inactive/reactive frames, 64-channel packed mask, reference image) for Wan VACE "
                   f"models. control_masks: {conventions.VACE_MASK}. Chaining several adds contexts.")

    @classmethod
    def INPUT_TYPES(cls):
        required = _common_inputs()
        required.update({
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1000.0, "step": 0.01,
                                   "tooltip": "VACE strength: scales this context's hints in every VACE block."}),
            "mask_threshold": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                "Binarizes soft control masks (after resizing): >= threshold -> 1 (reactive), below -> 0, with a "
                "warning when soft values were found. 0 = keep soft values (VACE was trained on binary masks)."}),
        })
        return {"required": required, "optional": {
            "control_video": ("IMAGE", {"tooltip": "Frames to keep/edit (inpainting) or a control video (pose, "
                                                   "depth...). Missing frames are gray 0.5; extra ones trimmed."}),
            "control_masks": ("MASK", {"tooltip": f"{conventions.VACE_MASK}. 1 frame = every frame; missing frames "
                                                  "are 1 (generate); extra ones trimmed (warnings)."}),
            "reference_image": ("IMAGE", {"tooltip": "Reference image, prepended as one latent frame (trim it "
                                                     "after sampling with trim_latent)."}),
        }}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT", "INT")
    RETURN_NAMES = ("positive", "negative", "latent", "trim_latent")
    OUTPUT_TOOLTIPS = ("Positive with vace_frames, vace_mask, vace_strength appended.", "Negative, same.",
                       "Empty latent (reference frame included).",
                       "Latent frames to drop from the START after sampling (TrimVideoLatent).")
    FUNCTION = "build"
    CATEGORY = CATEGORY

    def build(self, positive, negative, vae, width, height, length, batch_size, strength, mask_threshold,
              control_video=None, control_masks=None, reference_image=None):
        geometry = geometry_for_channels(vae.latent_channels, "vae")
        out = build_vace_embeds(_encoder(vae), length=length, height=height, width=width,
                                control_video=control_video, control_masks=control_masks,
                                reference_image=reference_image, threshold=mask_threshold,
                                latent_mean=_latent_mean(16), geometry=geometry, should_stop=_Hooks(3))
        positive, negative = _set(positive, negative, {"vace_frames": [out.vace_frames], "vace_mask": [out.vace_mask],
                                                       "vace_strength": [strength]}, append=True)
        latent = _empty_latent(batch_size, 16, out.latent_frames, *out.vace_frames.shape[-2:])
        return (positive, negative, latent, out.trim_latent)


class WanMaskTemporal:
    DESCRIPTION = ("A temporal MASK [F,H,W] from frame ranges to keep: 0 on kept frames, 1 (generate) elsewhere. "
                   "For extension, loop and keyframe workflows.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "length": ("INT", {"default": 81, "min": 1, "max": MAX_RES, "step": 4, "tooltip": "Pixel frames F."}),
            "width": ("INT", {"default": 832, "min": 1, "max": MAX_RES, "step": 8, "tooltip": "Mask width."}),
            "height": ("INT", {"default": 480, "min": 1, "max": MAX_RES, "step": 8, "tooltip": "Mask height."}),
            "keep": ("STRING", {"default": "0-0", "tooltip":
                "Pixel frames to keep (mask 0), inclusive ranges: e.g. '0-0, 77-80' or '0-15'; single frames '40'; "
                "negative bounds from the end as 'a:b', e.g. '-4:-1'. Everything else is 1 = generate."}),
        }}

    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("mask",)
    OUTPUT_TOOLTIPS = (f"[F,H,W]: {conventions.NOISE_MASK}. For VACE control_masks this is 1 = reactive.",)
    FUNCTION = "build"
    CATEGORY = CATEGORY

    def build(self, length, width, height, keep):
        return (temporal_mask(length, height, width, keep),)


class WanMaskAnimateEmbeds:
    DESCRIPTION = ("Wan-Animate conditioning: reference, pose, face, and for character replacement a background "
                   "video with its character mask (both or neither). Each character-mask frame is packed into the "
                   "slot of its own causal group. concat_mask: " + conventions.NATIVE_CONCAT_MASK + ". Long videos "
                   "by chunks: connect the previous chunk's decoded frames to continue_motion and its "
                   "video_frame_offset output here, then drop trim_image frames from this chunk's decode.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": _common_inputs(length_default=77), "optional": {
            "clip_vision_output": ("CLIP_VISION_OUTPUT", {"tooltip": "CLIP vision features of the reference."}),
            "reference_image": ("IMAGE", {"tooltip": "The character to animate (black if absent, as native)."}),
            "face_video": ("IMAGE", {"tooltip": "Face crops driving expressions (resized to 512x512)."}),
            "pose_video": ("IMAGE", {"tooltip": "Pose video (padded by repeating its last frame, with a warning)."}),
            "bg_images": ("IMAGE", {"tooltip": "Background video to keep (replacement mode). Needs mask."}),
            "mask": ("MASK", {"tooltip": "Character mask: 1 = character region (generate), 0 = background (kept "
                                         "from bg_images). Needs bg_images."}),
            "continue_motion": ("IMAGE", {"tooltip": "Long videos by chunks: the previous chunk's decoded frames. "
                                          "Its last continue_motion_max_frames open this clip as given frames "
                                          "(concat mask 0 in exactly their slots)."}),
            "continue_motion_max_frames": ("INT", {"default": 5, "min": 1, "max": 16384, "step": 4, "tooltip":
                "How many of the last continue_motion frames to keep (1+4k fills whole latent frames)."}),
            "video_frame_offset": ("INT", {"default": 0, "min": 0, "max": 1000000, "tooltip":
                "Where this chunk starts in the pose / face / background / mask videos. Connect the previous "
                "chunk's video_frame_offset output. With continue_motion it is moved back by the motion frames. "
                "A driving video that ends before it is an error."}),
        }}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT", "INT", "INT", "INT")
    RETURN_NAMES = ("positive", "negative", "latent", "trim_latent", "trim_image", "video_frame_offset")
    OUTPUT_TOOLTIPS = ("Positive with the Animate embeds.", "Negative (face video all -1).",
                       "Empty latent (reference frame included).",
                       "Latent frames to drop from the START after sampling (the reference; TrimVideoLatent).",
                       "Decoded frames to drop from the START: the continue_motion frames, which repeat the previous "
                       "chunk (0 without continue_motion).",
                       "Start of the next chunk in the driving videos (this chunk's start + length).")
    FUNCTION = "build"
    CATEGORY = CATEGORY

    def build(self, positive, negative, vae, width, height, length, batch_size, clip_vision_output=None,
              reference_image=None, face_video=None, pose_video=None, bg_images=None, mask=None,
              continue_motion=None, continue_motion_max_frames=5, video_frame_offset=0):
        geometry = geometry_for_channels(vae.latent_channels, "vae")
        out = build_animate_embeds(_encoder(vae), length=length, height=height, width=width, geometry=geometry,
                                   reference_image=reference_image, pose_video=pose_video, face_video=face_video,
                                   bg_images=bg_images, mask=mask, continue_motion=continue_motion,
                                   continue_motion_max_frames=continue_motion_max_frames,
                                   video_frame_offset=video_frame_offset, should_stop=_Hooks(3))
        pos = {"concat_latent_image": out.concat_latent_image, "concat_mask": out.concat_mask}
        if out.pose_video_latent is not None:
            pos["pose_video_latent"] = out.pose_video_latent
        if clip_vision_output is not None:
            pos["clip_vision_output"] = clip_vision_output
        neg = dict(pos)
        if out.face_video_pixels is not None:
            pos["face_video_pixels"] = out.face_video_pixels
            neg["face_video_pixels"] = torch.full_like(out.face_video_pixels, -1.0)
        positive, negative = _set(positive, negative, pos, neg)
        latent = _empty_latent(batch_size, geometry.latent_channels, out.latent_frames,
                               *out.concat_latent_image.shape[-2:])
        return (positive, negative, latent, out.trim_latent, out.trim_image, out.video_frame_offset)


class WanMaskTrimLatent:
    DESCRIPTION = ("Drops latent frames from the start (reference frames: trim_latent of the VACE/Animate "
                   "embeds) and/or the end (a separately encoded end image: trim_end_latent of the I2V embeds) "
                   "before decoding. The noise mask, if any, is trimmed with it.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples": ("LATENT", {"tooltip": "Sampled Wan video latent [B,C,T,h,w]."}),
            "trim_start": ("INT", {"default": 0, "min": 0, "max": 99999, "tooltip": "Latent frames to drop at the start."}),
            "trim_end": ("INT", {"default": 0, "min": 0, "max": 99999, "tooltip": "Latent frames to drop at the end."}),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "trim"
    CATEGORY = CATEGORY

    def trim(self, samples, trim_start, trim_end):
        out = samples.copy()
        out["samples"] = trim_latent(samples["samples"], trim_start, trim_end, "samples")
        mask = samples.get("noise_mask")
        if mask is not None and mask.dim() == 5 and mask.shape[2] == samples["samples"].shape[2]:
            out["noise_mask"] = trim_latent(mask, trim_start, trim_end, "noise_mask")
        return (out,)


NODE_CLASS_MAPPINGS = {
    "WanMaskI2VEmbeds": WanMaskI2VEmbeds,
    "WanMaskVaceEmbeds": WanMaskVaceEmbeds,
    "WanMaskTemporal": WanMaskTemporal,
    "WanMaskAnimateEmbeds": WanMaskAnimateEmbeds,
    "WanMaskTrimLatent": WanMaskTrimLatent,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "WanMaskI2VEmbeds": "Wan Mask I2V / First-Last / Keyframe Embeds",
    "WanMaskVaceEmbeds": "Wan Mask VACE Embeds",
    "WanMaskTemporal": "Wan Mask Temporal (keep frame ranges)",
    "WanMaskAnimateEmbeds": "Wan Mask Animate Embeds",
    "WanMaskTrimLatent": "Wan Mask Trim Latent (start/end)",
}
