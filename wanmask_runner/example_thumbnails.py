"""Draw the template browser's picture of every UI-format example: ``example_workflows/<title>.jpg``.

    python -m wanmask_runner.example_thumbnails            (all; or --examples API_NAME ...)

Each picture shows what its example does, drawn from the pack's own code where there is some: the
masking examples paint the effective mask (masking/preview.py, the colours WanMaskPreview uses) of a
fast-moving square, the training examples the per-pixel loss weights (masking/training/weights.py),
and the long-clip examples the frames each step works on, to the example's own frame counts. A line
of text under the picture says what the colours mean. 256 x 256 JPEG, a few KB each.
"""
from __future__ import annotations

import argparse
import json

import torch

from comfyui_wanmasking.masking.geometry import WAN21  # registered by wanmask_runner/__init__.py
from comfyui_wanmasking.masking.latent_mask import latent_mask_to_pixel, pixel_mask_to_latent
from comfyui_wanmasking.masking.preview import overlay_effective_mask
from comfyui_wanmasking.masking.training.weights import apply_gamma_floor

from .demo_data import fast_motion_clip
from .example_names import EXAMPLES, TITLES, ui_example, thumbnail

SIZE, CAPTION_H = 256, 44
BADGE_H = 34  # the frontend (1.49) lays its "Node graph" badge over the picture's top left
PICTURE_H = SIZE - BADGE_H - CAPTION_H
INK, PAPER, GIVEN, GENERATED = (235, 235, 235), (28, 30, 34), (90, 170, 255), (225, 80, 60)
JPEG_QUALITY = 85


def _font(size: int):
    from PIL import ImageFont
    return ImageFont.load_default(size=size)


def _pil(image: torch.Tensor):
    from PIL import Image
    return Image.fromarray((image.clamp(0, 1) * 255).round().to(torch.uint8).numpy())


def _node_inputs(api_name: str, class_type: str) -> list[dict]:
    prompt = json.loads((EXAMPLES / "api" / f"{api_name}.json").read_text())
    return [n["inputs"] for n in prompt.values() if n["class_type"] == class_type]


