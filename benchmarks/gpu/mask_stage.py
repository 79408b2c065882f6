"""GPU check, mask stage: ``pixel_mask_to_latent`` on the device against one ``mask.amax()`` read
of the same mask (and native's trilinear ``reshape_mask``), reusing ``benchmarks/mask_conversion.py``'s
interleaved timing. Each timing covers ``inner`` calls, so that launch and sync overheads do not
swamp kernels of a fraction of a millisecond."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...masking.geometry import WAN21
from ...masking.latent_mask import pixel_mask_to_latent


def run_mask_stage(ctx, report) -> str:
    from ..mask_conversion import PAIRS, interleaved_medians

    m, dev = ctx.plan.mask, ctx.device
    frames, height, width = m["frames"], m["height"], m["width"]
    latent = (1, 16, WAN21.latent_frames(frames), height // 8, width // 8)
    mask = torch.rand(frames, height, width, generator=torch.Generator(device=dev).manual_seed(0), device=dev)
    inner = m["inner"]

    def many(fn):
        return lambda: [fn() for _ in range(inner)]

    amax = "mask.amax() (one read)"
    fns = {amax: many(lambda: mask.amax())}
    for tm, sp in PAIRS:
        fns[f"pixel_mask_to_latent {tm}/{sp}"] = many(
            lambda tm=tm, sp=sp: pixel_mask_to_latent(mask, latent, WAN21, tm, sp))
    fns["native trilinear (reshape_mask)"] = many(
        lambda: F.interpolate(mask[None, None], size=latent[2:], mode="trilinear"))
    medians = interleaved_medians(fns, m["repeats"], dev.type)
    base = medians[amax][0]
    report.data["mask"] = {
        "shape": f"{frames}x{height}x{width}", "latent": str(list(latent)), "repeats": m["repeats"],
        "inner": inner, "device": str(dev),
        "rows": [{"case": name, "time_s": wall / inner, "cpu_s": cpu / inner, "x_amax": wall / base}
                 for name, (wall, cpu) in medians.items()]}
    if dev.type != "cuda":
        report.skip("mask", "the conversion on a CUDA device", "no CUDA device: measured on the CPU instead")
    return "done"
