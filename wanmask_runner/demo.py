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

import torch

from comfyui_wanmasking.masking.geometry import WAN21  # registered by wanmask_runner/__init__.py
from comfyui_wanmasking.masking.latent_mask import latent_mask_to_pixel, pixel_mask_to_latent
from comfyui_wanmasking.masking.preview import overlay_effective_mask

from .demo_data import fast_motion_clip
from .locate import HOW_TO_GET, REPO, find_comfyui
from .fixtures.tiny_graph import tiny_graph

EXAMPLE = REPO / "example_workflows" / "api" / "t2v_fast_motion_inpaint.json"
CACHE = REPO / ".cache"
TINY_MODELS_SCRIPT = REPO / "wanmask_runner" / "fixtures" / "tiny_checkpoints.py"
REAL_MODELS = {"diffusion_models": "wan2.1_t2v_1.3B_fp16.safetensors", "vae": "wan_2.1_vae.safetensors",
               "text_encoders": "umt5_xxl_fp8_e4m3fn_scaled.safetensors"}
CLIP_FILE, MASK_FILE = "wanmask_fast_motion.mp4", "wanmask_fast_motion_mask.mp4"


def effective_masks(mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Effective pixel masks [F, H, W] for native trilinear and this pack's causal max."""
    f, h, w = mask.shape
    shape = (1, 16, WAN21.latent_frames(f), h // 8, w // 8)
    native = pixel_mask_to_latent(mask, shape, WAN21, temporal="trilinear", spatial="bilinear")
    causal = pixel_mask_to_latent(mask, shape, WAN21, temporal="max", spatial="max")
    # the native sampler uses the soft value as a blend; count a pixel regenerated where it is >= 0.5
    return {"native trilinear": latent_mask_to_pixel((native >= 0.5).float(), WAN21)[0],
            "this pack (causal max)": latent_mask_to_pixel(causal, WAN21)[0]}


def render_comparison(path: Path, frames: int = 81, height: int = 96, width: int = 256,
                      show: tuple[int, ...] = (0, 3, 6, 9, 12)) -> dict[str, float]:
    """Save a PNG grid (rows: native, this pack; columns: pixel frames) and return the fraction of
    the moving object's pixels that each method keeps (does not regenerate)."""
    from PIL import Image

    images, mask = fast_motion_clip(frames, height, width, speed=9.0, side=24)
    rows, missed = [], {}
    for name, eff in effective_masks(mask).items():
        over = overlay_effective_mask(eff, images, mask)
        rows.append(torch.cat([torch.nn.functional.pad(over[i].permute(2, 0, 1), (2, 2, 2, 2), value=1.0)
                               for i in show], dim=2))
        missed[name] = float(((mask > 0) & (eff < 0.5)).sum() / (mask > 0).sum())
    grid = (torch.cat(rows, dim=1).permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    return missed


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


class WanMaskDemoZeroConditioning:
    """Demo-only stand-in for the 11 GB text encoder: a zero UMT5 embedding [1, 8, 4096]."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "make"
    CATEGORY = "WanMasking/demo"

    def make(self):
        return ([[torch.zeros(1, 8, 4096), {}]],)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m wanmask_runner.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="outputs", help="folder for the results (default: outputs)")
    p.add_argument("--tiny", action="store_true", help="use the tiny checkpoints even if real models exist")
    args = p.parse_args(argv)
    out = Path(args.out)

    png = out / "effective_mask_native_vs_causal.png"
    missed = render_comparison(png)
    print(f"wrote {png}")
    for name, frac in missed.items():
        print(f"  {name}: keeps {100 * frac:.1f}% of the moving object's pixels (should regenerate them all)")

    comfy, why = find_comfyui()
    if comfy is None:
        print(f"\n{why}.\n{HOW_TO_GET}\nThe picture above was made with the pure-torch core only.")
        return 0

    from .api import WorkflowError, run_workflow
    from .backends import open_backend
    from .progress import ProgressPrinter

    tiny_dir = CACHE / "tiny_models"
    comfy_args = [] if torch.cuda.is_available() else ["--cpu"]
    backend = open_backend(comfyui=comfy, comfy_args=comfy_args, extra_model_paths={
        "diffusion_models": [tiny_dir / "diffusion_models"], "vae": [tiny_dir / "vae"]})
    import folder_paths
    import nodes

    missing = [f"{kind}/{name}" for kind, name in REAL_MODELS.items() if folder_paths.get_full_path(kind, name) is None]
    tiny = args.tiny or bool(missing)
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
        result = run_workflow(prompt, backend=backend, out_dir=out, on_event=ProgressPrinter())
    except WorkflowError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(result.files)} file(s) to {out}: the sampled video and the effective-mask preview frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
