"""GPU check, first stage: what the figures were measured on (device, driver, torch, CUDA, cuDNN,
ComfyUI, TF32 settings) and the host link's bandwidth (pinned copies), which the cache offload's
time depends on."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import torch

LINK_BYTES = 256 * 2**20


def driver_version() -> str:
    """The NVIDIA driver version (``nvidia-smi``), or why it is unknown."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown (no nvidia-smi)"


def link_bandwidth(device: torch.device, repeats: int = 3) -> tuple[float, float]:
    """(host -> device, device -> host) GB/s of a 256 MiB pinned copy, best of ``repeats`` (CUDA events)."""
    host = torch.empty(LINK_BYTES, dtype=torch.uint8, pin_memory=True)
    dev = torch.empty(LINK_BYTES, dtype=torch.uint8, device=device)
    best = {"h2d": 0.0, "d2h": 0.0}
    for _ in range(repeats + 1):  # the first round warms up
        for key, (dst, src) in (("h2d", (dev, host)), ("d2h", (host, dev))):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            dst.copy_(src, non_blocking=True)
            b.record()
            b.synchronize()
            best[key] = max(best[key], LINK_BYTES / (a.elapsed_time(b) / 1e3) / 1e9)
    return best["h2d"], best["d2h"]


def run_env_stage(ctx, report) -> str:
    from ..vae import comfyui_version  # imports ComfyUI (its start-up cost counts here)

    e = report.data["env"]
    e.update(torch=torch.__version__, cuda=torch.version.cuda or "none (CPU build)",
             cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
             python=sys.version.split()[0], cpu=platform.processor() or platform.machine(),
             cpu_threads=os.cpu_count(), torch_threads=torch.get_num_threads(), comfyui=comfyui_version(),
             device=str(ctx.device))
    if ctx.device.type == "cuda":
        p = torch.cuda.get_device_properties(ctx.device)
        e.update(cuda_device=p.name, capability=f"{p.major}.{p.minor}", memory_gib=p.total_memory / 2**30,
                 driver=driver_version(), tf32_cudnn=torch.backends.cudnn.allow_tf32,
                 tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
        e["link_h2d_gbs"], e["link_d2h_gbs"] = link_bandwidth(ctx.device)
    else:
        e.update(cuda_device=None, driver="-")
        report.skip("env", "GPU, driver and host-link bandwidth", "no CUDA device on this machine")
    print(f"  device: {e.get('cuda_device') or 'CPU (' + e['cpu'] + ')'}; driver {e['driver']}; torch {e['torch']}; "
          f"CUDA {e['cuda']}; cuDNN {e['cudnn']}; ComfyUI {e['comfyui']}; Python {e['python']}", flush=True)
    if e.get("link_h2d_gbs"):
        print(f"  host link (pinned): {e['link_h2d_gbs']:.1f} GB/s to the device, {e['link_d2h_gbs']:.1f} GB/s back",
              flush=True)
    return "done"
