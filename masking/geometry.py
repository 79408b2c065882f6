"""Wan VAE geometry: the one place that knows how pixel frames and pixels map to latent cells.

Wan's causal VAE packs pixel frame 0 alone into latent frame 0, then pixel frames
``4t-3 .. 4t`` into latent frame ``t`` (t >= 1). Spatially each latent cell covers an
``s x s`` pixel block (s = 8 for Wan 2.1, 16 for the Wan 2.2 5B VAE).

Everything in this pack that needs that mapping (latent noise masks, the I2V slot masks,
VACE, the VAE's chunking, previews, training weights) asks this module. No other file does
``4*t-3`` arithmetic.

The *slot* layout is the one upstream Wan uses for the I2V concat mask: frame 0 is repeated
into slots 0..3, pixel frame f >= 1 sits in slot f+3, so latent t owns slots 4t..4t+3.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch


class FrameLayout(str, Enum):
    """How the frame axis of a mask relates to a latent with T frames."""

    BROADCAST = "broadcast"  # 1 frame: applies to every frame
    LATENT = "latent"  # T frames: already one per latent frame
    PIXEL = "pixel"  # 1 + 4(T-1) frames: one per pixel frame


@dataclass(frozen=True)
class VaeGeometry:
    """Strides of a Wan VAE.

    Attributes:
        name: human-readable name used in messages.
        time_stride: pixel frames per latent frame after frame 0 (4 for every Wan VAE).
        spatial_stride: pixels per latent cell along H and W (8 or 16).
        latent_channels: channels of the latent (16 or 48).
        patch: the DiT's spatial patch size in latent cells (2 for Wan), so pixel sizes must be
            multiples of ``spatial_stride * patch``.
    """

    name: str
    time_stride: int
    spatial_stride: int
    latent_channels: int
    patch: int = 2

    # ---- time -------------------------------------------------------------------------
    def latent_frames(self, pixel_frames: int) -> int:
        """T for F pixel frames: ``1 + (F-1)//4``. Use :meth:`check_pixel_frames` first when
        trailing frames must not be dropped."""
        if pixel_frames < 1:
            raise ValueError(f"need at least 1 pixel frame, got {pixel_frames}")
        return 1 + (pixel_frames - 1) // self.time_stride

    def pixel_frames(self, latent_frames: int) -> int:
        """F decoded from T latent frames: ``1 + 4(T-1)``."""
        if latent_frames < 1:
            raise ValueError(f"need at least 1 latent frame, got {latent_frames}")
        return 1 + self.time_stride * (latent_frames - 1)

    def is_exact_pixel_count(self, pixel_frames: int) -> bool:
        """True when F = 1 + 4k, i.e. the VAE uses every frame."""
        return pixel_frames >= 1 and (pixel_frames - 1) % self.time_stride == 0

    def check_pixel_frames(self, pixel_frames: int, input_name: str) -> int:
        """Return T for F pixel frames, or raise when F is not 1 + 4k (frames would be dropped)."""
        if not self.is_exact_pixel_count(pixel_frames):
            lo = self.pixel_frames(self.latent_frames(pixel_frames))
            hi = lo + self.time_stride
            raise ValueError(
                f"{input_name}: {pixel_frames} frames is not of the form 1+4k, so the {self.name} VAE "
                f"would silently drop the last {pixel_frames - lo} frame(s). "
                f"Use {lo} or {hi} frames (e.g. trim or pad the clip)."
            )
        return self.latent_frames(pixel_frames)

    def latent_index_of_frame(self, frame: int) -> int:
        """Latent frame that pixel frame ``frame`` is packed into (0 -> 0; 4t-3..4t -> t)."""
        if frame < 0:
            raise ValueError(f"pixel frame index must be >= 0, got {frame}")
        return (frame + self.time_stride - 1) // self.time_stride

    def frame_group(self, latent_index: int) -> range:
        """Pixel frames packed into latent frame ``latent_index``: ``range(0,1)`` then ``range(4t-3, 4t+1)``."""
        if latent_index < 0:
            raise ValueError(f"latent frame index must be >= 0, got {latent_index}")
        if latent_index == 0:
            return range(0, 1)
        start = self.time_stride * (latent_index - 1) + 1
        return range(start, start + self.time_stride)

    def frame_to_latent_index(self, pixel_frames: int, device=None) -> torch.Tensor:
        """LongTensor [F]: the latent frame of every pixel frame."""
        f = torch.arange(pixel_frames, device=device)
        return torch.div(f + self.time_stride - 1, self.time_stride, rounding_mode="floor")

    def slot_of_frame(self, frame: int) -> int:
        """Slot of pixel frame ``frame`` in the upstream I2V layout (frame 0 -> slots 0..3, f -> f+3).

        Returns the *last* slot a frame occupies; frame 0 occupies slots ``0..time_stride-1``.
        """
        if frame < 0:
            raise ValueError(f"pixel frame index must be >= 0, got {frame}")
        return frame + self.time_stride - 1

    def frames_to_slots(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        """Repeat frame 0 along ``dim`` so that F = 1+4(T-1) frames become 4T slots.

        Slot ``4t + c`` then holds the c-th pixel frame of latent t's causal group (frame 0 fills
        all four slots of latent 0). Shape: [..., F, ...] -> [..., 4T, ...].
        """
        first = x.narrow(dim, 0, 1)
        reps = [1] * x.dim()
        reps[dim] = self.time_stride - 1
        return torch.cat([first.repeat(*reps), x], dim=dim)

    def causal_groups(self, x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Split F = 1+4(T-1) pixel frames along ``dim`` into the causal groups, as views (no copy).

        Returns ``(first, rest)``: ``first`` is frame 0 alone, [..., 1, ...] (latent 0's group);
        ``rest`` is frames 1..F-1 as [..., T-1, 4, ...], where ``rest[..., t-1, c, ...]`` is the c-th
        frame of latent t's group, ``frame_group(t)[c]``. Raises when F is not of the form 1+4k.
        """
        dim = dim % x.dim()
        f = x.shape[dim]
        if not self.is_exact_pixel_count(f):
            raise ValueError(f"causal groups need 1+{self.time_stride}k frames along dim {dim}, got {f}")
        rest = x.narrow(dim, 1, f - 1).unflatten(dim, (self.latent_frames(f) - 1, self.time_stride))
        return x.narrow(dim, 0, 1), rest

    def resolve_frames(self, mask_frames: int, latent_frames: int, input_name: str) -> FrameLayout:
        """Classify a mask's frame count against a latent with T frames, or raise.

        Allowed: 1 (broadcast), T (per latent frame), 1+4(T-1) (per pixel frame).
        """
        exact = self.pixel_frames(latent_frames)
        if mask_frames == exact and exact != latent_frames:
            return FrameLayout.PIXEL
        if mask_frames == latent_frames:
            return FrameLayout.LATENT
        if mask_frames == 1:
            return FrameLayout.BROADCAST
        raise ValueError(
            f"{input_name}: {mask_frames} frames does not fit a latent with {latent_frames} latent frames. "
            f"Give 1 frame (used for every frame), {latent_frames} (one per latent frame) or "
            f"{exact} (one per pixel frame: 1+4*({latent_frames}-1)). "
            f"Fix: make the mask as long as the video you encoded (1+4k frames)."
        )

    # ---- space ------------------------------------------------------------------------
    def latent_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the latent for pixel (H, W); H and W must be multiples of the stride."""
        self.check_spatial(height, width, "image", multiple=self.spatial_stride)
        return height // self.spatial_stride, width // self.spatial_stride

    def pixel_size(self, h: int, w: int) -> tuple[int, int]:
        """(H, W) covered by an (h, w) latent."""
        return h * self.spatial_stride, w * self.spatial_stride

    @property
    def model_multiple(self) -> int:
        """Pixel sizes the Wan DiT accepts are multiples of this (16 for Wan 2.1, 32 for 2.2 5B)."""
        return self.spatial_stride * self.patch

    def check_spatial(self, height: int, width: int, input_name: str, multiple: int | None = None) -> None:
        """Raise when H or W is not a multiple of ``multiple`` (default: :attr:`model_multiple`)."""
        m = multiple or self.model_multiple
        if height % m or width % m:
            fix_h, fix_w = round(height / m) * m or m, round(width / m) * m or m
            raise ValueError(
                f"{input_name}: {width}x{height} (WxH) is not a multiple of {m} for the {self.name} VAE. "
                f"Use e.g. {fix_w}x{fix_h}."
            )


WAN21 = VaeGeometry(name="Wan 2.1", time_stride=4, spatial_stride=8, latent_channels=16)
"""Wan 2.1 VAE (also Wan 2.2 14B): 16 channels, 8x8 pixels per cell."""

WAN22 = VaeGeometry(name="Wan 2.2 5B", time_stride=4, spatial_stride=16, latent_channels=48)
"""Wan 2.2 TI2V-5B VAE: 48 channels, 16x16 pixels per cell."""

GEOMETRIES = (WAN21, WAN22)


def geometry_for_channels(channels: int, input_name: str = "samples") -> VaeGeometry:
    """The VAE geometry of a latent with ``channels`` channels (16 -> Wan 2.1, 48 -> Wan 2.2 5B)."""
    for g in GEOMETRIES:
        if g.latent_channels == channels:
            return g
    known = ", ".join(f"{g.latent_channels} ({g.name})" for g in GEOMETRIES)
    raise ValueError(
        f"{input_name}: a latent with {channels} channels is not a Wan video latent. "
        f"Expected {known}. Fix: encode with a Wan VAE or use an empty Wan latent node."
    )


def wan_video_latent(latent: torch.Tensor, input_name: str = "samples") -> torch.Tensor:
    """``latent`` itself when it is a 5-D Wan video latent [B, C, T, h, w]; a clear error otherwise."""
    if latent.dim() != 5:
        raise ValueError(f"{input_name}: expected a Wan video latent [B,C,T,h,w], got shape {list(latent.shape)}. "
                         "Fix: encode the video with a Wan VAE (VAEEncode) or use an empty Wan video latent.")
    return latent
