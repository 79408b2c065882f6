"""The README's main command with a ComfyUI: the T2V example runs embedded on tiny checkpoints."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_the_t2v_example_embedded(comfyui_path, tmp_path):
    env = dict(os.environ, COMFYUI_PATH=str(comfyui_path))
    r = subprocess.run([sys.executable, "-m", "wanmask_runner.demo", "--out", str(tmp_path), "--tiny"], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "tiny random-weight checkpoints" in r.stdout
    files = [p.name for p in tmp_path.rglob("*") if p.is_file()]  # the server's subfolders are kept
    assert any(f.endswith(".mp4") for f in files), files
    # WanMaskPreview's frames, saved by ComfyUI's own preview output (ui.PreviewImage: temp files)
    assert sum("_temp_" in f and f.endswith(".png") for f in files) == 17, files
