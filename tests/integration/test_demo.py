"""The README's main command with a ComfyUI: the T2V example runs embedded on tiny checkpoints."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def tree_state(comfy: Path) -> dict:
    """What a run could leave in the ComfyUI tree: its database and temp folder (name -> mtime)."""
    return {str(p): p.stat().st_mtime for where in ("user", "temp") if (comfy / where).exists()
            for p in (comfy / where).rglob("*")}


def test_demo_runs_the_t2v_example_embedded(comfyui_path, tmp_path):
    env = dict(os.environ, COMFYUI_PATH=str(comfyui_path))
    before = tree_state(comfyui_path)
    r = subprocess.run([sys.executable, "-m", "wanmask_runner.demo", "--out", str(tmp_path), "--tiny"], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "tiny random-weight checkpoints" in r.stdout
    files = [p.name for p in tmp_path.rglob("*") if p.is_file()]  # the server's subfolders are kept
    assert any(f.endswith(".mp4") for f in files), files
    # WanMaskPreview's 17 frames are ComfyUI temp files: counted, not written, unless --previews
    assert not any("_temp_" in f for f in files), files
    assert "17 preview image(s) not written (--previews" in r.stdout and "video: " in r.stdout
    # a ComfyUI the pack does not sit in keeps no database or temp files of the demo
    assert tree_state(comfyui_path) == before
    said = (r.stdout + r.stderr).splitlines()
    assert not any("Torch already imported" in line for line in said)
    doubled = {line.split("] ", 1)[-1] for line in said if "VRAM" in line or "pytorch version" in line.lower()}
    assert doubled and all(sum(line.split("] ", 1)[-1] == d for line in said) == 1 for d in doubled), said[:40]
