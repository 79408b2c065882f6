"""Masks and given frames under context windows: the per-window math of ``WanMaskContextWindows``.

Long clips are sampled in overlapping windows of latent frames (the schedules and fuse weights are
ComfyUI's own; the compatibility module hands them in). This module decides, for each window,
which latent frames the model sees and slices every per-frame conditioning along ITS time axis
with exactly those frames:

* ``c_concat`` (I2V / FLF2V / Animate: ``[1 - concat_mask (4) | image latent (C)]``)
  [B, 4+C, T, h, w], time dim 2;
* ``vace_context`` [B, n, 96, T, h, w], time dim 3;
* ``pose_latents`` (Animate) [B, C, T-1, h, w], time dim 2, no entry for the reference frame 0;
* ``face_pixel_values`` (Animate) [B, 3, 1+4(T-2), 512, 512], four pixel frames per latent, no
  entry for the reference frame.

The frames the model sees for one window (a :class:`WindowPlan`) are, in order: an optional
anchor (the frame before the window, ComfyUI 0.33's ``causal_window_fix``; its output is
dropped), the window's own frames, then optional guides: the given frames (start, end,
keyframes, a separately encoded end latent, the VACE reference, Animate's reference and motion
frames) that the window does not contain, with their conditioning (so their "given" mask slots
come along) and the current latent at their position. Guide outputs are dropped before fusing,
as ComfyUI 0.33 does for LTXV guide frames.

Pure torch: no ComfyUI import. Shapes: latent x [B, C, T, h, w]; the window dim is 2.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

GIVEN_EPS = 1e-6
"""A concat-mask slot counts as given where ``1 - concat_mask`` is 1 within this tolerance."""
REFERENCE_EPS = 1e-3
"""A VACE reference frame's reactive half is the empty latent: |value| below this after normalization."""


@dataclass(frozen=True)
class TimeAxis:
    """Where a per-frame conditioning keeps its time axis.

    Attributes:
        dim: the tensor dim that is time.
        offset: leading latent frames with no entry (1 for Animate's reference frame); the model
            applies entry j to window position j + offset.
        scale: entries per latent frame (4 pixel frames per latent for Animate's face video).
    """

    dim: int
    offset: int = 0
    scale: int = 1

    def expected_size(self, latent_frames: int) -> int:
        """Entries for a latent of ``latent_frames`` frames (scale 4: the pixel frames 1 + 4(t-1))."""
        t = latent_frames - self.offset
        return t if self.scale == 1 else 1 + self.scale * (t - 1)


TIME_AXES: dict[str, TimeAxis] = {
    "c_concat": TimeAxis(dim=2),
    "vace_context": TimeAxis(dim=3),
    "pose_latents": TimeAxis(dim=2, offset=1),
    "face_pixel_values": TimeAxis(dim=2, offset=1, scale=4),
}
"""The model conditionings of the Wan models (as ComfyUI's ``extra_conds`` names them) and their time axes."""

INPUT_NAMES = {"c_concat": "concat_latent_image / concat_mask (I2V, first-last, Animate)",
               "vace_context": "vace_frames / vace_mask (VACE)", "pose_latents": "pose_video_latent (Animate)",
               "face_pixel_values": "face_video_pixels (Animate)"}


@dataclass
class WindowPlan:
    """The latent frames the model sees for one window.

    Attributes:
        index_list: the schedule's window (latent frame indices, the ones that are fused).
        anchor: the frame before the window, prepended and dropped after the model (or None).
        guides: given frames outside the window, appended and dropped after the model.
        retain: full-clip frames whose conditioning replaces the window's first own frames
            (ComfyUI 0.33's ``retain_first_frame``: [0]); never the anchor.
        total_frames: T of the full latent.
    """

    index_list: list[int]
    anchor: int | None = None
    guides: list[int] = field(default_factory=list)
    retain: list[int] = field(default_factory=list)
    total_frames: int = 0
    dim: int = 2

    @property
    def lead(self) -> int:
        return 0 if self.anchor is None else 1

    @property
    def x_indices(self) -> list[int]:
        """[anchor] + window + guides: what the model's input holds, in order."""
        return ([] if self.anchor is None else [self.anchor]) + list(self.index_list) + list(self.guides)

    @property
    def context_length(self) -> int:
        return len(self.index_list)

    @property
    def center_ratio(self) -> float:
        return (min(self.index_list) + max(self.index_list)) / (2 * max(self.total_frames, 1))


