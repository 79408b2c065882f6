"""The README's main command: the T2V fast-motion masking example, end to end.

* Always: renders ``effective_mask_native_vs_causal.png``, what the sampler regenerates with
  ComfyUI's native trilinear mask vs this pack's causal mask, using the pure-torch core.
* With a ComfyUI (COMFYUI_PATH, or the ComfyUI this pack sits in): runs
  ``example_workflows/api/t2v_fast_motion_inpaint.json`` embedded (no server, no browser) on a
  synthetic fast-motion clip. Without the real Wan models it says so and uses tiny random-weight
  checkpoints in the real key layout: the pictures are noise, the masking is real.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from .locate import HOW_TO_GET, REPO, find_comfyui
from .fixtures.tiny_graph import tiny_graph

EXAMPLE = REPO / "example_workflows" / "api" / "t2v_fast_motion_inpaint.json"
CACHE = REPO / ".cache"
TINY_MODELS_SCRIPT = REPO / "wanmask_runner" / "fixtures" / "tiny_checkpoints.py"
REAL_MODELS = {"diffusion_models": "wan2.1_t2v_1.3B_fp16.safetensors", "vae": "wan_2.1_vae.safetensors",
               "text_encoders": "umt5_xxl_fp8_e4m3fn_scaled.safetensors"}
CLIP_FILE, MASK_FILE = "wanmask_fast_motion.mp4", "wanmask_fast_motion_mask.mp4"


class WanMaskDemoZeroConditioning:
    """Demo-only stand-in for the 11 GB text encoder: a zero UMT5 embedding [1, 8, 4096]."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "make"
    CATEGORY = "WanMasking/demo"

    def make(self):
        import torch

        return ([[torch.zeros(1, 8, 4096), {}]],)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m wanmask_runner.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="outputs", help="folder for the results (default: outputs)")
    p.add_argument("--tiny", action="store_true", help="use the tiny checkpoints even if real models exist")
    p.add_argument("--previews", action="store_true",
                   help="also write the 17 effective-mask preview frames, under OUT/previews/")
    args = p.parse_args(argv)
    out = Path(args.out)

    comfy, why = find_comfyui()
    # ComfyUI's startup comes first: it sets torch up (torch imported before it makes ComfyUI warn)
    backend = start_comfyui(comfy) if comfy is not None else None
    from .demo_picture import render_comparison

    png = out / "effective_mask_native_vs_causal.png"
    missed = render_comparison(png)
    print(f"wrote {png}")
    for name, frac in missed.items():
        print(f"  {name}: keeps {100 * frac:.1f}% of the moving object's pixels (should regenerate them all)")
    if backend is None:
        print(f"\n{why}.\n{HOW_TO_GET}\nThe picture above was made with the pure-torch core only.")
        return 0
    return run_example(backend, comfy, out, args.tiny, args.previews)


def inside_that_comfyui(comfy: Path) -> bool:
    """The pack sits in this ComfyUI's custom_nodes: the demo runs there as a user would."""
    return REPO.parent.resolve() == (comfy / "custom_nodes").resolve()


def start_comfyui(comfy: Path):
    """Embedded ComfyUI for the demo. In a ComfyUI the pack does not sit in (COMFYUI_PATH), nothing
    is left behind there: its database is in memory and its temp folder under the pack's .cache/."""
    from .backends import open_backend

    tiny_dir = CACHE / "tiny_models"
    comfy_args = [] if _cuda_available() else ["--cpu"]
    if not inside_that_comfyui(comfy):
        comfy_args += ["--database-url=sqlite:///:memory:", f"--temp-directory={CACHE / 'demo_temp'}"]
    return open_backend(comfyui=comfy, comfy_args=comfy_args, extra_model_paths={
        "diffusion_models": [tiny_dir / "diffusion_models"], "vae": [tiny_dir / "vae"]})


def _cuda_available() -> bool:
    """Whether CUDA is there, asked in a child process so that this one imports torch after ComfyUI."""
    r = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                       capture_output=True, text=True)
    return r.stdout.strip() == "True"


def run_example(backend, comfy: Path, out: Path, tiny: bool, previews: bool) -> int:
    import folder_paths
    import nodes

    from .api import WorkflowError, run_workflow
    from .cli import summary
    from .demo_data import fast_motion_clip, write_clip
    from .progress import ProgressPrinter, logs_above_bar

    tiny_dir = CACHE / "tiny_models"
    missing = [f"{kind}/{name}" for kind, name in REAL_MODELS.items() if folder_paths.get_full_path(kind, name) is None]
    tiny = tiny or bool(missing)
    prompt = json.loads(EXAMPLE.read_text())
    if tiny:
        print(f"\nReal Wan models not found ({', '.join(missing) or '--tiny'}): running on tiny random-weight "
              f"checkpoints in the real key layout. The video will be noise; the masking is real.")
        if not (tiny_dir / "vae" / "wan_tiny_vae.safetensors").exists():
            subprocess.run([sys.executable, str(TINY_MODELS_SCRIPT), str(comfy), str(tiny_dir)], check=True)
        nodes.NODE_CLASS_MAPPINGS["WanMaskDemoZeroConditioning"] = WanMaskDemoZeroConditioning
        prompt = tiny_graph(prompt, ("WanMaskDemoZeroConditioning", {}), size=64, frames=17, steps=4)
        frames, size = 17, (64, 64)
    else:
        frames, size = 81, (480, 832)

    inputs = CACHE / "demo_input"
    inputs.mkdir(parents=True, exist_ok=True)
    images, mask = fast_motion_clip(frames, *size)
    write_clip(inputs / CLIP_FILE, images)
    write_clip(inputs / MASK_FILE, mask.unsqueeze(-1).expand(-1, -1, -1, 3))
    folder_paths.set_input_directory(str(inputs))

    print(f"running {EXAMPLE.relative_to(REPO)} embedded in {comfy}")
    try:
        with logs_above_bar():
            result = run_workflow(prompt, backend=backend, out_dir=out, on_event=ProgressPrinter(), previews=previews)
    except WorkflowError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(summary(result, str(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
