"""Builder overhead (VAE excluded) of this pack's embed builders vs ComfyUI 0.3.64's native nodes, side by
side in one run under torch.inference_mode(), with the same cheap stand-in encoder. 81 frames 832x480, CPU.

Usage: COMFYUI_PATH=/path/to/ComfyUI python benchmarks/run.py embeds
"""
import time

import comfy.cli_args
import torch

comfy.cli_args.args.cpu = True
from comfy_extras import nodes_wan  # noqa: E402

from ..masking.geometry import WAN21  # noqa: E402
from ..wan.i2v import build_i2v_embeds  # noqa: E402
from ..wan.vace import build_vace_embeds  # noqa: E402

L, H, W = 81, 480, 832

def encode(px):  # cheap stand-in: reads every pixel once, returns the right shape
    t = 1 + (px.shape[0] - 1) // 4
    s = float(px.sum())
    return torch.full((1, 16, t, px.shape[1] // 8, px.shape[2] // 8), s * 0)

class FakeVae:
    latent_channels = 16
    def encode(self, px): return encode(px)
    def spacial_compression_encode(self): return 8

cond = [[torch.zeros(1, 8, 4096), {}]]
g = torch.Generator().manual_seed(0)
start = torch.rand(1, H, W, 3, generator=g); end = torch.rand(1, H, W, 3, generator=g)
video = torch.rand(L, H, W, 3, generator=g); mask = (torch.rand(L, H, W, generator=g) > 0.5).float()
ref = torch.rand(1, H, W, 3, generator=g); mean = torch.zeros(16)

cases = {
 "I2V start": (lambda: nodes_wan.WanImageToVideo.execute(cond, cond, FakeVae(), W, H, L, 1, start_image=start),
               lambda: build_i2v_embeds(encode, length=L, height=H, width=W, geometry=WAN21, start_image=start)),
 "FLF start+end": (lambda: nodes_wan.WanFirstLastFrameToVideo.execute(cond, cond, FakeVae(), W, H, L, 1, start_image=start, end_image=end),
                   lambda: build_i2v_embeds(encode, length=L, height=H, width=W, geometry=WAN21, start_image=start, end_image=end)),
 "VACE video+mask+ref": (lambda: nodes_wan.WanVaceToVideo.execute(cond, cond, FakeVae(), W, H, L, 1, 1.0, control_video=video, control_masks=mask, reference_image=ref),
                         lambda: build_vace_embeds(encode, length=L, height=H, width=W, control_video=video, control_masks=mask, reference_image=ref, latent_mean=mean)),
}

def measure(fn, reps=3):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return min(ts)

with torch.inference_mode():
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {L}x{H}x{W}")
    print("| case | native s (min of 3) | ours s (min of 3) | ratio ours/native |")
    print("|---|---|---|---|")
    for name, (native, ours) in cases.items():
        tn = measure(native); to = measure(ours)
        print(f"| {name} | {tn:.3f} | {to:.3f} | {to/tn:.2f} |")
