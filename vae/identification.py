"""Tell a Wan 2.1 or Wan 2.2 VAE state dict from every other VAE, by its key set and tensor shapes.

A single key is not enough: ComfyUI after 0.33 finds a Qwen Image 2.1 VAE (a 2-D, RGBA, 64-channel
VAE in the Wan 2.2 key layout) inside the same ``decoder.middle.0.residual.0.gamma`` branch as the
Wan VAEs. So a Wan VAE is recognised by all of:

- its core keys (the encoder/decoder stems and heads, the 1x1x1 ``conv1`` / ``conv2``, the middle block);
- its decoder layout: Wan 2.1 has flat stages (``decoder.upsamples.0.residual...``), Wan 2.2 residual
  groups (``decoder.upsamples.0.upsamples.0.residual...``);
- causal 3-D convolutions (5-D weights) with a temporal kernel of 3 in the stems and heads;
- its pixel channels: RGB, which Wan 2.2 patchifies 2x2 into 12 channels;
- its latent channels: 16 (Wan 2.1) or 48 (Wan 2.2), the same in ``conv2``, the decoder stem and
  (doubled: mean and log-variance) the encoder head and ``conv1``.

Pure torch-free logic over a mapping of names to tensors (only ``.shape`` is read, so meta tensors do).
"""
from __future__ import annotations

from dataclasses import dataclass

WAN_MIDDLE_KEY = "decoder.middle.0.residual.0.gamma"
"""The key ComfyUI branches on for Wan-layout VAEs (Wan 2.1, Wan 2.2 and, after 0.33, Qwen Image 2.1)."""
WAN21_STAGE_KEY = "decoder.upsamples.0.residual.2.weight"
"""First decoder stage of the Wan 2.1 layout (flat residual blocks)."""
WAN22_STAGE_KEY = "decoder.upsamples.0.upsamples.0.residual.2.weight"
"""First decoder stage of the Wan 2.2 layout (residual groups)."""

CORE_KEYS = (WAN_MIDDLE_KEY, "encoder.conv1.weight", "encoder.head.2.weight", "conv1.weight", "conv2.weight",
             "decoder.conv1.weight", "decoder.head.2.weight")
CAUSAL_CONVS = ("encoder.conv1.weight", "encoder.head.2.weight", "decoder.conv1.weight", "decoder.head.2.weight")
"""The 3x3x3 causal convolutions every Wan VAE has at its ends (temporal kernel 3)."""

PREFIXES = ("first_stage_model.", "vae.", "model.")

FIX = ("Fix: choose an official Wan VAE: wan_2.1_vae.safetensors (16-ch latents: Wan 2.1, Wan 2.2 14B) or "
       "wan2.2_vae.safetensors (48-ch latents: Wan 2.2 TI2V 5B), in models/vae.")


@dataclass(frozen=True)
class WanVaeKind:
    """What :func:`identify_wan_vae` found: the version and the widths to build the module with."""
    version: str  # "2.1" or "2.2"
    dim: int  # encoder base width
    dec_dim: int  # decoder base width (Wan 2.2 may differ from ``dim``; equal for Wan 2.1)
    z_dim: int  # latent channels

    @property
    def label(self) -> str:
        return f"Wan {self.version}"


@dataclass(frozen=True)
class Expected:
    stage_key: str
    pixel_channels: int  # channels of encoder.conv1's input and decoder.head's output
    z_dim: int


EXPECTED = {"2.1": Expected(WAN21_STAGE_KEY, 3, 16), "2.2": Expected(WAN22_STAGE_KEY, 12, 48)}


