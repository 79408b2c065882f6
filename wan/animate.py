"""Wan-Animate inputs: reference latent, background + character mask concat, pose latent, face pixels.

Conventions (see :mod:`masking.conventions`):

* ``mask`` (character mask): 1 = character region, regenerated; 0 = background, kept from ``bg_images``.
  ``bg_images`` and ``mask`` go together (replacement mode) or are both absent (animation mode:
  everything is generated from a gray 0.5 background). One without the other is refused.
* ``concat_mask``: NATIVE_CONCAT_MASK (1 = generate, 0 = given), 4 channels. The reference latent
  frame is all 0 (given). Each character-mask frame lands in the slot of its own causal group
  (frame 0 in slots 0..3, frame f in slot f+3), as upstream Wan-Animate's ``get_i2v_mask`` packs
  it. (Native WanAnimateToVideo up to ComfyUI 0.33 writes frame f to slot f, a ~3-frame lead; newer
  versions (PR #16406) place it as here. ``comfy_compat.native_animate_mask_slot_shift`` probes which.)
* A missing reference image is black (0.0), as native.
* Long videos by chunks (as native): ``continue_motion`` holds the last frames of the previous chunk;
  its last ``continue_motion_max_frames`` become the first frames of this clip, given (concat mask 0)
  in exactly their own slots. ``video_frame_offset`` is where this chunk starts in the driving videos
  (pose, face, background, character mask); with motion frames it is moved back by their count, so
  the motion frames line up with the source frames they repeat. A driving video that ends before the
  offset is an error (native drops it silently).

Shapes: IMAGE [F, H, W, 3]; MASK [F, H, W]; ``concat_latent_image`` [1, C, 1+T, h, w];
``concat_mask`` [1, 4, 1+T, h, w]; ``pose_video_latent`` [1, C, T, h, w]; ``face_video_pixels``
[1, 3, F, 512, 512] in [-1, 1].
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import einops
import torch

from ..masking.geometry import VaeGeometry

from .frames import check_length
from .i2v import Encoder, _encode, frame_mask_to_concat_mask
from .input_fitting import center_crop_resize, fit_frames, fit_image, fit_mask

log = logging.getLogger("WanMasking")

FACE_SIZE = 512
"""Wan-Animate's face encoder input size (pixels)."""


@dataclass
class AnimateEmbeds:
    """Attributes:
        concat_latent_image: [1, C, 1+T, h, w] = [reference | clip], raw VAE space.
        concat_mask: [1, 4, 1+T, h, w], 1 = generate.
        pose_video_latent: [1, C, T, h, w] or None.
        face_video_pixels: [1, 3, F, 512, 512] in [-1, 1] or None (the negative gets all -1).
        frame_mask: [F, h, w] per pixel frame at latent resolution, 1 = generate.
        trim_latent: 1 (the reference frame, to drop after sampling).
        latent_frames: 1 + T.
        trim_image: decoded pixel frames to drop from the start: the continue_motion frames, which
            repeat the end of the previous chunk (0 without continue_motion).
        video_frame_offset: where the next chunk starts in the driving videos (this chunk's start + length).
    """

    concat_latent_image: torch.Tensor
    concat_mask: torch.Tensor
    pose_video_latent: torch.Tensor | None
    face_video_pixels: torch.Tensor | None
    frame_mask: torch.Tensor
    trim_latent: int
    latent_frames: int
    trim_image: int = 0
    video_frame_offset: int = 0

    def negative_face_pixels(self) -> torch.Tensor | None:
        """The negative's face video: all -1 (no face), as native WanAnimateToVideo."""
        return None if self.face_video_pixels is None else torch.full_like(self.face_video_pixels, -1.0)


def check_background_pairing(bg_images, mask) -> None:
    """Raise unless ``bg_images`` and ``mask`` are both given or both absent."""
    if (bg_images is None) != (mask is None):
        given, missing = ("bg_images", "mask") if mask is None else ("mask", "bg_images")
        raise ValueError(
            f"{missing}: {given} is connected but {missing} is not. Character replacement needs both: bg_images "
            f"(the background to keep) and mask (1 = character region to generate, 0 = background to keep). "
            f"Fix: connect {missing}, or disconnect {given} to animate the reference on a generated background.")


def motion_frames(continue_motion: torch.Tensor | None, max_frames: int, length: int) -> torch.Tensor | None:
    """The last ``max_frames`` frames of ``continue_motion`` [N, H, W, C] (None stays None).

    Raises ValueError when they would fill the whole clip (nothing left to generate)."""
    if continue_motion is None:
        return None
    if max_frames < 1:
        raise ValueError(f"continue_motion_max_frames: {max_frames}; it must be at least 1.")
    motion = continue_motion[-max_frames:]
    if motion.shape[0] >= length:
        raise ValueError(
            f"continue_motion: {motion.shape[0]} motion frame(s) ({continue_motion.shape[0]} given, "
            f"continue_motion_max_frames {max_frames}) fill the whole {length}-frame clip, leaving nothing to "
            f"generate. Fix: lower continue_motion_max_frames (5 is usual) or raise length.")
    return motion


