"""Pre-sampling consistency checks for Wan: model channels, latent, conditioning and noise mask.

Pure torch/python: the sampler node extracts plain numbers and shapes from ComfyUI objects and
passes them here, so every rule is unit-testable. Errors name the input, the shapes found, the
likely cause and the fix. Cases ComfyUI deliberately allows (and quietly adapts) give warnings.

Shapes: latent [B, C, T, h, w]; concat image [B', C', T', h', w']; concat mask [B', 1 or 4, T', h', w'];
VACE frames [B', 32, T', h', w'], VACE mask [B', 64, T', h', w']; noise mask as stored in the
LATENT (``[H, W]``, ``[N, H, W]``, ``[N, 1, H, W]`` or ``[B, 1, T, h, w]``).
Noise mask convention: 1 = regenerate, 0 = keep the input latent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..masking.geometry import FrameLayout, GEOMETRIES, VaeGeometry

Shape = tuple  # a tuple of ints


@dataclass(frozen=True)
class WanModelInfo:
    """What the checks need to know about the diffusion model.

    Attributes:
        name: class name for messages (e.g. ``WAN21``, ``WAN22``, ``WAN21_Vace``).
        in_channels: input channels of the patch embedding (16 T2V, 36 I2V, 48 Fun-Control or 2.2 5B).
        latent_channels: channels of the model's latent format (16 Wan 2.1 VAE, 48 Wan 2.2 VAE).
        image_to_video: ComfyUI's ``image_to_video`` flag (a mask is concatenated to the image).
        vace_in_channels: VACE context channels (96) for VACE models, else None.
    """

    name: str
    in_channels: int
    latent_channels: int
    image_to_video: bool = False
    vace_in_channels: int | None = None


@dataclass(frozen=True)
class CondInfo:
    """Shapes found in one conditioning entry (positive or negative)."""

    role: str = "positive"
    concat_image: Shape | None = None
    concat_mask: Shape | None = None
    vace_frames: tuple[Shape, ...] = ()
    vace_masks: tuple[Shape, ...] = ()


@dataclass
class Findings:
    """Result of :func:`validate_sampling`: warnings to log (errors are raised)."""

    warnings: list[str] = field(default_factory=list)


def _vae_for(channels: int) -> VaeGeometry | None:
    for g in GEOMETRIES:
        if g.latent_channels == channels:
            return g
    return None


def _vae_name(channels: int) -> str:
    g = _vae_for(channels)
    if g is None:
        return f"a {channels}-channel (non-Wan) VAE"
    return "the Wan 2.2 VAE (TI2V-5B)" if g.latent_channels == 48 else "the Wan 2.1 VAE (also used by Wan 2.2 14B)"


def check_latent_channels(model: WanModelInfo, latent: Shape, errors: list[str]) -> bool:
    """Latent rank and channels vs the model's latent format. Returns True when usable further."""
    if len(latent) != 5:
        errors.append(
            f"samples: expected a Wan video latent [B,C,T,h,w], got shape {list(latent)}. Likely cause: an image "
            "latent (EmptyLatentImage, batch = frames) instead of a video latent. Fix: use EmptyHunyuanLatentVideo / "
            "Wan22ImageToVideoLatent or encode the video with a Wan VAE.")
        return False
    c = latent[1]
    if c != model.latent_channels:
        errors.append(
            f"samples: the latent has {c} channels ({_vae_name(c)}) but the model {model.name} works on "
            f"{model.latent_channels}-channel latents from {_vae_name(model.latent_channels)}. Likely cause: the wrong "
            f"VAE or latent node for this model (only Wan 2.2 TI2V-5B uses the 48-channel Wan 2.2 VAE; Wan 2.1 and "
            f"Wan 2.2 14B use the 16-channel Wan 2.1 VAE). Fix: encode with {_vae_name(model.latent_channels)} or "
            f"load the matching model.")
        return False
    return True


def check_spatial(model: WanModelInfo, latent: Shape, warnings: list[str]) -> None:
    """Latent h, w must be multiples of the DiT patch (2); ComfyUI pads otherwise, so warn."""
    geo = _vae_for(latent[1])
    if geo is None:
        return
    h, w = latent[3], latent[4]
    if h % geo.patch or w % geo.patch:
        H, W = geo.pixel_size(h, w)
        m = geo.model_multiple
        fix_h, fix_w = max(m, round(H / m) * m), max(m, round(W / m) * m)
        warnings.append(
            f"samples: the latent is {w}x{h} cells ({W}x{H} px), not a multiple of {geo.patch} cells ({m} px) for "
            f"the {geo.name} model; ComfyUI pads it to the patch size, which can leave artifacts at the right/bottom "
            f"edge. Fix: use a pixel size that is a multiple of {m}, e.g. {fix_w}x{fix_h}.")


