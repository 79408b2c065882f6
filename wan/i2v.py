"""Wan I2V concat inputs (``concat_latent_image`` + 4-channel ``concat_mask``) from any set of known frames.

Known pixel frames are a start image (frames 0..n-1), an end image (the last frames) and keyframes at
arbitrary pixel-frame indices. Unknown frames are filled with a null image (gray 0.5 as native
ComfyUI, or black 0.0 as the WanVideoWrapper), or with the first frame of a reference image
(``ref_pad_image``, the ID-V2V padding of newer native WanImageToVideo), and the whole sequence is
encoded once.

The mask follows upstream Wan's causal slot layout (ask :mod:`masking.geometry`): pixel frame 0
fills slots 0..3, pixel frame f >= 1 sits in slot f+3, and channel c of latent t is slot 4t+c.
So every known frame marks exactly its own slot, whatever its index.

Conventions (see :mod:`masking.conventions`):

* ``concat_mask``: NATIVE_CONCAT_MASK, 1 = generate, 0 = given frame. ComfyUI's ``WAN21.concat_cond``
  feeds the model ``1 - mask``.
* ``frame_mask``: per pixel frame, 1 = generate, 0 = given (the same polarity, for previews).
* Latents are raw VAE space, as ComfyUI's ``VAE.encode`` returns them.

Shapes: IMAGE [N, H, W, 3] in 0..1; encoded latent [1, C, T, h, w] with T = 1 + (F-1)/4,
h = H/s, w = W/s (s = 8 or 16); ``concat_mask`` [1, 4, T', h, w] (T' = T, or T+1 with a separately
encoded end frame).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import einops
import torch

from ..masking import conventions
from ..masking.geometry import VaeGeometry

from .frames import check_length, parse_indices
from .input_fitting import fit_image

log = logging.getLogger("WanMasking")

Encoder = Callable[[torch.Tensor], torch.Tensor]
"""pixels [F, H, W, 3] in 0..1 -> raw latent [1, C, T, h, w] (T = 1 + (F-1)//4)."""

NULL_FILLS = {"gray": conventions.FILL_GRAY, "black": conventions.FILL_BLACK}
"""Image-space value of unknown frames: gray 0.5 (native ComfyUI; 0 in the VAE's [-1, 1] input) or
black 0.0 (WanVideoWrapper; -1 in the VAE's input)."""

MAX_TRAINED_LATENT_FRAMES = 21
"""Wan 2.1 / 2.2 14B I2V and FLF2V models are trained on 81 frames = 21 latent frames. A separately
encoded end frame adds one latent; past 21 the RoPE positions leave the trained range and the end
of the clip morphs or flashes (WanVideoWrapper #295)."""


@dataclass
class I2VEmbeds:
    """What the I2V node writes into conditioning and the latent.

    Attributes:
        concat_latent_image: [1, C, T', h, w] raw VAE latent of the known frames plus null fill.
        concat_mask: [1, 4, T', h, w] float32, NATIVE_CONCAT_MASK (1 = generate, 0 = given).
        frame_mask: [F] float32 per pixel frame of the clip, 1 = generate, 0 = given.
        latent_frames: T', the latent length to sample.
        trim_end_latent: latent frames to drop from the END after sampling (1 for a separately
            encoded end frame, else 0).
    """

    concat_latent_image: torch.Tensor
    concat_mask: torch.Tensor
    frame_mask: torch.Tensor
    latent_frames: int
    trim_end_latent: int

    def keep_noise_mask(self) -> torch.Tensor:
        """Noise mask [1, 1, T', h, w] (NOISE_MASK: 1 = regenerate, 0 = keep) that keeps exactly the latent
        cells whose four slots are all given (e.g. latent 0 for a start image, a separately encoded end
        latent, or a latent whose four frames are all keyframes). Cells mixing given and generated
        frames are regenerated (a latent cell cannot be half kept)."""
        return (self.concat_mask.amax(dim=1, keepdim=True) > 0).float()

    def given_latent(self, batch_size: int, like: torch.Tensor) -> dict:
        """The LATENT that starts from the encoded frames (``keep_given_latents``): samples
        [batch_size, C, T', h, w] in ``like``'s dtype and device, with :meth:`keep_noise_mask`."""
        samples = self.concat_latent_image.to(like).repeat(batch_size, 1, 1, 1, 1)
        return {"samples": samples, "noise_mask": self.keep_noise_mask().to(like)}

    def frame_mask_video(self, height: int, width: int) -> torch.Tensor:
        """:attr:`frame_mask` as a MASK [F, height, width] (1 = generated, 0 = given), for previews."""
        return self.frame_mask[:, None, None].expand(-1, height, width).contiguous()


def frame_mask_to_concat_mask(frame_mask: torch.Tensor, geometry: VaeGeometry, h: int, w: int) -> torch.Tensor:
    """Pack a per-pixel-frame mask into the 4-channel concat mask of the causal slot layout.

    Args:
        frame_mask: [F] or [F, h, w] with F = 1 + 4(T-1); any polarity (it is only rearranged).
        geometry: the VAE geometry (slot layout).
        h, w: latent size, used when ``frame_mask`` is [F].

    Returns:
        [1, 4, T, h, w]: channel c of latent t holds slot 4t+c (frame 0 in all four slots of latent 0).
    """
    check_length(frame_mask.shape[0], geometry, "frame_mask")
    if frame_mask.dim() == 1:
        frame_mask = frame_mask[:, None, None].expand(-1, h, w)
    slots = geometry.frames_to_slots(frame_mask, dim=0)  # [4T, h, w]
    return einops.rearrange(slots, "(t c) h w -> 1 c t h w", c=geometry.time_stride).contiguous()


def place_known_frames(length: int, height: int, width: int, start_image: torch.Tensor | None = None,
                       end_image: torch.Tensor | None = None, keyframes: torch.Tensor | None = None,
                       keyframe_indices: str = "", end_in_sequence: bool = True
                       ) -> tuple[dict[int, torch.Tensor], torch.Tensor | None]:
    """Decide which pixel frame every given image becomes.

    Args:
        length: clip length F (1 + 4k).
        height, width: pixel size; images of another size are center-cropped and resized (warning).
        start_image: [n, H, W, 3] -> frames 0..n-1.
        end_image: [m, H, W, 3] -> the last m frames when ``end_in_sequence``; otherwise its last
            frame is returned separately (to be encoded on its own).
        keyframes: [K, H, W, 3] placed at ``keyframe_indices`` (K comma-separated indices; negative
            ones count from the end). A keyframe overrides a start/end frame at the same index (warning).

    Returns:
        ({frame index: [H, W, 3]}, separate end frame [1, H, W, 3] or None)
    """
    known: dict[int, torch.Tensor] = {}
    separate_end = None
    if start_image is not None:
        start = fit_image(start_image, height, width, "start_image")
        if start.shape[0] > length:
            log.warning("start_image: %d frames for a %d-frame clip; only the first %d are used.",
                        start.shape[0], length, length)
            start = start[:length]
        known.update({i: start[i] for i in range(start.shape[0])})
    if end_image is not None:
        end = fit_image(end_image, height, width, "end_image")
        if end_in_sequence:
            if end.shape[0] > length:
                log.warning("end_image: %d frames for a %d-frame clip; only the last %d are used.",
                            end.shape[0], length, length)
                end = end[-length:]
            first = length - end.shape[0]
            overlap = sorted(set(range(first, length)) & set(known))
            if overlap:
                log.warning("end_image: frames %s are also start_image frames; the end_image wins there.", overlap)
            known.update({first + i: end[i] for i in range(end.shape[0])})
        else:
            if end.shape[0] > 1:
                log.warning("end_image: %d frames given, but with fun_or_fl2v_model off the end image is encoded "
                            "alone as one extra latent frame; only its last frame is used.", end.shape[0])
            separate_end = end[-1:]
    if keyframes is not None or (keyframe_indices or "").strip():
        indices = parse_indices(keyframe_indices, length, "keyframe_indices")
        if keyframes is None:
            raise ValueError(f"keyframe_indices: '{keyframe_indices}' is set but no keyframes IMAGE is connected. "
                             "Fix: connect the keyframes (one image per index) or clear keyframe_indices.")
        frames = fit_image(keyframes, height, width, "keyframes")
        if len(indices) != frames.shape[0]:
            raise ValueError(
                f"keyframe_indices: {len(indices)} index(es) in '{keyframe_indices}' for {frames.shape[0]} keyframe "
                f"image(s). Fix: give exactly one pixel-frame index per keyframe image, e.g. "
                f"'{', '.join(str(i * ((length - 1) // max(1, frames.shape[0] - 1))) for i in range(frames.shape[0]))}'.")
        overridden = sorted(set(indices) & set(known))
        if overridden:
            log.warning("keyframes: frames %s are also start/end image frames; the keyframe wins there.", overridden)
        known.update({i: frames[k] for k, i in enumerate(indices)})
    return known, separate_end


def scale_toward_mean(latent: torch.Tensor, strength: float, latent_mean: torch.Tensor | None) -> torch.Tensor:
    """``mean + strength * (latent - mean)`` per channel: strength < 1 pulls a latent toward the
    "empty" latent (0 after the model's normalization), as the wrapper's ``*_latent_strength`` does
    on its normalized latents. latent [1, C, t, h, w]; latent_mean [C]."""
    if strength == 1.0:
        return latent
    if latent_mean is None:
        raise ValueError("latent_strength != 1 needs the VAE's per-channel latent mean (latent_mean).")
    mean = latent_mean.to(latent).reshape(1, -1, 1, 1, 1)
    return mean + strength * (latent - mean)


def reference_pad_frame(ref_pad_image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The ID-V2V padding frame [H, W, 3]: the first frame of ``ref_pad_image`` (IMAGE [N, H', W', C>=3]),
    RGB only, center-cropped and resized to (height, width) like ``start_image``. More than one frame is
    allowed (native uses the first) and logged as a warning; a non-IMAGE shape raises ValueError."""
    if not isinstance(ref_pad_image, torch.Tensor) or ref_pad_image.dim() != 4:  # a MASK [F, H, W] is no image
        found = list(ref_pad_image.shape) if isinstance(ref_pad_image, torch.Tensor) else type(ref_pad_image).__name__
        raise ValueError(f"ref_pad_image: expected an IMAGE [frames,H,W,3], got {found}. Fix: connect an IMAGE "
                         "output (Load Image), not a MASK or a latent.")
    if ref_pad_image.shape[0] > 1:
        log.warning("ref_pad_image: %d frames given; only its first frame fills the unknown frames.",
                    ref_pad_image.shape[0])
    return fit_image(ref_pad_image[:1], height, width, "ref_pad_image")[0]


def pad_frames(length: int, height: int, width: int, null_fill: str = "gray",
               pad: torch.Tensor | None = None) -> torch.Tensor:
    """The image buffer [length, height, width, 3] before the known frames go on top: every frame is the
    null fill (:data:`NULL_FILLS`), or the padding frame ``pad`` [H, W, 3] (ID-V2V: as native
    WanImageToVideo's ``ref_pad_image``, which replaces the gray fill)."""
    if pad is None:
        return torch.full((length, height, width, 3), NULL_FILLS[null_fill])
    return pad.float()[None].expand(length, -1, -1, -1).clone()


def _encode(encode: Encoder, pixels: torch.Tensor, geometry: VaeGeometry, h: int, w: int, what: str) -> torch.Tensor:
    latent = encode(pixels)
    want = (1, geometry.latent_channels, geometry.latent_frames(pixels.shape[0]), h, w)
    if tuple(latent.shape) != want:
        raise ValueError(f"vae: encoding {what} ({pixels.shape[0]} frames) gave a latent of shape {list(latent.shape)}, "
                         f"expected {list(want)} for the {geometry.name} VAE. Fix: use a {geometry.name} VAE "
                         f"({geometry.latent_channels} channels) that matches the model.")
    return latent


def build_i2v_embeds(encode: Encoder, *, length: int, height: int, width: int, geometry: VaeGeometry,
                     start_image: torch.Tensor | None = None, end_image: torch.Tensor | None = None,
                     keyframes: torch.Tensor | None = None, keyframe_indices: str = "",
                     fun_or_fl2v_model: bool = True, null_fill: str = "gray", latent_strength: float = 1.0,
                     latent_mean: torch.Tensor | None = None,
                     should_stop: Callable[[], None] | None = None,
                     ref_pad_image: torch.Tensor | None = None) -> I2VEmbeds:
    """Build the I2V concat inputs for a clip of ``length`` pixel frames.

    Args:
        encode: pixels [F, H, W, 3] in 0..1 -> raw latent [1, C, T, h, w].
        length: pixel frames F, must be 1 + 4k.
        height, width: pixel size, multiples of ``geometry.model_multiple`` (16, or 32 for Wan 2.2 5B).
        geometry: the VAE geometry (:data:`masking.geometry.WAN21` / ``WAN22``).
        start_image, end_image, keyframes, keyframe_indices: the known frames (:func:`place_known_frames`).
        fun_or_fl2v_model: on: the end image is the last pixel frame(s) of the clip and the whole
            sequence is encoded at once (official FLF2V, Fun-InP, Wan 2.2). Off: the end image is
            encoded on its own as one extra latent frame after the clip (all four slots "given"),
            which is dropped after sampling (``trim_end_latent`` = 1).
        null_fill: "gray" (0.5, native) or "black" (0.0, wrapper) for unknown frames, in IMAGE space.
        latent_strength: scales the latent frames that hold a given frame toward the empty latent
            (1.0 = unchanged, as native). Needs ``latent_mean`` [C] when != 1.
        should_stop: called between encodes; raises to interrupt.
        ref_pad_image: IMAGE [N, H, W, C>=3] (ID-V2V padding): its first frame, RGB only, resized like
            ``start_image``, fills every unknown frame instead of ``null_fill``; the known frames go on
            top and the concat mask is unchanged (:func:`pad_frames`).

    Returns:
        :class:`I2VEmbeds`.
    """
    latent_t = check_length(length, geometry)
    geometry.check_spatial(height, width, "width/height")
    if null_fill not in NULL_FILLS:
        raise ValueError(f"null_fill: '{null_fill}' is not one of {sorted(NULL_FILLS)}.")
    if latent_strength < 0:
        raise ValueError(f"latent_strength: {latent_strength} is negative. Fix: use 0..1 (1 = as encoded).")
    separate = end_image is not None and not fun_or_fl2v_model
    if separate and latent_t + 1 > MAX_TRAINED_LATENT_FRAMES:
        raise ValueError(
            f"end_image: with fun_or_fl2v_model off the end image is encoded as an extra latent frame, so "
            f"length {length} needs {latent_t + 1} latent frames, past the {MAX_TRAINED_LATENT_FRAMES} "
            f"({geometry.pixel_frames(MAX_TRAINED_LATENT_FRAMES)} frames) Wan I2V models are trained on; the end "
            f"of the clip would morph or flash. Fix: use length <= "
            f"{geometry.pixel_frames(MAX_TRAINED_LATENT_FRAMES - 1)}, or turn fun_or_fl2v_model on "
            f"(official FLF2V / Wan 2.2 models).")
    h, w = height // geometry.spatial_stride, width // geometry.spatial_stride
    pad = None if ref_pad_image is None else reference_pad_frame(ref_pad_image, height, width)

    known, separate_end = place_known_frames(length, height, width, start_image, end_image, keyframes,
                                             keyframe_indices, end_in_sequence=not separate)
    pixels = pad_frames(length, height, width, null_fill, pad)
    frame_mask = torch.ones(length)
    for index, image in known.items():
        pixels[index] = image.to(pixels)
        frame_mask[index] = 0.0

    latent = _encode(encode, pixels, geometry, h, w, "the clip")
    del pixels
    concat_mask = frame_mask_to_concat_mask(frame_mask, geometry, h, w).to(latent.device)
    if separate_end is not None:
        if should_stop is not None:
            should_stop()
        end_latent = _encode(encode, separate_end, geometry, h, w, "end_image")
        latent = torch.cat([latent, end_latent.to(latent)], dim=2)
        concat_mask = torch.cat([concat_mask, concat_mask.new_zeros(1, geometry.time_stride, 1, h, w)], dim=2)

    if latent_strength != 1.0:
        given = (concat_mask == 0).flatten(3).any(-1).any(1)[0]  # [T'] latent frames holding a given frame
        latent = latent.clone()
        latent[:, :, given] = scale_toward_mean(latent[:, :, given], latent_strength, latent_mean)

    if not known and separate_end is None:
        log.warning("WanMaskI2VEmbeds: no start_image, end_image or keyframes; every frame is generated from "
                    "the %s.", "ref_pad_image padding" if pad is not None else f"null fill ({null_fill})")
    return I2VEmbeds(concat_latent_image=latent, concat_mask=concat_mask, frame_mask=frame_mask,
                     latent_frames=latent.shape[2], trim_end_latent=1 if separate_end is not None else 0)


def join_clip_vision_tokens(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """First-last-frame image conditioning: the start image's CLIP vision tokens, then the end image's.

    [B, N1, D] and [B, N2, D] -> [B, N1 + N2, D], as native WanFirstLastFrameToVideo and the official
    FLF2V pipeline join them. Raises ValueError when the batch or feature sizes differ (two different
    CLIP vision models).
    """
    if start.dim() != 3 or end.dim() != 3 or start.shape[0] != end.shape[0] or start.shape[-1] != end.shape[-1]:
        raise ValueError(
            f"clip_vision_end_output: its tokens {list(end.shape)} cannot follow clip_vision_output's "
            f"{list(start.shape)} (same batch and feature size needed). Fix: encode both images with the same "
            f"CLIP vision model (CLIPVisionEncode, crop none).")
    return torch.cat([start, end.to(start)], dim=-2)


def trim_latent(samples: torch.Tensor, start: int = 0, end: int = 0, input_name: str = "samples") -> torch.Tensor:
    """Drop ``start`` latent frames from the front and ``end`` from the back of [B, C, T, h, w] (or a
    noise mask [B, 1, T, h, w]); raises when nothing would remain."""
    t = samples.shape[2]
    if start < 0 or end < 0 or start + end >= t:
        raise ValueError(f"{input_name}: cannot trim {start} latent frame(s) from the start and {end} from the end "
                         f"of a latent with {t} frames. Fix: connect the trim outputs of the node that built it.")
    return samples[:, :, start:t - end]
