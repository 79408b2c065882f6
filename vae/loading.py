"""Recognise a Wan VAE state dict (official key layout), check it, and build the matching module."""
from __future__ import annotations

import torch

from .wan21 import WanVAE21
from .wan22 import WanVAE22

WAN_MARKER = "decoder.middle.0.residual.0.gamma"
"""Key every Wan VAE file has (ComfyUI detects Wan VAEs by it too)."""

WAN22_MARKER = "decoder.upsamples.0.upsamples.0.residual.2.weight"
"""Key only the Wan 2.2 VAE has (its decoder stages are residual groups)."""


def _strip_prefix(sd: dict) -> dict:
    for prefix in ("first_stage_model.", "vae.", "model."):
        if sd and all(k.startswith(prefix) for k in sd):
            return {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def _widths(sd: dict, is22: bool) -> dict:
    """Infer the widths from the tensors, so smaller (test) models load the same way."""
    enc = sd["encoder.conv1.weight"].shape[0]
    dec_out = sd["decoder.head.2.weight"].shape[1]  # decoder's last width = dec_dim * dim_mult[0]
    z = sd["conv2.weight"].shape[0]
    return {"dim": enc, "dec_dim": dec_out, "z_dim": z} if is22 else {"dim": enc, "z_dim": z}


def _describe(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def build_wan_vae(sd: dict[str, torch.Tensor], name: str = "vae") -> WanVAE21 | WanVAE22:
    """A :class:`WanVAE21` or :class:`WanVAE22` with the weights of ``sd`` (float32, on the CPU).

    Raises:
        ValueError: naming ``name``: the file is not a Wan VAE (listing the Wan keys it lacks),
            lacks keys, or has tensors of the wrong shape.
    """
    sd = _strip_prefix(dict(sd))
    is22 = WAN22_MARKER in sd
    core = [WAN_MARKER, "encoder.conv1.weight", "conv2.weight", "decoder.head.2.weight"]
    if any(k not in sd for k in core):
        with torch.device("meta"):
            expected = list(WanVAE21(dim=8).state_dict().keys())
        missing = [k for k in core if k not in sd] + [k for k in expected if k not in sd and k not in core]
        raise ValueError(
            f"{name}: this file is not a Wan VAE: it lacks {len(missing)} of the {len(expected)} keys of the "
            f"Wan 2.1/2.2 VAE layout, e.g. {_describe(missing)}. Found keys like {_describe(sorted(sd), 5)}. "
            "Fix: choose wan_2.1_vae.safetensors (16-ch latents) or wan2.2_vae.safetensors (48-ch, TI2V 5B).")
    with torch.device("meta"):
        model = (WanVAE22 if is22 else WanVAE21)(**_widths(sd, is22))
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    wrong = [f"{k} {list(sd[k].shape)} (expected {list(v.shape)})" for k, v in expected.items()
             if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    kind = "Wan 2.2" if is22 else "Wan 2.1"
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"lacks {len(missing)} key(s): {_describe(missing)}")
        if wrong:
            parts.append(f"has {len(wrong)} tensor(s) of the wrong shape: {_describe(wrong, 5)}")
        raise ValueError(f"{name}: looks like a {kind} VAE but " + "; ".join(parts) +
                         ". Fix: re-download the official VAE file (pruned 'light' VAEs are not supported).")
    model = model.to_empty(device="cpu")
    model.load_state_dict({k: sd[k].float() for k in expected}, strict=True)
    return model.eval().requires_grad_(False)