def check_concat(model: WanModelInfo, latent: Shape, conds: list[CondInfo], errors: list[str],
                 warnings: list[str]) -> None:
    """I2V / Fun concat conditioning vs the model's extra input channels (ComfyUI's ``WAN21.concat_cond``)."""
    b, c, t, h, w = latent
    extra = model.in_channels - c
    with_image = [ci for ci in conds if ci.concat_image is not None]
    if extra < 0:
        errors.append(
            f"model: {model.name} takes {model.in_channels} input channels but the latent alone has {c}. Fix: use "
            f"a latent from {_vae_name(model.latent_channels)}.")
        return
    if extra == 0:
        if with_image:
            warnings.append(
                f"conditioning: a start/end image (concat_latent_image {list(with_image[0].concat_image)}) is "
                f"connected but the model {model.name} has no image input channels (T2V, VACE or Wan 2.2 5B take "
                f"{model.in_channels} = latent only), so ComfyUI ignores it. Fix: load the I2V model (36 input "
                "channels) for image-to-video, or for Wan 2.2 5B use Wan22ImageToVideoLatent.")
        return
    wants_mask = model.image_to_video
    if not with_image:
        what = "an I2V" if wants_mask else "a concat-conditioned"
        warnings.append(
            f"conditioning: {what} model ({model.name}, {model.in_channels} input channels = {c} latent + {extra} "
            f"conditioning) is sampled with no concat image; ComfyUI fills the {extra} channels with zeros, which "
            "usually gives poor, unconditioned video. Fix: build the conditioning with WanImageToVideo / "
            "WanFirstLastFrameToVideo (start_image connected), or load the T2V model.")
    for ci in with_image:
        img = ci.concat_image
        name = f"{ci.role} conditioning concat_latent_image"
        if len(img) != 5:
            errors.append(f"{name}: expected [B,C,T,h,w], got {list(img)}. Fix: build it with WanImageToVideo.")
            continue
        ic = img[1]
        ok = ic == extra or ic + 4 == extra  # image only, or image + 4-channel mask
        if not ok:
            cause = (f"the image was encoded with {_vae_name(ic)}" if _vae_for(ic) is not None and ic != c
                     else "the conditioning node does not match this model")
            errors.append(
                f"{name}: has {ic} channels but the model {model.name} expects {extra - 4 if wants_mask else extra} "
                f"concat channels ({model.in_channels} input = {c} latent + {extra}). Likely cause: {cause}. Fix: "
                f"encode the image with {_vae_name(c)} and use the conditioning node made for this model "
                "(WanImageToVideo for I2V, WanFunControlToVideo for Fun-Control).")
        if img[2] != t:
            errors.append(
                f"{name}: built for {img[2]} latent frames but the latent has {t}. ComfyUI does not resize the "
                "image in time, so sampling would fail inside the model. Likely cause: the conditioning node's "
                "length differs from the latent's. Fix: feed the sampler the latent output of the same "
                "WanImageToVideo node, or give both the same length (1+4k frames).")
        if (img[3], img[4]) != (h, w):
            warnings.append(
                f"{name}: {img[4]}x{img[3]} cells but the latent is {w}x{h}; ComfyUI resizes it bilinearly "
                "(center crop), so the start image may be stretched or cropped. Fix: give the conditioning node the "
                "same width/height as the latent.")
        if ci.concat_mask is not None and wants_mask:
            m = ci.concat_mask
            if len(m) == 5 and m[2] > t:
                errors.append(
                    f"{ci.role} conditioning concat_mask: {m[2]} frames but the latent has {t}; sampling would fail "
                    "inside the model. Fix: build mask and latent with the same length.")
            elif len(m) == 5 and m[2] < t:
                warnings.append(
                    f"{ci.role} conditioning concat_mask: {m[2]} frames for a {t}-frame latent; ComfyUI pads the "
                    "missing frames as 'not given' (generated).")


