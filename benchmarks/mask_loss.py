"""Benchmark: the masked loss reducer against the native trainer's plain ``MSELoss()`` mean.

One run, under ``torch.inference_mode()``, side by side on the same tensors: the per-step loss
(a Wan 2.1 latent of 81 frames at 832x480 = [1, 16, 21, 60, 104]) reduced by
* native: ``torch.nn.MSELoss()(pred, target)`` (what ComfyUI's TrainSampler does),
* masked: ``masked_training_loss`` with per-cell weights (gamma 0.7, min_weight 0.05),
* masked + prior: the same with a teacher prediction, threshold mode, per-sample normalization,
and the one-off cost of turning an 81-frame 832x480 per-frame mask into latent weights. Reported
as median times (candidates interleaved each repeat) and ratios to native. The model's forward/backward, which dominates a training
step, is not included (prior preservation adds one forward pass per step on top).

    python benchmarks/run.py mask_loss [--repeats 30] [--device cpu|cuda] [--threads 1]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from datetime import datetime, timezone

import torch


from ..masking.geometry import WAN21
from ..masking.training.loss import MaskLossSettings
from ..masking.training.step_loss import elementwise_loss, masked_training_loss
from ..masking.training.weights import latent_loss_weights


def _timed(fn, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def interleaved_medians(fns: dict, repeats: int, device: str) -> dict:
    """Median time of each candidate, running them in turn each repeat so machine load hits all alike."""
    for fn in fns.values():
        fn()  # warm-up
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(_timed(fn, device))
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: steadier on a shared machine)")
    a = parser.parse_args()
    torch.set_num_threads(a.threads)
    dev = a.device
    g = torch.Generator().manual_seed(0)
    shape = (1, 16, 21, 60, 104)
    pred, target, teacher = (torch.randn(shape, generator=g).to(dev) for _ in range(3))
    mask = torch.zeros(81, 480, 832)
    mask[:, 100:380, 300:600] = 1.0
    mask[:, 120:200, 400:500] = 128 / 255
    mse = elementwise_loss("MSE")
    native = torch.nn.MSELoss()
    plain = MaskLossSettings(gamma=0.7, min_weight=0.05)
    prior = MaskLossSettings(gamma=0.7, prior_weight=1.0, prior_threshold=0.1, normalize_per_sample=True)

    with torch.inference_mode():
        weights = latent_loss_weights(mask, shape, WAN21).to(dev)
        rows = interleaved_medians({
            "native MSELoss mean": lambda: native(pred, target),
            "masked (gamma 0.7, min 0.05)": lambda: masked_training_loss(pred, target, weights, plain, mse),
            "masked + prior (threshold, per sample)":
                lambda: masked_training_loss(pred, target, weights, prior, mse, teacher),
        }, a.repeats, dev)
        build = interleaved_medians({"build": lambda: latent_loss_weights(mask, shape, WAN21)},
                                    max(3, a.repeats // 10), "cpu")["build"]

    base = rows["native MSELoss mean"]
    print(f"# mask_loss benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {dev}, "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"latent {list(shape)} fp32, {a.repeats} repeats, medians")
    for name, t in rows.items():
        print(f"  {name:<42s} {t * 1e3:8.2f} ms   x{t / base:5.2f} vs native")
    print(f"  {'weights from an 81x480x832 mask (once)':<42s} {build * 1e3:8.2f} ms")


if __name__ == "__main__":
    main()