def plan_window(index_list: list[int], total_frames: int, anchor: bool = False, guide_frames=(),
                retain=(), dim: int = 2) -> WindowPlan:
    """The :class:`WindowPlan` of one scheduled window.

    Args:
        index_list: the window's latent frames, from the schedule.
        total_frames: T.
        anchor: prepend frame ``index_list[0] - 1`` when it exists (0.33's ``causal_window_fix``).
        guide_frames: given frames to put into every window (those already seen are skipped).
        retain: full-clip frames whose conditioning goes to the window's first own positions.
    """
    a = index_list[0] - 1 if anchor and 0 <= index_list[0] - 1 < total_frames else None
    seen = set(index_list) | ({a} if a is not None else set())
    guides = [g for g in sorted(set(guide_frames)) if g not in seen]
    return WindowPlan(list(index_list), a, guides, list(retain), total_frames, dim)


def take(t: torch.Tensor, dim: int, indices: list[int]) -> torch.Tensor:
    """``t`` at ``indices`` along ``dim`` (a copy)."""
    return t[(slice(None),) * dim + (list(indices),)]


def _order_for_offset(plan: WindowPlan, offset: int) -> list[int]:
    """x indices whose frame has an entry in a conditioning with ``offset`` leading frames missing.

    The model applies entry j at window position j + offset, so the first ``offset`` positions get
    none; guides below ``offset`` (e.g. Animate's reference) have none either."""
    return [i - offset for i in plan.x_indices[offset:] if i - offset >= 0]


def guides_sorted_for_offsets(plan: WindowPlan, offsets: set[int]) -> WindowPlan:
    """Guides with no entry in an offset conditioning (frame < offset) go last, so that every other
    guide's entries stay aligned with its position."""
    if not plan.guides or not offsets:
        return plan
    m = max(offsets)
    plan.guides = [g for g in plan.guides if g >= m] + [g for g in plan.guides if g < m]
    return plan


def slice_cond(key: str, cond: torch.Tensor, plan: WindowPlan) -> torch.Tensor | None:
    """One model conditioning for one window, or None where it has no time axis to slice.

    Known keys (:data:`TIME_AXES`) are sliced on their own time axis and must have the clip's
    length there (else ValueError naming the input). Other tensors follow ComfyUI's generic rule:
    sliced on the window dim where they have the latent's length there.

    Args:
        key: the model conditioning's name (``c_concat``, ``vace_context``...).
        cond: its tensor.
        plan: the window.
    """
    total = plan.total_frames
    axis = TIME_AXES.get(key)
    if axis is None:
        if plan.dim < cond.ndim and cond.shape[plan.dim] == total:
            axis = TimeAxis(plan.dim)
        elif cond.ndim < plan.dim and cond.ndim > 0 and cond.shape[0] == total:
            axis = TimeAxis(0)
        else:
            return None
    elif cond.ndim <= axis.dim or cond.shape[axis.dim] != axis.expected_size(total):
        found = "no time axis" if cond.ndim <= axis.dim else f"{cond.shape[axis.dim]} entries on its time axis"
        raise ValueError(
            f"context windows: the conditioning {key} ({INPUT_NAMES.get(key, key)}) has {found} "
            f"(shape {list(cond.shape)}) but the latent has {total} frames, so it needs "
            f"{axis.expected_size(total)}; the windows cannot slice it. Likely cause: the embeds were built for "
            f"another length than the latent. Fix: sample the latent output of the same embeds node, or give both "
            f"the same length.")
    if axis.offset == 0 and axis.scale == 1:
        out = take(cond, axis.dim, plan.x_indices)
        for k, frame in enumerate(plan.retain):
            pos = plan.lead + k
            if pos < plan.lead + len(plan.index_list):
                out[(slice(None),) * axis.dim + (pos,)] = cond[(slice(None),) * axis.dim + (frame,)]
        return out
    entries = _order_for_offset(plan, axis.offset)
    if axis.scale > 1:
        entries = [j * axis.scale + k for j in entries for k in range(axis.scale) if j * axis.scale + k < cond.shape[axis.dim]]
    return take(cond, axis.dim, entries)


