"""A synthetic fast-motion clip and its mask, for the demo and the README picture (pure torch), and
writing a clip to mp4."""
from __future__ import annotations

from pathlib import Path

import torch


def fast_motion_clip(frames: int = 81, height: int = 480, width: int = 832, speed: float | None = None,
                     side: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A square crossing the frame left to right, fast, over a gradient background.

    Returns:
        images [F, H, W, 3] in [0, 1] and mask [F, H, W] (1 = the object = regenerate).
    """
    side = side or max(4, height // 6)
    speed = speed if speed is not None else max(6.0, (width - side) / max(1, frames - 1))
    y0 = (height - side) // 2
    ys = torch.linspace(0, 1, height).view(height, 1, 1)
    xs = torch.linspace(0, 1, width).view(1, width, 1)
    background = torch.cat([0.2 + 0.3 * xs.expand(height, width, 1), 0.4 + 0.3 * ys.expand(height, width, 1),
                            torch.full((height, width, 1), 0.6)], dim=-1)
    images = background.expand(frames, -1, -1, -1).clone()
    mask = torch.zeros(frames, height, width)
    for f in range(frames):
        x0 = int(f * speed) % max(1, width - side)
        mask[f, y0:y0 + side, x0:x0 + side] = 1
    images[mask > 0] = torch.tensor([0.95, 0.95, 0.95])
    return images, mask


def write_clip(path: Path, frames: torch.Tensor, fps: int = 16) -> None:
    """Encode [F, H, W, 3] in [0, 1] to an H.264 mp4 with PyAV (ComfyUI's video library)."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "12"}
        for frame in (frames * 255).round().to(torch.uint8).numpy():
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