def strip_prefix(sd: dict) -> dict:
    """``sd`` without a prefix every key shares (``first_stage_model.`` of a full checkpoint, ``vae.``...)."""
    for prefix in PREFIXES:
        if sd and all(k.startswith(prefix) for k in sd):
            return {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def describe_keys(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def _shape(sd: dict, key: str) -> tuple[int, ...]:
    return tuple(sd[key].shape)


def describe_other_vae(sd: dict) -> str:
    """A short account of a state dict that is not in the Wan layout (what a user can recognise)."""
    n = len(sd)
    if "encoder.conv_in.weight" in sd and "decoder.conv_in.weight" in sd:
        enc, dec = _shape(sd, "encoder.conv_in.weight"), _shape(sd, "decoder.conv_in.weight")
        kind = "2-D image" if len(enc) == 4 else f"{len(enc) - 2}-D"
        return (f"a {kind} VAE in the AutoencoderKL layout (SD 1.x / SDXL / SD3 / Flux style: "
                f"encoder.conv_in, decoder.conv_in) with {enc[1]} pixel and {dec[1] if len(dec) > 1 else '?'} "
                f"latent channels, {n} tensor{'s' if n != 1 else ''}")
    return f"{n} tensor{'s' if n != 1 else ''} with keys like {describe_keys(sorted(sd), 5)}" if n else "no tensors"


def _findings(sd: dict) -> tuple[str | None, dict]:
    """(layout version or None, measured facts) of a state dict that has the core keys."""
    layout = "2.2" if WAN22_STAGE_KEY in sd else "2.1" if WAN21_STAGE_KEY in sd else None
    kernels = {k: (_shape(sd, k)[2] if len(_shape(sd, k)) == 5 else None) for k in CAUSAL_CONVS}
    enc_in, dec_out = _shape(sd, "encoder.conv1.weight")[1], _shape(sd, "decoder.head.2.weight")[0]
    facts = {
        "kernels": kernels,
        "pixel_in": enc_in, "pixel_out": dec_out,
        "z": _shape(sd, "conv2.weight")[0],
        "z_decoder": _shape(sd, "decoder.conv1.weight")[1],
        "moments": (_shape(sd, "encoder.head.2.weight")[0], _shape(sd, "conv1.weight")[0]),
    }
    return layout, facts


def _pixels(channels: int, patch: int) -> str:
    per_pixel = {3: "RGB", 4: "RGBA"}.get(channels // patch) if channels % patch == 0 else None
    return f"{channels}" + (f" ({per_pixel}{', patchified 2x2' if patch > 1 else ''})" if per_pixel else "")


def _problems(layout: str | None, facts: dict) -> list[str]:
    problems = []
    flat = [k for k, t in facts["kernels"].items() if t is None]
    if flat:
        problems.append(f"2-D convolutions (4-D weights, no time axis) in {', '.join(flat)}: an image-only VAE")
    other = {k: t for k, t in facts["kernels"].items() if t is not None and t != 3}
    if other:
        problems.append("temporal kernel " + ", ".join(f"{t} in {k}" for k, t in other.items()) +
                        " instead of 3 (a Wan VAE's causal 3-D convolutions)" +
                        (": an image-only VAE" if set(other.values()) == {1} else ""))
    if layout is None:
        problems.append(f"neither decoder layout: no {WAN21_STAGE_KEY} (Wan 2.1) nor {WAN22_STAGE_KEY} (Wan 2.2)")
        return problems
    exp = EXPECTED[layout]
    patch = 4 if layout == "2.2" else 1
    for what, got in (("input", facts["pixel_in"]), ("output", facts["pixel_out"])):
        if got != exp.pixel_channels:
            problems.append(f"{_pixels(got, patch)} pixel {what} channels instead of "
                            f"{_pixels(exp.pixel_channels, patch)}")
    z, zd, moments = facts["z"], facts["z_decoder"], facts["moments"]
    if z != exp.z_dim:
        problems.append(f"{z} latent channels instead of {exp.z_dim} (Wan {layout})")
    if zd != z or any(m != 2 * z for m in moments):
        problems.append(f"latent widths that disagree (conv2 {z}, decoder.conv1 {zd}, encoder.head.2 {moments[0]}, "
                        f"conv1 {moments[1]}; expected {z}, {z}, {2 * z}, {2 * z})")
    return problems


def identify_wan_vae(sd: dict, name: str = "vae") -> WanVaeKind:
    """The Wan version and widths of the VAE state dict ``sd`` (a prefix shared by all keys is ignored).

    Raises:
        ValueError: naming ``name``, when ``sd`` is not a Wan 2.1 or Wan 2.2 VAE: which core keys it lacks
            or which shapes disagree, what it looks like instead, and which file to choose.
    """
    sd = strip_prefix(dict(sd))
    missing = [k for k in CORE_KEYS if k not in sd]
    if missing:
        raise ValueError(
            f"{name}: this file is not a Wan VAE: it lacks {len(missing)} of the {len(CORE_KEYS)} core keys of the "
            f"Wan 2.1/2.2 VAE layout ({describe_keys(missing)}). Found: {describe_other_vae(sd)}. {FIX}")
    layout, facts = _findings(sd)
    problems = _problems(layout, facts)
    if problems:
        image_only = any("image-only" in p for p in problems)
        also = (" It looks like an image VAE (e.g. the Qwen Image 2.1 VAE, which shares the Wan 2.2 key layout): "
                "load it with native VAELoader for image models." if image_only else "")
        seen = f"the Wan {layout} key layout" if layout else "the Wan VAE core keys"
        raise ValueError(
            f"{name}: this file is not a Wan 2.1 or Wan 2.2 VAE: it has {seen} but " + "; ".join(problems) +
            f".{also} {FIX}")
    return WanVaeKind(version=layout, dim=_shape(sd, "encoder.conv1.weight")[0],
                      dec_dim=_shape(sd, "decoder.head.2.weight")[1], z_dim=facts["z"])
