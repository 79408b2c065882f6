"""VACE context: inactive/reactive frames, the 64-channel packed mask and reference images.

Conventions (see :mod:`masking.conventions`):

* control mask: VACE_MASK, 1 = reactive (generate), 0 = inactive (keep); VACE was trained on
  binary masks, so soft masks are binarized at a threshold (warning).
* frames in the VAE's [-1, 1] input space v: ``inactive = (1 - m) * v``, ``reactive = m * v``,
  i.e. each half holds gray (0.5 in IMAGE space) where it is masked out. Missing control frames
  are gray 0.5.
* reference images get ``[ref latent | empty latent]`` channels and an all-zero (keep) mask, and are
  prepended on the time axis; ``trim_latent`` says how many latent frames to drop after sampling.

Shapes: control video IMAGE [F, H, W, 3]; control mask MASK [F, H, W]; ``vace_frames``
[1, 32, T', h, w] raw VAE space; ``vace_mask`` [1, 64, T', h, w] with channel 8*dy+dx = pixel
(dy, dx) of each 8x8 cell; T' = T + number of references.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import einops
import torch
import torch.nn.functional as F

from ..masking.geometry import VaeGeometry, WAN21

from .frames import check_length
from .i2v import Encoder, _encode
from .input_fitting import fit_frames, fit_image, fit_mask

log = logging.getLogger("WanMasking")


@dataclass
class VaceEmbeds:
    """One VACE context.

    Attributes:
        vace_frames: [1, 32, T', h, w] = [inactive(16) | reactive(16)], raw VAE space.
        vace_mask: [1, 64, T', h, w] float32, 1 = reactive.
        trim_latent: reference latent frames at the front (drop them after sampling).
        latent_frames: T' = T + trim_latent, the latent length to sample.
    """

    vace_frames: torch.Tensor
    vace_mask: torch.Tensor
    trim_latent: int
    latent_frames: int


def binarize(mask: torch.Tensor, threshold: float, input_name: str = "control_masks") -> torch.Tensor:
    """``mask >= threshold`` as float, with a warning when soft values were present.

    ``threshold`` 0 keeps the mask as it is (soft values go to the model unchanged, with a warning,
    since VACE was trained on binary masks).
    """
    soft = ((mask > 0) & (mask < 1)).any()
    if threshold <= 0:
        if soft:
            log.warning("%s: soft values kept (threshold 0); VACE was trained on binary masks.", input_name)
        return mask
    if soft:
        n = int(((mask > 0) & (mask < 1)).sum())
        log.warning("%s: %d soft value(s) binarized at threshold %.3g (>= threshold -> 1 = reactive/generate, "
                    "below -> 0 = inactive/keep), because VACE expects binary masks.", input_name, n, threshold)
    return (mask >= threshold).to(mask.dtype)


def pack_vace_mask(mask: torch.Tensor, latent_frames: int, stride: int = 8) -> torch.Tensor:
    """Pixel mask [F, H, W] -> VACE mask [1, stride*stride, T, H/stride, W/stride].

    Spatially an exact 8x8 pixel-unshuffle (channel ``stride*dy + dx``); in time the frames are
    picked with ``nearest-exact`` interpolation, the rule upstream VACE was trained with (for 81
    frames -> 21 latents it reads frames 1, 5, 9, ..., 79).
    """
    packed = einops.rearrange(mask, "f (h sy) (w sx) -> 1 (sy sx) f h w", sy=stride, sx=stride)
    if packed.shape[2] == latent_frames:
        return packed.contiguous()
    return F.interpolate(packed, size=(latent_frames, *packed.shape[-2:]), mode="nearest-exact")


def build_vace_embeds(encode: Encoder, *, length: int, height: int, width: int,
                      control_video: torch.Tensor | None = None, control_masks: torch.Tensor | None = None,
                      reference_image: torch.Tensor | None = None, threshold: float = 0.5,
                      latent_mean: torch.Tensor | None = None, geometry: VaeGeometry = WAN21,
                      should_stop: Callable[[], None] | None = None) -> VaceEmbeds:
    """Build one VACE context for a clip of ``length`` pixel frames.

    Args:
        encode: pixels [F, H, W, 3] in 0..1 -> raw latent [1, 16, T, h, w] (Wan 2.1 VAE).
        length: pixel frames, 1 + 4k.
        height, width: multiples of 16.
        control_video: IMAGE [N, H, W, 3]; N != length is padded with gray 0.5 / trimmed (warning).
            Absent: all gray.
        control_masks: MASK [N, H, W], 1 = reactive; 1 frame is used for every frame; other N != length
            padded with 1.0 (generate) / trimmed (warning). Absent: all 1 (generate everything).
        reference_image: IMAGE; its first frame is encoded as one latent frame prepended to the context.
        threshold: binarizes the (resized) mask, see :func:`binarize`.
        latent_mean: [16] the empty latent in raw VAE space (``process_out(0)``), used for the second
            half of the reference's channels. Needed with a reference image.
        should_stop: called between encodes; raises to interrupt.
    """
    if geometry.latent_channels != 16 or geometry.spatial_stride != 8:
        raise ValueError(f"vae: VACE needs the Wan 2.1 VAE (16 channels, 8x8 cells), got the {geometry.name} VAE. "
                         "Fix: load wan_2.1_vae (also used by Wan 2.2 14B VACE models).")
    latent_t = check_length(length, geometry)
    geometry.check_spatial(height, width, "width/height")
    h, w = height // geometry.spatial_stride, width // geometry.spatial_stride

    if control_video is None:
        video = torch.full((length, height, width, 3), 0.5)
    else:
        video = fit_frames(fit_image(control_video, height, width, "control_video"), length, "control_video", 0.5)
    if control_masks is None:
        mask = torch.ones(length, height, width)
    else:
        mask = fit_mask(control_masks, height, width, "control_masks")
        mask = fit_frames(mask, length, "control_masks", "broadcast" if mask.shape[0] == 1 else 1.0)
        mask = binarize(mask, threshold, "control_masks")
    m = mask.to(video)[..., None]
    centered = video - 0.5
    inactive = _encode(encode, centered * (1 - m) + 0.5, geometry, h, w, "the inactive frames")
    if should_stop is not None:
        should_stop()
    reactive = _encode(encode, centered * m + 0.5, geometry, h, w, "the reactive frames")
    del centered, m
    frames = torch.cat([inactive, reactive.to(inactive)], dim=1)
    vace_mask = pack_vace_mask(mask.float(), latent_t, geometry.spatial_stride).to(frames.device)

    trim = 0
    if reference_image is not None:
        if should_stop is not None:
            should_stop()
        ref = fit_image(reference_image, height, width, "reference_image")
        if ref.shape[0] > 1:
            log.warning("reference_image: %d images given; only the first is used as the VACE reference.", ref.shape[0])
        if latent_mean is None:
            raise ValueError("reference_image needs the VAE's latent mean (latent_mean) for the empty half.")
        ref_latent = _encode(encode, ref[:1], geometry, h, w, "reference_image").to(frames)
        empty = latent_mean.to(frames).reshape(1, -1, 1, 1, 1).expand_as(ref_latent)
        frames = torch.cat([torch.cat([ref_latent, empty], dim=1), frames], dim=2)
        vace_mask = torch.cat([vace_mask.new_zeros(1, vace_mask.shape[1], 1, h, w), vace_mask], dim=2)
        trim = 1
    return VaceEmbeds(vace_frames=frames, vace_mask=vace_mask, trim_latent=trim, latent_frames=frames.shape[2])