def seek(video: torch.Tensor | None, offset: int, input_name: str,
         broadcast_single: bool = False) -> torch.Tensor | None:
    """``video[offset:]``: the frames of this chunk onward. A single frame with ``broadcast_single``
    (a still background or mask) is not seeked. Raises ValueError when the video ends at or before
    ``offset`` (native drops such an input silently)."""
    if video is None or offset == 0 or (broadcast_single and video.shape[0] == 1):
        return video
    if video.shape[0] <= offset:
        raise ValueError(
            f"{input_name}: {video.shape[0]} frame(s), but this chunk starts at frame {offset} (video_frame_offset, "
            f"minus the continue_motion frames); the video has ended. Fix: stop chunking here, or connect a longer "
            f"{input_name}.")
    return video[offset:]


def build_animate_embeds(encode: Encoder, *, length: int, height: int, width: int, geometry: VaeGeometry,
                         reference_image: torch.Tensor | None = None, pose_video: torch.Tensor | None = None,
                         face_video: torch.Tensor | None = None, bg_images: torch.Tensor | None = None,
                         mask: torch.Tensor | None = None, continue_motion: torch.Tensor | None = None,
                         continue_motion_max_frames: int = 5, video_frame_offset: int = 0,
                         should_stop: Callable[[], None] | None = None) -> AnimateEmbeds:
    """Build the Wan-Animate conditioning for a clip of ``length`` pixel frames (1 + 4k).

    Videos of another length are padded (pose/face: repeat the last frame; bg: gray; mask: 1 =
    generate) or trimmed, with a warning; a single bg image or mask frame is used for every frame. Images of another size are center-cropped and resized
    ("area", as native) with a warning.

    With ``continue_motion`` [N, H, W, 3] (the previous chunk's decoded frames), its last
    ``continue_motion_max_frames`` frames (n) open this clip as given frames, and the driving
    videos are read from frame ``max(0, video_frame_offset - n)``.
    """
    check_background_pairing(bg_images, mask)
    check_length(length, geometry)
    geometry.check_spatial(height, width, "width/height")
    if video_frame_offset < 0:
        raise ValueError(f"video_frame_offset: {video_frame_offset}; it must be >= 0.")
    h, w = height // geometry.spatial_stride, width // geometry.spatial_stride
    motion = motion_frames(continue_motion, continue_motion_max_frames, length)
    n_motion = 0 if motion is None else motion.shape[0]
    start = video_frame_offset - n_motion
    if start < 0:
        log.warning("video_frame_offset: %d is less than the %d continue_motion frame(s); the driving videos are "
                    "read from frame 0.", video_frame_offset, n_motion)
        start = 0
    pose_video = seek(pose_video, start, "pose_video")
    face_video = seek(face_video, start, "face_video")
    bg_images = seek(bg_images, start, "bg_images", broadcast_single=True)
    mask = seek(mask, start, "mask", broadcast_single=True)

    if reference_image is None:
        ref = torch.zeros(1, height, width, 3)
    else:
        ref = fit_image(reference_image, height, width, "reference_image", mode="area")
        if ref.shape[0] > 1:
            log.warning("reference_image: %d images given; only the first is used.", ref.shape[0])
        ref = ref[:1]
    ref_latent = _encode(encode, ref, geometry, h, w, "reference_image")

    if bg_images is None:
        pixels = torch.full((length, height, width, 3), 0.5)
        frame_mask = torch.ones(length, h, w)
    else:
        bg = fit_image(bg_images, height, width, "bg_images", mode="area")
        pixels = fit_frames(bg, length, "bg_images", "broadcast" if bg.shape[0] == 1 else 0.5)
        m = fit_mask(mask, height, width, "mask")
        m = fit_frames(m, length, "mask", "broadcast" if m.shape[0] == 1 else 1.0)
        frame_mask = center_crop_resize(m[:, None], h, w, "nearest-exact")[:, 0]
    if motion is not None:
        pixels = pixels.clone()
        pixels[:n_motion] = fit_image(motion, height, width, "continue_motion", mode="area").to(pixels)
        frame_mask = frame_mask.clone()
        frame_mask[:n_motion] = 0.0  # given
    if should_stop is not None:
        should_stop()
    clip_latent = _encode(encode, pixels, geometry, h, w, "the background clip")
    del pixels
    concat = torch.cat([ref_latent, clip_latent.to(ref_latent)], dim=2)
    concat_mask = torch.cat([torch.zeros(1, geometry.time_stride, 1, h, w),
                             frame_mask_to_concat_mask(frame_mask, geometry, h, w)], dim=2).to(concat.device)

    pose_latent = None
    if pose_video is not None:
        if should_stop is not None:
            should_stop()
        pose = fit_frames(fit_image(pose_video, height, width, "pose_video", mode="area"), length, "pose_video", "repeat")
        pose_latent = _encode(encode, pose, geometry, h, w, "pose_video")
    face = None
    if face_video is not None:
        faces = fit_frames(face_video[..., :3].float(), length, "face_video", "repeat")
        faces = center_crop_resize(einops.rearrange(faces, "f h w c -> f c h w"), FACE_SIZE, FACE_SIZE, "area")
        face = einops.rearrange(faces * 2.0 - 1.0, "f c h w -> 1 c f h w")
    return AnimateEmbeds(concat_latent_image=concat, concat_mask=concat_mask, pose_video_latent=pose_latent,
                         face_video_pixels=face, frame_mask=frame_mask, trim_latent=1, latent_frames=concat.shape[2],
                         trim_image=n_motion, video_frame_offset=start + length)
