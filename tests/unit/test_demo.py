"""The README's main command without a ComfyUI: it says how to get one and still renders the
effective-mask comparison with the pure-torch core."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from comfyui_wanmasking.wanmask_runner.demo import effective_masks
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
    assert Image.open(png).size[0] > 100
    assert "this pack (causal max): keeps 0.0%" in r.stdout


def test_native_keeps_part_of_the_fast_object_and_causal_keeps_none():
    _, mask = fast_motion_clip(33, 64, 128, speed=9.0, side=16)
    eff = effective_masks(mask)
    obj = mask > 0
    assert (eff["native trilinear"][obj] < 0.5).float().mean() > 0.3
    assert eff["this pack (causal max)"][obj].min() == 1