def check_vace(model: WanModelInfo, latent: Shape, conds: list[CondInfo], errors: list[str],
               warnings: list[str]) -> None:
    """VACE control video / mask vs the latent (ComfyUI does not resize them)."""
    b, c, t, h, w = latent
    has_vace = [ci for ci in conds if ci.vace_frames or ci.vace_masks]
    if model.vace_in_channels is None:
        if has_vace:
            warnings.append(
                f"conditioning: VACE inputs (vace_frames) are connected but the model {model.name} is not a VACE "
                "model, so ComfyUI ignores them. Fix: load a VACE model (or the VACE module) for WanVaceToVideo.")
        return
    frame_ch = model.vace_in_channels - 64 if model.vace_in_channels > 64 else 2 * c
    for ci in has_vace:
        for kind, shapes, want_c in (("vace_frames", ci.vace_frames, frame_ch), ("vace_mask", ci.vace_masks, 64)):
            for j, s in enumerate(shapes):
                name = f"{ci.role} conditioning {kind}[{j}]"
                if len(s) != 5:
                    errors.append(f"{name}: expected [B,C,T,h,w], got {list(s)}. Fix: build it with WanVaceToVideo.")
                    continue
                if s[1] != want_c:
                    errors.append(f"{name}: has {s[1]} channels, the VACE model expects {want_c}. Fix: build it with "
                                  "WanVaceToVideo and the Wan 2.1 VAE.")
                if s[2] != t:
                    hint = (" Likely cause: a reference image adds one latent frame in front; use WanVaceToVideo's "
                            "latent output (it has the extra frame) and TrimVideoLatent after sampling."
                            if abs(s[2] - t) == 1 else " Fix: build control video and latent with the same length.")
                    errors.append(f"{name}: {s[2]} latent frames but the latent has {t}; ComfyUI does not resize "
                                  f"VACE inputs, so the model would fail.{hint}")
                if (s[3], s[4]) != (h, w):
                    errors.append(f"{name}: {s[4]}x{s[3]} cells but the latent is {w}x{h}. Fix: give WanVaceToVideo "
                                  "the latent's width and height.")


def check_noise_mask(latent: Shape, mask: Shape, errors: list[str], warnings: list[str]) -> None:
    """A LATENT's ``noise_mask`` vs the latent, as ComfyUI's ``reshape_mask`` would read it."""
    b, c, t, h, w = latent
    geo = _vae_for(c)
    if len(mask) < 2 or len(mask) > 5:
        errors.append(f"noise_mask: expected [H,W], [N,H,W], [N,1,H,W] or [B,1,T,h,w], got {list(mask)}. "
                      "Fix: set it with WanMaskToLatent or SetLatentNoiseMask.")
        return
    mh, mw = mask[-2], mask[-1]
    if len(mask) == 5:
        mb, mc, frames = mask[0], mask[1], mask[2]
        if mb not in (1, b):
            errors.append(
                f"noise_mask: {mb} per-sample masks for a latent batch of {b}; ComfyUI would repeat or cut them "
                f"silently. Fix: give 1 mask (shared) or exactly {b} (one per sample).")
        if mc not in (1, c):
            errors.append(f"noise_mask: {mc} channels; expected 1 (or {c}). Fix: use WanMaskToLatent.")
        per_batch_hint = ""
    else:
        frames = math.prod(mask[:-2]) if len(mask) > 2 else 1
        per_batch_hint = (f" With a batch of {b} latents, ComfyUI flattens masks into ONE video's frames, so per-sample "
                          "masks are not possible this way; use WanMaskToLatent (it keeps one mask per sample)."
                          if b > 1 else "")
    pixel_layout = False
    if geo is not None:
        try:
            layout = geo.resolve_frames(frames, t, "noise_mask")
            pixel_layout = layout is FrameLayout.PIXEL
        except ValueError as e:
            errors.append(f"{e}{per_batch_hint}")
    elif frames not in (1, t):
        errors.append(f"noise_mask: {frames} frames for a latent with {t} frames. Fix: 1 or {t} frames.")
    spatial_ok = (mh, mw) == (h, w)
    pixel_size = geo is not None and (mh, mw) == geo.pixel_size(h, w)
    if not spatial_ok and not pixel_size:
        if mh * w == mw * h:
            warnings.append(f"noise_mask: {mw}x{mh} for a latent of {w}x{h} cells; ComfyUI resamples it "
                            "(same aspect ratio). Fix: make the mask at the video's pixel size.")
        else:
            H, W = geo.pixel_size(h, w) if geo is not None else (h, w)
            errors.append(
                f"noise_mask: {mw}x{mh} (WxH) does not match the latent ({w}x{h} cells = {W}x{H} px) and has a "
                f"different aspect ratio, so ComfyUI would stretch it over the video. Likely cause: the mask was "
                f"drawn on a different image or before a resize/crop. Fix: resize the mask to {W}x{H}.")
    if pixel_layout or pixel_size:
        warnings.append(
            f"noise_mask: {list(mask)} is at pixel resolution; ComfyUI resamples it trilinearly, which does not follow "
            "Wan's causal frame groups (frame 0 alone, then 4 frames per latent frame) or the VAE cells, so thin or "
            "fast-moving regions can be missed. Fix: set the mask with WanMaskToLatent.")