def strip(out: torch.Tensor, plan: WindowPlan) -> torch.Tensor:
    """The model's output for the window's own frames: anchor and guides dropped."""
    return out.narrow(plan.dim, plan.lead, len(plan.index_list))


def given_frames(c_concat: torch.Tensor | None = None, vace_context: torch.Tensor | None = None,
                 latent_channels: int = 16) -> list[int]:
    """Latent frames that hold a given frame, from the model conditionings.

    * ``c_concat`` [B, 4+C, T, h, w] (C = ``latent_channels``: the 4 mask channels lead): frames where at least one of the
      four slots is given (``1 - concat_mask`` = 1) over the whole frame: a start, end or keyframe
      image, a separately encoded end latent, Animate's reference and motion frames.
    * ``vace_context`` [B, n, 96, T, h, w]: the leading reference frames (all-zero mask, empty
      reactive half), in any context.
    """
    found: set[int] = set()
    if c_concat is not None and c_concat.ndim == 5 and c_concat.shape[1] == 4 + latent_channels:
        slots = c_concat[:, :4].float()  # [B, 4, T, h, w]
        full = ((slots - 1).abs() <= GIVEN_EPS).permute(2, 0, 1, 3, 4).flatten(3).all(-1)  # [T, B, 4]
        found.update(int(t) for t in full.all(1).any(1).nonzero().flatten())
    if vace_context is not None and vace_context.ndim == 6 and vace_context.shape[2] >= 96:
        v = vace_context.float()
        t_major = v.permute(3, 0, 1, 2, 4, 5).flatten(3)  # [T, B, n, 96*h*w]
        hw = v.shape[-1] * v.shape[-2]
        mask_zero = (t_major[..., 32 * hw:] == 0).all(-1)
        reactive_empty = (t_major[..., 16 * hw:32 * hw].abs() < REFERENCE_EPS).all(-1)
        is_ref = (mask_zero & reactive_empty).all(1).any(1)  # [T]: every batch item, some context
        t = 0
        while t < is_ref.shape[0] - 1 and bool(is_ref[t]):
            found.add(t)
            t += 1
    return sorted(found)


def region_index(plan: WindowPlan, regions: int) -> int:
    """Which of ``regions`` conditionings a window takes (``split_conds_to_windows``), by its center."""
    return min(max(int(plan.center_ratio * regions), 0), regions - 1)


def _weights_like(weights, x: torch.Tensor, dim: int) -> torch.Tensor:
    """Fuse weights (a list or a 1-D tensor) as float32, shaped to broadcast along ``dim`` of ``x``."""
    w = torch.as_tensor(weights, dtype=torch.float32).to(device=x.device)
    shape = [1] * x.ndim
    shape[dim] = -1
    return w.reshape(shape)


