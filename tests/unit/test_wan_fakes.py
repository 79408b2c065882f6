"""A fake Wan VAE encoder for the builder tests: records every call and returns a latent whose
values can be traced back to pixels."""
from __future__ import annotations

import torch

from comfyui_wanmasking.masking.geometry import WAN21, VaeGeometry


class FakeEncoder:
    """pixels [F, H, W, 3] in 0..1 -> [1, C, T, h, w]: channel c of latent t is the VAE-space value
    (2x - 1) of colour channel c % 3 at the top-left pixel of each cell, in the LAST frame of latent t's
    causal group. ``calls`` keeps every input (cloned)."""

    def __init__(self, geometry: VaeGeometry = WAN21):
        self.geometry = geometry
        self.calls: list[torch.Tensor] = []

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        self.calls.append(pixels.clone())
        g = self.geometry
        t = g.latent_frames(pixels.shape[0])
        last = torch.tensor([g.frame_group(i)[-1] for i in range(t)])
        cells = pixels[last][:, ::g.spatial_stride, ::g.spatial_stride, :]  # [T, h, w, 3]
        chans = torch.stack([cells[..., c % 3] for c in range(g.latent_channels)], dim=0)  # [C, T, h, w]
        return (chans * 2 - 1).unsqueeze(0)


def test_fake_encoder_reads_the_last_frame_of_each_causal_group():
    pixels = torch.zeros(9, 16, 16, 3)
    for f in range(9):
        pixels[f] = f / 10
    latent = FakeEncoder()(pixels)
    assert latent.shape == (1, 16, 3, 2, 2)
    assert torch.allclose(latent[0, 0, :, 0, 0], torch.tensor([0.0, 0.4, 0.8]) * 2 - 1)