def summarize_conds(conds: dict) -> list[CondInfo]:
    """Shapes from ComfyUI-style conditioning dicts ``{"positive": [dict, ...], "negative": [...]}``.

    Each dict may hold ``concat_latent_image``, ``concat_mask`` (tensors), ``vace_frames`` and
    ``vace_mask`` (lists of tensors). Anything else is ignored.
    """
    out = []
    for role, entries in (conds or {}).items():
        for d in entries or []:
            if not isinstance(d, dict):
                continue

            def shape(v):
                return tuple(v.shape) if hasattr(v, "shape") else None

            vf = d.get("vace_frames") or []
            vm = d.get("vace_mask") or []
            out.append(CondInfo(
                role=str(role), concat_image=shape(d.get("concat_latent_image")),
                concat_mask=shape(d.get("concat_mask")),
                vace_frames=tuple(tuple(x.shape) for x in vf if hasattr(x, "shape")),
                vace_masks=tuple(tuple(x.shape) for x in vm if hasattr(x, "shape"))))
    return out


def validate_sampling(model: WanModelInfo, latent: Shape, noise_mask: Shape | None = None,
                      conds: list[CondInfo] | None = None) -> Findings:
    """Check everything before the first step.

    Args:
        model: the Wan model's numbers.
        latent: shape of the latent as the sampler sees it [B, C, T, h, w].
        noise_mask: shape of the LATENT's ``noise_mask`` as stored, or None.
        conds: shapes from the positive/negative conditioning (see :func:`summarize_conds`).

    Returns: :class:`Findings` with warnings (cases ComfyUI deliberately adapts).
    Raises: ValueError listing every error found, each with its likely cause and fix.
    """
    errors: list[str] = []
    found = Findings()
    latent = tuple(int(x) for x in latent)
    if check_latent_channels(model, latent, errors):
        check_spatial(model, latent, found.warnings)
        check_concat(model, latent, list(conds or []), errors, found.warnings)
        check_vace(model, latent, list(conds or []), errors, found.warnings)
        if noise_mask is not None:
            check_noise_mask(latent, tuple(int(x) for x in noise_mask), errors, found.warnings)
    if errors:
        head = "WanMaskSamplerPatch: this graph cannot sample correctly"
        if len(errors) == 1:
            raise ValueError(f"{head}: {errors[0]}")
        raise ValueError(head + ":\n" + "\n".join(f"- {e}" for e in errors))
    return found


def native_window_warnings(slices: dict[str, bool], conds: list[CondInfo]) -> list[str]:
    """Warnings for native context windows (WanContextWindowsManual / ContextWindowsManual) with Wan
    conditionings, from what native's handler was found to slice (``slices``: ``{"c_concat": bool,
    "vace_context": bool}``, probed on the running ComfyUI)."""
    out: list[str] = []
    has_concat = any(ci.concat_image is not None for ci in conds)
    has_vace = any(ci.vace_frames or ci.vace_masks for ci in conds)
    broken = [name for name, present, key in (
        ("the I2V concat image and mask (start/end image, keyframes, Animate)", has_concat, "c_concat"),
        ("the VACE context and mask", has_vace, "vace_context")) if present and not slices.get(key, True)]
    if broken:
        out.append(
            f"context windows: native context windows on this ComfyUI do not cut {' or '.join(broken)} to each "
            "window, so the model gets the whole clip's conditioning beside one window's latent and sampling fails "
            "('Sizes of tensors must match' / 'The size of tensor a ... must match'). Fix: use WanMaskContextWindows "
            "(the same inputs) instead of WanContextWindowsManual.")
    elif slices.get("retain_on_anchor") and (has_concat or has_vace):
        out.append(
            "context windows: native context windows with retain_first_frame put frame 0's conditioning on each "
            "window's anchor (the frame before the window, which the model sees as another frame), not on the "
            "window's first frame. Fix: use WanMaskContextWindows (the same inputs), which puts it on the window's "
            "first own frame.")
    elif has_concat or has_vace:
        out.append(
            "context windows: native context windows give each window only its own frames' conditioning, so a given "
            "frame (start or end image, keyframe, VACE reference, Animate motion frames) conditions only the windows "
            "that contain it. Fix: to show every window the given frames, use WanMaskContextWindows with "
            "given_frames_as_guides on (experimental).")
    return out