class Fuser:
    """Accumulates the windows' outputs into the full latent's, per conditioning.

    ``relative``: each frame is the running average weighted by its distance to the window
    center (ComfyUI's "relative" fuse). Otherwise every output frame is weighted by the fuse
    method's weights and the sums are divided by the summed weights at the end.

    Args:
        x: the full latent [B, C, T, h, w] (shape, dtype and device of the result).
        n_conds: outputs per window (cond, uncond...).
        dim: the window dim.
    """

    def __init__(self, x: torch.Tensor, n_conds: int, dim: int = 2, relative: bool = False):
        self.dim, self.relative = dim, relative
        self.out = [torch.zeros_like(x) for _ in range(n_conds)]
        shape = [1] * x.ndim
        shape[dim] = x.shape[dim]
        fill = torch.ones if relative else torch.zeros
        self.counts = [fill(shape, device=x.device) for _ in range(n_conds)]
        self.biases = [[0.0] * x.shape[dim] for _ in range(n_conds)]

    def add(self, index_list: list[int], outs: list[torch.Tensor], weights=None) -> None:
        """One window's stripped outputs ([B, C, len(index_list), h, w] each) and its fuse weights."""
        d = self.dim
        if self.relative:
            lo, hi = index_list[0], index_list[-1]
            for pos, idx in enumerate(index_list):
                bias = max(1e-2, 1 - abs(idx - (lo + hi) / 2) / ((hi - lo + 1e-2) / 2))
                for i, o in enumerate(outs):
                    total = self.biases[i][idx]
                    at, src = (slice(None),) * d + (idx,), (slice(None),) * d + (pos,)
                    self.out[i][at] = self.out[i][at] * (total / (total + bias)) + o[src] * (bias / (total + bias))
                    self.biases[i][idx] = total + bias
            return
        w = _weights_like(weights, self.out[0], d)
        at = (slice(None),) * d + (list(index_list),)
        for i, o in enumerate(outs):
            self.out[i][at] += o * w
            self.counts[i][at] += w

    def result(self) -> list[torch.Tensor]:
        if not self.relative:
            for o, c in zip(self.out, self.counts):
                o /= c
        return self.out


def slice_generic(t: torch.Tensor, plan: WindowPlan) -> torch.Tensor | None:
    """ComfyUI's rule for other per-frame tensors: sliced on the window dim where they have the latent's
    length there (no retain), else None (left as they are)."""
    if plan.dim < t.ndim and t.shape[plan.dim] == plan.total_frames:
        return take(t, plan.dim, plan.x_indices)
    return None


@dataclass
class WanWindowing:
    """The per-window math of one ``WanMaskContextWindows`` node (what the context handler asks).

    Attributes:
        guides: put the given frames into every window (experimental); off = exact slicing.
        anchor: prepend the frame before each window (ComfyUI 0.33's ``causal_window_fix``).
        retain: frames whose conditioning goes to each window's first own frames (``retain_first_frame``).
        split: one of several combined conditionings per window, by position (``split_conds_to_windows``).
        relative: ComfyUI's "relative" fuse (running average) instead of weighted sums.
        dim: the window dim of the latent.
    """

    guides: bool = False
    anchor: bool = False
    retain: list[int] = field(default_factory=list)
    split: bool = False
    relative: bool = False
    dim: int = 2

    def given_frames(self, model_conds: list[dict[str, torch.Tensor]], latent_channels: int,
                     total_frames: int) -> list[int]:
        """The guide frames: every conditioning's given frames (:func:`given_frames`), together."""
        found: set[int] = set()
        for mc in model_conds:
            c, v = mc.get("c_concat"), mc.get("vace_context")
            c = c if c is not None and c.ndim == 5 and c.shape[2] == total_frames else None
            v = v if v is not None and v.ndim == 6 and v.shape[3] == total_frames else None
            found.update(given_frames(c, v, latent_channels))
        return sorted(found)

    def plan(self, index_list: list[int], total_frames: int, guide_frames=(), cond_keys=()) -> WindowPlan:
        """The window's plan; ``cond_keys``: the model conditionings present (guides without an entry in
        an offset conditioning, e.g. Animate's reference for the pose latents, go last)."""
        plan = plan_window(index_list, total_frames, self.anchor, guide_frames, self.retain, self.dim)
        offsets = {TIME_AXES[k].offset for k in cond_keys if k in TIME_AXES and TIME_AXES[k].offset}
        return guides_sorted_for_offsets(plan, offsets)

    def take(self, x: torch.Tensor, plan: WindowPlan) -> torch.Tensor:
        return take(x, self.dim, plan.x_indices)

    slice_cond = staticmethod(slice_cond)
    slice_generic = staticmethod(slice_generic)
    strip = staticmethod(strip)
    region = staticmethod(region_index)

    def fuser(self, x: torch.Tensor, n_conds: int) -> Fuser:
        return Fuser(x, n_conds, self.dim, self.relative)
