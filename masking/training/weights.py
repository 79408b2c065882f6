"""Masks -> loss weights for masked-loss training, including per-frame video masks.

Convention (see :data:`masking.conventions.LOSS_WEIGHT`): 1 (8-bit 255, white) = full training
weight, 0 (black) = no training signal. A mask is a loss weight, not a crop: the model still
predicts every cell.

Pipeline (the order the musubi / blissful-tuner guide documents, table in its
"Mask Value Transformations" section)::

    raw 8-bit value --/255--> [0, 1] --resize (area down / nearest up)--> latent grid
        --causal time grouping (mean)--> raw latent weights w_raw [N, 1, T, h, w]
    w = w_raw ** gamma;  w = w * (1 - min_weight) + min_weight        (at loss time)

Shapes (N = items / mask frames, F = pixel frames = 1+4(T-1), T = latent frames, H/W = mask
pixels, h/w = latent cells):

* ComfyUI MASK: [H, W] or [N, H, W]
* latent loss weights: [N, 1, T, h, w] float32, broadcast over the latent's channels
"""
from __future__ import annotations

import logging
import math

import einops
import torch
import torch.nn.functional as F

from ..geometry import FrameLayout, VaeGeometry
from ..mask_input import check_mask_shape

log = logging.getLogger("WanMasking")

TIERS: dict[str, int] = {"face": 255, "body": 128, "hair": 80, "background": 0}
"""The guide's 8-bit tier values for character LoRAs (face > body > hair > background)."""

TIER_COLORS: dict[str, tuple[float, float, float]] = {
    "face": (1.0, 0.2, 0.2), "body": (0.2, 0.8, 0.2), "hair": (0.25, 0.45, 1.0), "background": (0.12, 0.12, 0.12),
}
"""Preview colours (RGB in [0, 1]) of the tiers; values between tiers are drawn in grey = weight."""

PRESETS: dict[str, tuple[float, float]] = {
    "default": (1.0, 0.0),
    "softer": (0.5, 0.0),
    "sharper": (2.0, 0.0),
    "with floor": (1.0, 0.1),
    "recommended": (0.7, 0.05),
    "face focused": (1.5, 0.02),
    "style/clothing": (0.5, 0.1),
    "prior preservation": (0.7, 0.0),
}
"""(gamma, min_weight) of the guide's named settings ("Recommended Settings" and the table)."""


# ---- argument checks ----------------------------------------------------------------------

def check_gamma(gamma: float, input_name: str = "gamma") -> float:
    """Raise unless gamma > 0 (musubi ``--mask_gamma``)."""
    gamma = float(gamma)
    if not gamma > 0 or math.isinf(gamma):
        raise ValueError(
            f"{input_name} must be > 0, got {gamma}. It is the exponent w**gamma: <1 softens the mask "
            f"(more training on mid tiers), 1 keeps it linear, >1 sharpens it. Fix: use e.g. 0.7 or 1.0."
        )
    return gamma


def check_min_weight(min_weight: float, input_name: str = "min_weight") -> float:
    """Raise unless 0 <= min_weight < 1 (musubi ``--mask_min_weight``)."""
    min_weight = float(min_weight)
    if not (0.0 <= min_weight < 1.0):
        raise ValueError(
            f"{input_name} must be in range [0, 1), got {min_weight}. It is the weight floor: "
            f"w*(1-min_weight)+min_weight, so 1 would erase the mask. Fix: use 0.0-0.2 (0.05 recommended "
            f"without prior preservation)."
        )
    return min_weight


# ---- values -------------------------------------------------------------------------------

