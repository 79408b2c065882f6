"""Native Wan conditioning nodes (``comfy_extras/nodes_wan.py``), probed by what they do.

ComfyUI changes these nodes between versions; the pack compares itself with them in its README, warnings
and tests. What a running version does is found here by running the native node on a tiny input (never by
reading its source or comparing version strings), once per node class.

* ``WanAnimateToVideo``'s character mask: ComfyUI up to 0.33 writes mask frame f to concat-mask slot f
  (about 3 frames early); after PR #16406 (0.34+) frame 0 fills slots 0-3 and frame f >= 1 sits in slot
  f+3, as upstream Wan-Animate and this pack. :func:`native_animate_mask_slot_shift` says which.
"""
from __future__ import annotations

import logging

import torch

log = logging.getLogger("WanMasking")

ANIMATE_SLOT_SHIFT_SAME_SLOT = 0
"""Native writes character-mask frame f to slot f (ComfyUI up to 0.33)."""
ANIMATE_SLOT_SHIFT_CAUSAL = 3
"""Native writes frame 0 to slots 0-3 and frame f >= 1 to slot f+3 (ComfyUI PR #16406 on; this pack)."""

_animate_shifts: dict[type, int | None] = {}


class ProbeVae:
    """Stands in for a Wan 2.1 VAE in probes: ``encode`` pixels [F, H, W, 3] -> zeros [1, 16, 1+(F-1)//4,
    H/8, W/8], so a probe needs no model."""

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        f, h, w = pixels.shape[0], pixels.shape[1], pixels.shape[2]
        return torch.zeros(1, 16, 1 + (f - 1) // 4, h // 8, w // 8)


def native_node_class(node_id: str):
    """The class the running ComfyUI registers for ``node_id`` (None when it has none)."""
    import nodes
    return nodes.NODE_CLASS_MAPPINGS.get(node_id)


def run_node(node_class, **inputs) -> tuple:
    """A node's outputs for ``inputs``: a V3 node's ``execute`` or a V1 node's ``FUNCTION``."""
    if hasattr(node_class, "FUNCTION"):
        out = getattr(node_class(), node_class.FUNCTION)(**inputs)
    else:
        out = node_class.execute(**inputs)
    return tuple(getattr(out, "result", out))


def native_animate_mask_slot_shift(node_class=None) -> int | None:
    """Where native ``WanAnimateToVideo`` (or ``node_class``) writes character-mask frame f >= 1: in
    concat-mask slot f + shift, with shift :data:`ANIMATE_SLOT_SHIFT_SAME_SLOT` (0, ComfyUI up to 0.33) or
    :data:`ANIMATE_SLOT_SHIFT_CAUSAL` (3, newer ComfyUI and this pack). None when the node is missing or
    the probe cannot tell (a node that fails on the probe input or places the mask some other way).

    Probed once per class: the node runs on 9 frames of 16x16 with a stand-in VAE and a character mask
    that is 1 only on frame 1; the first clip slot that holds 1 is slot 1 + shift.
    """
    if node_class is None:
        node_class = native_node_class("WanAnimateToVideo")
        if node_class is None:
            return None
    if node_class not in _animate_shifts:
        _animate_shifts[node_class] = _probe_animate_mask(node_class)
    return _animate_shifts[node_class]


def _probe_animate_mask(node_class) -> int | None:
    length, size, hot = 9, 16, 1
    latent_t = 1 + (length - 1) // 4
    mask = torch.zeros(length, size, size)
    mask[hot] = 1.0
    cond = [[torch.zeros(1, 1, 8), {}]]
    try:
        positive = run_node(node_class, positive=cond, negative=cond, vae=ProbeVae(), width=size, height=size,
                            length=length, batch_size=1, continue_motion_max_frames=5, video_frame_offset=0,
                            background_video=torch.full((length, size, size, 3), 0.5), character_mask=mask)[0]
        concat_mask = positive[0][1]["concat_mask"]
        slots = concat_mask[0, :, -latent_t:, 0, 0].transpose(0, 1).reshape(-1)[:length]  # the clip's slots
    except Exception as e:  # a node this probe does not understand: say nothing rather than guess
        log.debug("native WanAnimateToVideo probe failed: %s", e)
        return None
    hot_slots = (slots > 0.5).nonzero().flatten().tolist()
    shift = hot_slots[0] - hot if len(hot_slots) == 1 else None
    return shift if shift in (ANIMATE_SLOT_SHIFT_SAME_SLOT, ANIMATE_SLOT_SHIFT_CAUSAL) else None
