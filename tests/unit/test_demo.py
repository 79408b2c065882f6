"""The README's main command without a ComfyUI: it says how to get one and still renders the
effective-mask comparison with the pure-torch core."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfyui_wanmasking.wanmask_runner.demo_picture import effective_masks, label_boxes, render_comparison
from comfyui_wanmasking.wanmask_runner.demo_data import fast_motion_clip

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(REPO.parent.name == "custom_nodes", reason="installed inside a ComfyUI: the demo would run it")
def test_demo_without_comfyui_renders_the_comparison(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "COMFYUI_PATH"}
    r = subprocess.run([sys.executable, "-m", "wanmask_runner.demo", "--out", str(tmp_path)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "no ComfyUI found" in r.stdout and "COMFYUI_PATH" in r.stdout
    png = tmp_path / "effective_mask_native_vs_causal.png"
    assert_like_the_stored_rendering(png)
    assert "this pack (causal max): keeps 0.0%" in r.stdout


STORED = REPO / "docs" / "effective_mask_native_vs_causal.png"  # the README's picture


def ink(img: Image.Image, box) -> int:
    """Dark pixels (text, outlines) in ``box``: the picture's tiles hold none this dark."""
    return int((np.asarray(img.crop(box).convert("L")) < 90).sum())


def assert_like_the_stored_rendering(png: Path) -> None:
    """The words are drawn: each word area (title, frame numbers, row labels, legend) holds text in
    the new picture as in the stored one, where they sit, and the whole is the stored picture within
    a tolerance (Pillow versions may place a glyph a pixel apart)."""
    got, want = Image.open(png).convert("RGB"), Image.open(STORED).convert("RGB")
    assert got.size == want.size
    boxes = label_boxes(rows=2, tile_h=96, width=got.size[0])
    for name, box in boxes.items():
        assert ink(want, box) > 200, f"the stored picture has no words in its {name}"
        assert ink(got, box) > 0.7 * ink(want, box), f"no words drawn in the {name}"
    diff = np.abs(np.asarray(got, dtype=np.int16) - np.asarray(want, dtype=np.int16))
    assert diff.mean() < 3.0, diff.mean()


def test_the_readme_picture_is_labelled_and_up_to_date(tmp_path):
    render_comparison(tmp_path / "p.png")
    assert_like_the_stored_rendering(tmp_path / "p.png")
    row_labels = [label_boxes(2, 96, 1300)[f"row {r}"] for r in range(2)]
    tiles = Image.open(tmp_path / "p.png").crop((0, row_labels[0][3], 1300, row_labels[1][1]))
    assert ink(tiles, (0, 0, 1300, tiles.size[1])) == 0  # the ink test counts words, not the tiles


def test_native_keeps_part_of_the_fast_object_and_causal_keeps_none():
    _, mask = fast_motion_clip(33, 64, 128, speed=9.0, side=16)
    eff = effective_masks(mask)
    obj = mask > 0
    assert (eff["native trilinear"][obj] < 0.5).float().mean() > 0.3
    assert eff["this pack (causal max)"][obj].min() == 1


@pytest.mark.skipif(REPO.parent.name == "custom_nodes", reason="installed inside a ComfyUI: the suites would run")
def test_without_comfyui_the_suites_that_need_it_skip_in_one_line(tmp_path):
    """A user without ComfyUI sees one skip line naming COMFYUI_PATH, not one per test."""
    env = {k: v for k, v in os.environ.items() if k != "COMFYUI_PATH"}
    r = subprocess.run([sys.executable, "-m", "pytest", "integration", "reliability", "unit/test_model_links.py",
                        "-p", "no:cacheprovider",
                        "-q", "--basetemp", str(tmp_path / "t")], cwd=REPO / "tests", env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:]
    skips = [line for line in r.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skips) == 1 and "COMFYUI_PATH" in skips[0], skips
    modules = len(list((REPO / "tests" / "integration").glob("test_*.py"))) + len(
        list((REPO / "tests" / "reliability").glob("test_*.py")))
    assert f"SKIPPED [{modules}]" in skips[0]