def normalize_mask(mask: torch.Tensor, input_name: str = "mask") -> torch.Tensor:
    """Return a mask as float32 [N, H, W] in [0, 1].

    uint8 masks and float masks holding 8-bit values (max > 1, all integers <= 255) are divided
    by 255 (the latter with a warning). Float masks already in [0, 1] are kept. NaN, negative
    values or values above 255 raise.
    """
    mask = check_mask_shape(mask, input_name)
    if mask.dtype == torch.uint8:
        return mask.float() / 255.0
    mask = mask.float()
    lo, hi = float(mask.min()), float(mask.max())
    if lo < 0.0 or hi > 255.0:
        raise ValueError(
            f"{input_name}: values span [{lo:.4g}, {hi:.4g}]; loss weights must be in [0, 1] "
            f"(or 8-bit 0-255). Fix: normalize the mask (1 = full training weight, 0 = none)."
        )
    if hi > 1.0:
        if not torch.equal(mask, mask.round()):
            raise ValueError(
                f"{input_name}: values span [{lo:.4g}, {hi:.4g}] and are not whole 8-bit numbers, so they "
                f"are neither [0, 1] weights nor 0-255 levels. Fix: divide by the right maximum first."
            )
        log.warning("%s: values span [%g, %g]; read as 8-bit levels and divided by 255.", input_name, lo, hi)
        mask = mask / 255.0
    return mask


def apply_gamma_floor(w: torch.Tensor, gamma: float = 1.0, min_weight: float = 0.0) -> torch.Tensor:
    """``w**gamma`` then the floor ``w*(1-min_weight)+min_weight``; w in [0, 1], any shape."""
    gamma, min_weight = check_gamma(gamma), check_min_weight(min_weight)
    out = w.clamp(0.0, 1.0)
    if gamma != 1.0:
        out = out.pow(gamma)
    if min_weight > 0.0:
        out = out * (1.0 - min_weight) + min_weight
    return out


def tier_weights(gamma: float = 1.0, min_weight: float = 0.0,
                 tiers: dict[str, int] | None = None) -> dict[str, float]:
    """Final loss weight of every 8-bit tier: the guide's transformation table, one row."""
    tiers = TIERS if tiers is None else tiers
    values = apply_gamma_floor(torch.tensor([v / 255.0 for v in tiers.values()], dtype=torch.float64),
                               gamma, min_weight)
    return dict(zip(tiers, values.tolist()))


def region_stack_shape(regions: dict[str, torch.Tensor | None], who: str = "WanMaskLossTiers") -> tuple[int, int, int]:
    """The tier mask shape [N, H, W] for region masks ([H, W] or [N, H, W]; None = not given): the
    most frames of any, at the first one's size. Raises when none is given."""
    given = [m if m.dim() == 3 else m.unsqueeze(0) for m in regions.values() if m is not None]
    if not given:
        raise ValueError(f"{who}: connect at least one of {', '.join(regions)} (region masks, > 0.5 = inside).")
    return (max(m.shape[0] for m in given), *given[0].shape[-2:])


def compose_tiers(shape: tuple[int, ...], face: torch.Tensor | None = None, body: torch.Tensor | None = None,
                  hair: torch.Tensor | None = None, tiers: dict[str, int] | None = None,
                  subject: torch.Tensor | None = None) -> torch.Tensor:
    """Build a tiered weight mask [N, H, W] in [0, 1] from binary region masks (> 0.5 = inside).

    Regions are painted body, then hair, then face, so face wins over hair, hair over body and
    body over background (faces sit inside bodies, hair overlaps both). Region masks are [H, W]
    or [1 or N, H, W]; ``tiers`` holds 8-bit levels (default :data:`TIERS`). ``subject`` (group
    photos, same shapes): a binary instance mask of the one person to learn; every weight outside
    it becomes 0, so the other people's faces and bodies teach nothing.
    """
    tiers = TIERS if tiers is None else tiers
    out = torch.full(shape, tiers["background"] / 255.0)
    for name, region in (("body", body), ("hair", hair), ("face", face)):
        if region is None:
            continue
        region = region.unsqueeze(0) if region.dim() == 2 else region
        if region.shape[-2:] != out.shape[-2:] or region.shape[0] not in (1, out.shape[0]):
            raise ValueError(f"{name}: shape {list(region.shape)} does not match the tier mask {list(out.shape)}. "
                             f"Fix: give all region masks the same size and frame count (or 1 frame).")
        out = torch.where(region > 0.5, torch.tensor(tiers[name] / 255.0), out)
    if subject is not None:
        subject = subject.unsqueeze(0) if subject.dim() == 2 else subject
        if subject.shape[-2:] != out.shape[-2:] or subject.shape[0] not in (1, out.shape[0]):
            raise ValueError(f"subject: shape {list(subject.shape)} does not match the tier mask {list(out.shape)}. "
                             f"Fix: give the subject mask the regions' size and frame count (or 1 frame).")
        out = torch.where(subject > 0.5, out, torch.zeros(()))
    return out


