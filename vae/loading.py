"""Build the Wan VAE module a state dict holds (official key layout), after identifying it and
checking every key and shape."""
from __future__ import annotations

import torch

from .identification import describe_keys, identify_wan_vae, strip_prefix
from .wan21 import WanVAE21
from .wan22 import WanVAE22


def build_wan_vae(sd: dict[str, torch.Tensor], name: str = "vae") -> WanVAE21 | WanVAE22:
    """A :class:`WanVAE21` or :class:`WanVAE22` with the weights of ``sd`` (float32, on the CPU).

    The version and widths come from :func:`~vae.identification.identify_wan_vae` (key set and
    shapes), so smaller (test) models load the same way.

    Raises:
        ValueError: naming ``name``: the file is not a Wan 2.1/2.2 VAE (what was found instead), lacks
            keys, or has tensors of the wrong shape.
    """
    sd = strip_prefix(dict(sd))
    kind = identify_wan_vae(sd, name)
    is22 = kind.version == "2.2"
    widths = {"dim": kind.dim, "dec_dim": kind.dec_dim, "z_dim": kind.z_dim} if is22 else \
        {"dim": kind.dim, "z_dim": kind.z_dim}
    with torch.device("meta"):
        model = (WanVAE22 if is22 else WanVAE21)(**widths)
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    wrong = [f"{k} {list(sd[k].shape)} (expected {list(v.shape)})" for k, v in expected.items()
             if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"lacks {len(missing)} key(s): {describe_keys(missing)}")
        if wrong:
            parts.append(f"has {len(wrong)} tensor(s) of the wrong shape: {describe_keys(wrong, 5)}")
        raise ValueError(f"{name}: looks like a {kind.label} VAE but " + "; ".join(parts) +
                         ". Fix: re-download the official VAE file (pruned 'light' VAEs are not supported).")
    model = model.to_empty(device="cpu")
    model.load_state_dict({k: sd[k].float() for k in expected}, strict=True)
    return model.eval().requires_grad_(False)
