"""Wan-Animate inputs: reference latent, background + character mask concat, pose latent, face pixels.

Conventions (see :mod:`masking.conventions`):

* ``mask`` (character mask): 1 = character region, regenerated; 0 = background, kept from ``bg_images``.
  ``bg_images`` and ``mask`` go together (replacement mode) or are both absent (animation mode:
  everything is generated from a gray 0.5 background). One without the other is refused.
* ``concat_mask``: NATIVE_CONCAT_MASK (1 = generate, 0 = given), 4 channels. The reference latent
  frame is all 0 (given). Each character-mask frame lands in the slot of its own causal group
  (frame 0 in slots 0..3, frame f in slot f+3), as upstream Wan-Animate's ``get_i2v_mask`` packs
  it. (ComfyUI 0.3.64's WanAnimateToVideo writes frame f to slot f, a ~3-frame lead.)
* A missing reference image is black (0.0), as native.

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

from ._masking import VaeGeometry

from .frames import check_length
from .i2v import Encoder, _encode, frame_mask_to_concat_mask
from .images import center_crop_resize, fit_frames, fit_image, fit_mask

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
    """

    concat_latent_image: torch.Tensor
    concat_mask: torch.Tensor
    pose_video_latent: torch.Tensor | None
    face_video_pixels: torch.Tensor | None
    frame_mask: torch.Tensor
    trim_latent: int
    latent_frames: int


def check_background_pairing(bg_images, mask) -> None:
    """Raise unless ``bg_images`` and ``mask`` are both given or both absent."""
    if (bg_images is None) != (mask is None):
        given, missing = ("bg_images", "mask") if mask is None else ("mask", "bg_images")
        raise ValueError(
            f"{missing}: {given} is connected but {missing} is not. Character replacement needs both: bg_images "
            f"(the background to keep) and mask (1 = character region to generate, 0 = background to keep). "
            f"Fix: connect {missing}, or disconnect {given} to animate the reference on a generated background.")


def build_animate_embeds(encode: Encoder, *, length: int, height: int, width: int, geometry: VaeGeometry,
                         reference_image: torch.Tensor | None = None, pose_video: torch.Tensor | None = None,
                         face_video: torch.Tensor | None = None, bg_images: torch.Tensor | None = None,
                         mask: torch.Tensor | None = None,
                         should_stop: Callable[[], None] | None = None) -> AnimateEmbeds:
    """Build the Wan-Animate conditioning for a clip of ``length`` pixel frames (1 + 4k).

    Videos of another length are padded (pose/face: repeat the last frame; bg: gray; mask: 1 =
    generate) or trimmed, with a warning; a single bg image or mask frame is used for every frame. Images of another size are center-cropped and resized
    ("area", as native) with a warning.
    """
    check_background_pairing(bg_images, mask)
    check_length(length, geometry)
    geometry.check_spatial(height, width, "width/height")
    h, w = height // geometry.spatial_stride, width // geometry.spatial_stride

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
                         face_video_pixels=face, frame_mask=frame_mask, trim_latent=1, latent_frames=concat.shape[2])