def _tiles(frames: torch.Tensor, labels: list[str]):
    """A 2 x 2 grid of [4, H, W, 3] frames filling the picture area, each with its label."""
    from PIL import Image, ImageDraw
    canvas = Image.new("RGB", (SIZE, PICTURE_H), PAPER)
    draw, font = ImageDraw.Draw(canvas), _font(11)
    w, h = SIZE // 2 - 3, PICTURE_H // 2 - 3
    for i, (frame, label) in enumerate(zip(frames, labels)):
        x, y = 2 + (i % 2) * (w + 2), 2 + (i // 2) * (h + 2)
        canvas.paste(_pil(frame).resize((w, h)), (x, y))
        draw.text((x + 4, y + 3), label, fill=(20, 20, 20), font=font)
    return canvas


def masked_frames(kind: str):
    """Frames 0, 4, 8, 12 of a square moving 9 px a frame, painted with what the sampler regenerates:
    the causal latent mask (WanMaskToLatent) or, for VACE, the pixel mask VACE gets."""
    images, mask = fast_motion_clip(13, 96, 128, speed=7.0, side=28)
    if kind == "vace":
        effective = (mask > 0.5).float()
    else:
        latent = pixel_mask_to_latent(mask, (1, 16, WAN21.latent_frames(13), 12, 16), WAN21,
                                      temporal="max", spatial="max")
        effective = latent_mask_to_pixel(latent, WAN21)[0]
    show = [0, 4, 8, 12]
    return _tiles(overlay_effective_mask(effective, images, mask)[show], [f"frame {f}" for f in show])


def loss_weights(items: int):
    """Frames and their loss weights (1 = trained; the example's gamma, soft edges as painted masks
    have): one clip, or a folder of ``items`` of several sizes (buckets)."""
    from PIL import Image
    gamma = _node_inputs("masked_lora_training", "WanMaskLossWeights")[0]["gamma"]
    canvas = Image.new("RGB", (SIZE, PICTURE_H), PAPER)
    sizes = [(110, 84)] * 2 if items == 1 else [(120, 66), (70, 84), (110, 80), (84, 84)]
    for i, (w, h) in enumerate(sizes):
        images, mask = fast_motion_clip(1 + 5 * i, h, w, speed=6.0, side=min(w, h) // 2)
        soft = torch.nn.functional.avg_pool2d(mask[-1:].unsqueeze(0), 9, 1, 4, count_include_pad=False)[0, 0]
        weight = apply_gamma_floor(soft, gamma)
        tile = images[-1] if (items == 1 and i == 0) else weight.unsqueeze(-1).expand(-1, -1, 3)
        x, y = 4 + (i % 2) * 126, 3 + (i // 2) * 88
        canvas.paste(_pil(tile), (x + (120 - w) // 2, y + (84 - h) // 2))
    return canvas


def timeline(bars: list[tuple[str, int, int, tuple]], frames: int, marks: dict[int, str] = ()):
    """Bars over a clip of ``frames`` pixel frames: (label, first frame, end frame, colour); ``marks``
    are single given frames, labelled."""
    from PIL import Image, ImageDraw
    canvas = Image.new("RGB", (SIZE, PICTURE_H), PAPER)
    draw, font = ImageDraw.Draw(canvas), _font(12)
    left, right = 12, SIZE - 12
    x = lambda f: left + (right - left) * f / frames  # noqa: E731
    draw.line((left, PICTURE_H - 30, right, PICTURE_H - 30), fill=INK, width=1)
    for f in (0, frames):
        draw.text((x(f) - (0 if f == 0 else 24), PICTURE_H - 24), f"{f}", fill=INK, font=font)
    y = 4
    for label, start, end, color in bars:
        draw.rectangle((x(start), y, x(end), y + 24), fill=color)
        draw.text((x(start) + 4, y + 5), label, fill=(255, 255, 255), font=font)
        y += 30
    y += 16
    for f, label in dict(marks).items():
        draw.rectangle((x(f) - 3, y, x(f) + 3, PICTURE_H - 30), fill=GIVEN)
        width = draw.textlength(label, font=font)
        draw.text((max(2, min(x(f) - width / 2, SIZE - 2 - width)), y - 15), label, fill=GIVEN, font=font)
    return canvas


def latent_chunks():
    """A long clip's latent frames, decoded one at a time (WanMaskVAEDecode temporal_chunk)."""
    length = _node_inputs("long_clip_chunked_vae_decode", "EmptyHunyuanLatentVideo")[0]["length"]
    chunk = _node_inputs("long_clip_chunked_vae_decode", "WanMaskVAEDecode")[0]["temporal_chunk"]
    t = WAN21.latent_frames(length)
    bars = [(f"latent frames {i}..{min(t, i + chunk) - 1}" if chunk > 1 else f"latent frame {i}",
             0 if i == 0 else 1 + 4 * (i - 1), 1 + 4 * (min(t, i + chunk) - 1), GENERATED if i % 2 else GIVEN)
            for i in (0, 1, 2)]
    bars.append((f"... {t} latent frames in all", 1 + 4 * 3, length, (110, 110, 110)))
    return timeline(bars, length)


def picture(api_name: str):
    inputs = lambda cls: _node_inputs(api_name, cls)  # noqa: E731
    if api_name in ("t2v_fast_motion_inpaint", "t2v_inpaint_mask_subgraph"):
        return masked_frames("causal"), "red: regenerated, the moving square's\npath (causal latent mask)"
    if api_name == "vace_inpainting":
        return masked_frames("vace"), "red: inpainted by VACE (its control\nmask), guided by a reference image"
    if api_name.startswith("masked_lora_training_dataset"):
        return loss_weights(4), "a folder of clips and images, each with\nits mask: loss weight (white = trained)"
    if api_name.startswith("masked_lora_training"):
        return loss_weights(1), "a clip and its loss weights\n(white = trained, black = not)"
    if api_name == "i2v_first_last_keyframes":
        e = inputs("WanMaskI2VEmbeds")[0]
        keys = [0, *map(int, e["keyframe_indices"].split(",")), e["length"] - 1]
        return (timeline([("generated", 0, e["length"], GENERATED)], e["length"], {k: str(k) for k in keys}),
                f"{e['length']} frames generated between\nthe given frames (blue) {', '.join(map(str, keys))}")
    if api_name == "i2v_keyframes_context_windows":
        e, w = inputs("WanMaskI2VEmbeds")[0], inputs("WanMaskContextWindows")[0]
        n, c = e["length"], w["context_length"]
        keys = [0, *map(int, e["keyframe_indices"].split(","))]
        bars = [(f"window 1: {c} frames", 0, c, GENERATED), (f"window 2: {c} frames", n - c, n, (200, 120, 40))]
        return timeline(bars, n, {k: str(k) for k in keys}), f"a {n}-frame clip sampled in {c}-frame\ncontext windows; given frames blue"
    if api_name == "long_clip_chunked_vae_decode":
        return latent_chunks(), "a long clip decoded a latent frame\nat a time (less VAE memory)"
    if api_name == "animate_long_video_chunks":
        a, b = inputs("WanMaskAnimateEmbeds")[:2]
        n, carry = a["length"], b["continue_motion_max_frames"]
        bars = [(f"chunk 1: {n} frames", 0, n, GENERATED), (f"chunk 2: {n} frames", n - carry, 2 * n - carry, (200, 120, 40))]
        return (timeline(bars, 2 * n - carry, {n - carry: f"{carry} carried"}),
                f"character replacement in chunks;\nchunk 2 continues from chunk 1's last {carry}")
    raise KeyError(f"no picture for example {api_name!r}: add one to {__name__}.picture")


def render(api_name: str):
    """The 256 x 256 thumbnail of one example: its picture over its caption."""
    from PIL import Image, ImageDraw
    image = Image.new("RGB", (SIZE, SIZE), PAPER)
    pic, caption = picture(api_name)
    image.paste(pic, (0, BADGE_H))
    ImageDraw.Draw(image).multiline_text((8, BADGE_H + PICTURE_H + 4), caption, fill=INK, font=_font(13), spacing=3)
    return image


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", nargs="*", metavar="API_NAME", help="only these (API file names without .json)")
    args = p.parse_args(argv)
    for api_name in args.examples or TITLES:
        path = thumbnail(ui_example(api_name))
        render(api_name).save(path, quality=JPEG_QUALITY, optimize=True)
        print(f"wrote {path.name} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