# ---- space and time -----------------------------------------------------------------------

def _resize_axis(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Resize one of the last two axes of [N, H, W]: area average when shrinking, nearest when growing."""
    n = x.shape[dim]
    if size == n:
        return x
    target = list(x.shape[-2:])
    target[dim] = size  # dim is -2 (H) or -1 (W)
    if size < n:
        return F.adaptive_avg_pool2d(x.unsqueeze(1), target).squeeze(1)
    return F.interpolate(x.unsqueeze(1), size=target, mode="nearest-exact").squeeze(1)


def resize_weights(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[N, H, W] -> [N, h, w], per axis: area when downscaling (keeps the mean weight), nearest
    when upscaling (keeps discrete tiers: no ringing or halos)."""
    h, w = size
    if h < 1 or w < 1:
        raise ValueError(f"resize: target size must be at least 1x1, got {w}x{h} (WxH).")
    return _resize_axis(_resize_axis(mask.float(), h, -2), w, -1)


def frames_to_latent(per_item: torch.Tensor, layout: FrameLayout, latent_frames: int,
                     geometry: VaeGeometry) -> torch.Tensor:
    """[B, Fm, h, w] -> [B, T, h, w]: mean over each causal group (frame 0 alone, then groups of 4).

    A PIXEL-layout mask (1+4(T-1) frames) is averaged within its groups, a LATENT-layout one
    is used as is and a single frame is broadcast to all T latent frames.
    """
    if layout is FrameLayout.BROADCAST:
        return per_item.expand(-1, latent_frames, -1, -1)
    if layout is FrameLayout.LATENT:
        return per_item
    slots = geometry.frames_to_slots(per_item, dim=1)  # [B, 4T, h, w], frame 0 fills latent 0's group
    return einops.reduce(slots, "b (t s) h w -> b t h w", "mean", s=geometry.time_stride)


def _warn_aspect(input_name: str, mask_hw: tuple[int, int], pixel_hw: tuple[int, int]) -> None:
    (hm, wm), (hp, wp) = mask_hw, pixel_hw
    if abs(wm / hm - wp / hp) > 0.01 * (wp / hp):
        log.warning("%s: %dx%d (WxH) has another aspect ratio than the %dx%d video; stretched to fit.",
                    input_name, wm, hm, wp, hp)


def latent_loss_weights(mask: torch.Tensor | None, latent_shape: tuple[int, ...], geometry: VaeGeometry,
                        require_mask: bool = True, input_name: str = "loss_mask") -> torch.Tensor:
    """Raw loss weights of a training set of Wan latents, one per latent cell.

    Args:
        mask: MASK [H, W] or [M, H, W] in [0, 1] or 8-bit; 1 = full weight. M is
            1 (one image mask for every item and frame), T or 1+4(T-1) (one video mask for
            every item), or k*T / k*(1+4(T-1)) with k <= N (one mask per item, item after item;
            items k..N-1 then have no mask). ``None``: no item has a mask.
        latent_shape: [N, C, T, h, w] of the training latents.
        geometry: the VAE geometry (strides, causal groups).
        require_mask: items with no mask raise when True; when False they get full weight (1.0)
            everywhere, with a warning.

    Returns:
        float32 [N, 1, T, h, w] raw weights in [0, 1] (gamma and the floor are applied at loss time).
    """
    if len(latent_shape) != 5:
        raise ValueError(f"latents: expected Wan video latents [N,C,T,h,w], got shape {list(latent_shape)}. "
                         f"Fix: encode the clips with a Wan VAE (VAEEncode).")
    n, _, t, h, w = latent_shape
    full = torch.ones(n, 1, t, h, w)
    if mask is None:
        if require_mask:
            raise ValueError(
                f"{input_name}: no mask is connected but require_mask is on, so {n} training item(s) have no "
                f"loss weights. Fix: connect a MASK ({t} latent frames need 1, {t} or "
                f"{geometry.pixel_frames(t)} frames per item), or turn require_mask off to train them at full weight."
            )
        log.warning("%s: no mask connected; all %d item(s) train at full weight 1.0 (require_mask is off).",
                    input_name, n)
        return full
    mask = normalize_mask(mask, input_name)
    m, exact = mask.shape[0], geometry.pixel_frames(t)
    if m in (1, t, exact):  # one mask for every item
        per_item = mask.unsqueeze(0)
        layout = geometry.resolve_frames(m, t, input_name)
    else:
        frames = next((f for f in (exact, t) if m % f == 0 and m // f <= n), None)
        if frames is None:
            raise ValueError(
                f"{input_name}: {m} frames does not fit {n} training item(s) with {t} latent frames. Give 1 frame "
                f"(every item and frame), {t} (per latent frame) or {exact} (per pixel frame: 1+4*({t}-1)) for all "
                f"items, or one such mask per item, item after item (up to {n}x{exact} frames). "
                f"Fix: make the mask as long as the clip you encoded (1+4k frames)."
            )
        per_item = mask.reshape(m // frames, frames, *mask.shape[1:])
        layout = geometry.resolve_frames(frames, t, input_name)
    k = per_item.shape[0]
    _warn_aspect(input_name, tuple(per_item.shape[-2:]), geometry.pixel_size(h, w))
    flat = einops.rearrange(per_item, "k f hm wm -> (k f) hm wm")
    small = einops.rearrange(resize_weights(flat, (h, w)), "(k f) h w -> k f h w", k=per_item.shape[0])
    weights = frames_to_latent(small, layout, t, geometry).clamp(0.0, 1.0).unsqueeze(1)
    if k == 1:
        return weights.expand(n, -1, -1, -1, -1).contiguous()
    if k < n:
        missing = f"items {k}..{n - 1}"
        if require_mask:
            raise ValueError(
                f"{input_name}: {m} frames give masks for {k} of {n} training items, so {missing} have no mask "
                f"and require_mask is on. Fix: give {n}x{m // k} frames, or turn require_mask off to "
                f"train the unmasked items at full weight."
            )
        log.warning("%s: masks for %d of %d items; %s train at full weight 1.0 (require_mask is off).",
                    input_name, k, n, missing)
        full[:k] = weights
        return full
    return weights.contiguous()


# ---- preview ------------------------------------------------------------------------------

def tier_preview(raw: torch.Tensor, weights: torch.Tensor, tiers: dict[str, int] | None = None) -> torch.Tensor:
    """IMAGE [N, H, W, 3]: tier colours where the raw mask holds a tier value (within half an
    8-bit level), grey = final weight elsewhere. Each colour is scaled by 0.4 + 0.6 * weight so the
    floor and gamma stay visible.

    Args:
        raw: [N, H, W] normalized mask in [0, 1]. weights: [N, H, W] final weights.
    """
    tiers = TIERS if tiers is None else tiers
    img = weights.unsqueeze(-1).expand(-1, -1, -1, 3).clone()
    for name, value in tiers.items():
        hit = (raw - value / 255.0).abs() < 0.5 / 255.0
        color = torch.tensor(TIER_COLORS.get(name, (0.5, 0.5, 0.5)))
        shade = (0.4 + 0.6 * weights).unsqueeze(-1) * color
        img = torch.where(hit.unsqueeze(-1), shade, img)
    return img.clamp(0.0, 1.0)
