"""Conversions between ComfyUI IMAGE batches and the VAE's video tensors.

IMAGE: ``[F, H, W, C]`` (one video; ComfyUI treats a 4D image batch as the frames of one clip) or
``[B, F, H, W, C]``, values in [0, 1]. The VAE works on ``[B, 3, F, H, W]`` in [-1, 1].
"""
from __future__ import annotations

import torch
from einops import rearrange


def image_to_video(images: torch.Tensor, input_name: str = "pixels") -> torch.Tensor:
    """IMAGE ``[F, H, W, 3]`` or ``[B, F, H, W, 3]`` in [0, 1] -> ``[B, 3, F, H, W]`` in [-1, 1]."""
    if images.dim() not in (4, 5) or images.shape[-1] != 3:
        raise ValueError(f"{input_name}: expected an RGB IMAGE batch [frames, H, W, 3], got shape "
                         f"{list(images.shape)}. Fix: drop the alpha channel or convert the image to RGB.")
    if images.dim() == 4:
        images = images.unsqueeze(0)
    return rearrange(images.float(), "b f h w c -> b c f h w") * 2.0 - 1.0


def video_to_image(video: torch.Tensor) -> torch.Tensor:
    """``[B, 3, F, H, W]`` in about [-1, 1] -> IMAGE ``[B*F, H, W, 3]`` clamped to [0, 1] (as native VAEDecode)."""
    return rearrange(((video + 1.0) / 2.0).clamp(0.0, 1.0), "b c f h w -> (b f) h w c")
