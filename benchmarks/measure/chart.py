"""Peak memory against frame resolution as a PNG (Pillow's ImageDraw; no plotting library)."""
from __future__ import annotations

from pathlib import Path


def draw_chart(points, path: Path, title: str) -> None:
    """Peak memory against frame resolution as a PNG (Pillow's ImageDraw; no plotting library)."""
    from PIL import Image, ImageDraw

    series = [("native", "native untiled", (200, 40, 40)), ("native_tiled", "native tiled", (240, 150, 60)),
              ("ours", "ours untiled", (30, 90, 200)), ("ours_tiled", "ours tiled", (40, 160, 90)),
              ("ours_offload_traced", "ours + cache offload (traced device bytes)", (130, 60, 170))]
    wd, ht, l, r, top, bot = 900, 560, 90, 30, 50, 110
    img = Image.new("RGB", (wd, ht), "white")
    d = ImageDraw.Draw(img)
    pts = sorted(points, key=lambda p: p["pixels"])
    xmax = max(p["pixels"] for p in pts) * 1.05
    ymax = max(p.get(k, 0) for p in pts for k, _, _ in series) / 2**20 * 1.1
    fx = lambda v: l + (wd - l - r) * v / xmax  # noqa: E731
    fy = lambda v: ht - bot - (ht - top - bot) * v / ymax  # noqa: E731
    d.text((l, 15), title, fill="black")
    d.line([(l, top), (l, ht - bot), (wd - r, ht - bot)], fill="black")
    step = 10 ** max(0, len(str(int(ymax))) - 1)
    step = step if ymax / step >= 3 else step / 2
    y = 0.0
    while y <= ymax:
        d.line([(l - 4, fy(y)), (wd - r, fy(y))], fill=(225, 225, 225))
        d.text((8, fy(y) - 6), f"{y:,.0f} MiB", fill="black")
        y += step
    for p in pts:
        d.line([(fx(p["pixels"]), ht - bot), (fx(p["pixels"]), ht - bot + 4)], fill="black")
        d.text((fx(p["pixels"]) - 25, ht - bot + 8), p["label"], fill="black")
    d.text((l, ht - bot + 26), "frame size (pixels per frame, linear axis); peak above the output buffer",
           fill="black")
    for i, (key, name, color) in enumerate(series):
        xy = [(fx(p["pixels"]), fy(p[key] / 2**20)) for p in pts if key in p]
        if len(xy) > 1:
            d.line(xy, fill=color, width=3)
        for (a, b) in xy:
            d.ellipse([a - 4, b - 4, a + 4, b + 4], fill=color)
        lx, ly = l + (i % 3) * 270, ht - 60 + (i // 3) * 20
        d.line([(lx, ly + 6), (lx + 24, ly + 6)], fill=color, width=3)
        d.text((lx + 30, ly), name, fill="black")
    img.save(path)
