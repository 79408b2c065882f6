"""Benchmark: masked training on a dataset (issue 20) against ComfyUI's native dataset and trainer nodes.

One run, side by side, on the ComfyUI at COMFYUI_PATH (in-process, CPU), with the tiny Wan T2V checkpoint
and the real-size Wan 2.1 VAE with random weights (``--models``, as wanmask_runner/fixtures/tiny_checkpoints.py
writes them). Captions go through a stand-in CLIP (a seeded [1, 8, 4096] embedding per caption; the real
umt5-xxl is 10 GB), the same one for both sides.

1. Set encoding, under ``torch.inference_mode()`` (as ComfyUI runs nodes), folder to bucketed latents:
   ours = ``WanMaskTrainingSet.execute`` (pairing + ``build_training_set`` with the VAE's own ``encode``,
   cache off), without masks and with a mask file per item; native = ``LoadImageTextDataSetFromFolder`` +
   ``MakeTrainingDataset`` + ``ResolutionBucket`` on the same RGB images and captions. Interleaved, medians.
2. Cache: the same node with ``cache`` on, cold (empty cache: encode + store) vs warm (load only).
3. Peak memory of training against the number of items (25 / 50 / 100 latents [16, 1, 32, 32] of one
   shape, a 1-token text embedding each): ``train_masked_lora`` in bucket mode
   (``MaskedLossLoop.run_buckets``) and with bucket mode off (``MaskedLossLoop.run`` on all items as one
   tensor), and native ``TrainLoraNode`` in bucket mode. CPU peak =
   process RSS sampled every 2 ms above the level before the call (the set is already in memory then;
   glibc mmap threshold 64 KiB, set by benchmarks/run.py, so freed tensors leave RSS).
4. Training step time, bucket mode, same data (two buckets of 8 items with the same token count), fp32,
   no gradient checkpointing, batch 2: native ``TrainLoraNode`` vs ``train_masked_lora`` (each item's
   loss weights carried by the latents) and ours with prior preservation 1.0. The step time is the
   median interval between consecutive optimizer steps (set-up excluded), in process CPU time and wall time
   (the machine is shared: CPU time counts the work done), runs interleaved.

    COMFYUI_PATH=~/.cache/wanmask-ci/trees/ComfyUI-0.33.0 python benchmarks/run.py training_set \
        --models ~/.cache/wanmask-ci/tiny-models-0.33.0 [--items 8] [--size 64] [--repeats 3] [--steps 12] [--threads 1]
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import importlib
import logging
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from .vae import PeakMemory, comfyui_version  # ComfyUI from COMFYUI_PATH, CPU when no GPU

import comfy.sd  # noqa: E402
import comfy.utils  # noqa: E402
import folder_paths  # noqa: E402

from ..masking.training.trainer_inputs import NAMES_KEY, WEIGHTS_KEY, assemble_training_data  # noqa: E402
from ..masking.training.dataset_cache import fingerprint_state_dict  # noqa: E402
from ..masking.training.loss import MaskLossSettings  # noqa: E402
from ..wanmask_runner.fixtures.tiny_dataset import gradient, tier_mask, write_image  # noqa: E402

MiB = 1 << 20


class StandInClip:
    """A CLIP stand-in: each caption becomes a seeded [1, 8, 4096] embedding (as the integration tests')."""

    def __init__(self):
        self.cond_stage_model = torch.nn.Linear(4, 4)

    def tokenize(self, text):
        return text

    def encode_from_tokens_scheduled(self, tokens):
        seed = int(hashlib.sha256(tokens.encode()).hexdigest()[:8], 16)
        return [[torch.randn(1, 8, 4096, generator=torch.Generator().manual_seed(seed)), {}]]


class StepClock:
    """Wall and process CPU time at every optimizer step (AdamW.step wrapped at class level: both trainers
    use AdamW)."""

    def __init__(self):
        self.times: list[tuple[float, float]] = []
        self._orig = torch.optim.AdamW.step

    def __enter__(self):
        orig, times = self._orig, self.times

        def step(opt, *a, **k):
            out = orig(opt, *a, **k)
            times.append((time.perf_counter(), time.process_time()))
            return out
        torch.optim.AdamW.step = step
        return self

    def __exit__(self, *exc):
        torch.optim.AdamW.step = self._orig

    def per_step(self) -> tuple[float, float]:
        """(median wall s, median CPU s) between consecutive steps, the first interval left out."""
        gaps = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(self.times, self.times[1:])][1:]
        return statistics.median(g[0] for g in gaps), statistics.median(g[1] for g in gaps)


def write_set(root: Path, count: int, size: int) -> None:
    """``count`` RGB images size x size with captions in root/items, a tier mask per image in root/masks."""
    for i in range(count):
        name = f"img{i:03d}"
        write_image(root / "items" / f"{name}.png", gradient(size, size, i))
        (root / "items" / f"{name}.txt").write_text(f"a test image number {i}", encoding="utf-8")
        write_image(root / "masks" / f"{name}.png", tier_mask(size, size))


def timed(fn):
    """(wall seconds, process CPU seconds of all threads, result) of ``fn()``."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def interleaved(fns: dict, repeats: int, warm_up: bool = True) -> dict:
    """{name: (median wall s, median CPU s)}, the candidates in turn each repeat (order reversed every other)."""
    if warm_up:
        for fn in fns.values():
            fn()
    times = {k: [] for k in fns}
    for r in range(repeats):
        order = list(fns.items()) if r % 2 == 0 else list(reversed(fns.items()))
        for name, fn in order:
            times[name].append(timed(fn)[:2])
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}


class StubVAE:
    """The VAE with ``encode`` replaced by zeros of the latent's shape: times everything but the encoder."""

    def __init__(self, vae):
        self._vae = vae

    def __getattr__(self, name):
        return getattr(self._vae, name)

    def encode(self, pixels):
        f, h, w = pixels.shape[:3]
        return torch.zeros(1, 16, (f - 1) // 4 + 1, h // 8, w // 8)


def train_options(**over) -> dict:
    opts = dict(batch_size=2, grad_accumulation_steps=1, steps=30, learning_rate=1e-4, rank=8, optimizer="AdamW",
                loss_function="MSE", seed=0, training_dtype="fp32", lora_dtype="fp32", quantized_backward=False,
                algorithm="LoRA", gradient_checkpointing=False, checkpoint_depth=1, offloading=False,
                existing_lora="[None]", bucket_mode=True, bypass_mode=False)
    opts.update(over)
    return opts


def latent_set(shapes: list[tuple[int, ...]], per_shape: int, seed: int = 0,
               tokens: int = 8) -> tuple[list[dict], list[list]]:
    """ResolutionBucket-style inputs: one LATENT dict per shape ([per_shape, 16, T, h, w], with each item's
    loss weights and names, as WanMaskTrainingSet gives them) and one conditioning list per bucket (a zero
    [1, tokens, 4096] text embedding per item)."""
    g = torch.Generator().manual_seed(seed)
    latents, conds = [], []
    cond = [torch.zeros(1, tokens, 4096), {}]
    for b, shape in enumerate(shapes):
        samples = torch.randn(per_shape, 16, *shape, generator=g)
        weights = torch.zeros(per_shape, 1, *shape)
        weights[..., : shape[-2] // 2, :] = 1.0          # a subject in the upper half, background 0
        weights[..., shape[-2] // 2: 3 * shape[-2] // 4, :] = 128 / 255
        latents.append({"samples": samples, WEIGHTS_KEY: weights,
                        NAMES_KEY: [f"b{b}_{i}" for i in range(per_shape)]})
        conds.append([cond] * per_shape)
    return latents, conds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.environ.get("WANMASK_TEST_MODELS", "/tmp/tinym"))
    ap.add_argument("--items", type=int, default=8, help="images in the encoding benchmark")
    ap.add_argument("--size", type=int, default=64, help="their pixel side")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=12, help="training steps per call (step-time benchmark)")
    ap.add_argument("--memory-items", type=int, nargs="*", default=[25, 50, 100])
    ap.add_argument("--memory-side", type=int, default=32, help="latent h = w of the memory benchmark's items")
    ap.add_argument("--memory-steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: CPU time counts work, not "
                    "OpenMP spin-waits; 0: leave as is)")
    ap.add_argument("--only", nargs="*", default=["encode", "cache", "memory", "steps"])
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)

    from comfy_extras.nodes_dataset import LoadImageTextDataSetFromFolderNode, MakeTrainingDataset, ResolutionBucket
    from comfy_extras.nodes_train import TrainLoraNode
    training_set = importlib.import_module("..nodes.training_set", __package__)
    lora_trainer = importlib.import_module("..nodes.lora_trainer", __package__)

    models = Path(a.models).expanduser()
    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(models / "vae" / "wan_tiny_vae.safetensors")))
    model = comfy.sd.load_diffusion_model(str(models / "diffusion_models" / "wan_tiny_t2v.safetensors"))
    clip = StandInClip()
    work = Path(tempfile.mkdtemp(prefix="wanmask_bench_"))
    folder_paths.set_input_directory(str(work / "input"))
    folder_paths.set_output_directory(str(work / "output"))
    folder_paths.folder_names_and_paths["datasets"] = ([str(work / "datasets")], set())  # the cache goes here
    write_set(work / "input" / "bench", a.items, a.size)
    print(f"# training_set benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, ComfyUI "
          f"{comfyui_version()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} torch threads, cpu, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    def ours(mask_folder="(none)", cache=False, v=vae):
        return training_set.WanMaskTrainingSet.execute(
            "bench/items", mask_folder, True, False, v, clip, a.size, a.size, True, 1, "contiguous", "trim", 0,
            cache).result

    def native(v=vae):
        images, texts = LoadImageTextDataSetFromFolderNode.execute("bench/items").result
        latents, conds = MakeTrainingDataset.execute(images, [v], [clip], texts).result
        return ResolutionBucket.execute(latents, conds).result

    if "encode" in a.only or "cache" in a.only:
        with torch.inference_mode():
            out_ours, out_native = ours(), native()
            ours_l = torch.cat([d["samples"] for d in out_ours[0]])
            nat_l = torch.cat([d["samples"] for d in out_native[0]])
            # item order: ours sorts by name, native lists the folder; compare as sets of latents
            diff = (torch.sort(ours_l.flatten(1), 0)[0] - torch.sort(nat_l.flatten(1), 0)[0]).abs().max()
            print(f"\n## 1. set encoding: {a.items} RGB images {a.size}x{a.size} + captions, latent "
                  f"{list(ours_l.shape[1:])}; max |ours - native| over the sorted latents {float(diff):.2e}")
    if "encode" in a.only:
        logging.getLogger("WanMasking").setLevel(logging.ERROR)  # the "no mask" warning of every run
        stub = StubVAE(vae)
        with torch.inference_mode():
            t = interleaved({"native": native, "ours": ours, "ours_masks": lambda: ours("bench/masks")}, a.repeats,
                            warm_up=False)
            o = interleaved({"native": lambda: native(stub), "ours": lambda: ours(v=stub),
                             "ours_masks": lambda: ours("bench/masks", v=stub)}, 5 * a.repeats)
        print(f"median of {a.repeats} runs, interleaved; wall s / process CPU s (all threads)")
        print("| path | with the VAE: wall | CPU | CPU vs native | without the encoder (stub VAE): wall | CPU |")
        print("|---|---|---|---|---|---|")
        for k, label in (("native", "native LoadImageTextDataSetFromFolder + MakeTrainingDataset + ResolutionBucket"),
                         ("ours", "ours WanMaskTrainingSet, no masks, cache off"),
                         ("ours_masks", "ours WanMaskTrainingSet, a mask file per item, cache off")):
            print(f"| {label} | {t[k][0]:.3f} s | {t[k][1]:.3f} s | x{t[k][1] / t['native'][1]:.3f} | "
                  f"{1e3 * o[k][0]:.1f} ms | {1e3 * o[k][1]:.1f} ms |")
        extra = o["ours"][1] - o["native"][1]
        masks = o["ours_masks"][1] - o["ours"][1]
        print(f"wall ratio ours / native {t['ours'][0] / t['native'][0]:.3f}, with masks "
              f"{t['ours_masks'][0] / t['native'][0]:.3f} (target: ours <= 1.10x native, plus the masks)")
        print(f"without the encoder (median of {5 * a.repeats}): ours' extra work vs native {1e3 * extra:+.1f} ms CPU "
              f"= "
              f"{100 * extra / t['native'][1]:+.2f}% of native's whole CPU time; the masks add {1e3 * masks:.1f} ms "
              f"CPU = {1e3 * masks / a.items:.2f} ms per item = {100 * masks / t['native'][1]:.2f}% of native's")

    if "cache" in a.only:
        cache_dir = work / "datasets" / "wanmask_cache"
        colds, warms = [], []
        with torch.inference_mode():
            for _ in range(a.repeats):
                shutil.rmtree(cache_dir, ignore_errors=True)
                colds.append(timed(lambda: ours("bench/masks", cache=True))[0])
                warm_runs = [timed(lambda: ours("bench/masks", cache=True)) for _ in range(3)]
                warms.append(statistics.median(w[0] for w in warm_runs))
            report = warm_runs[-1][2][2]
            fingerprint = statistics.median(timed(lambda: fingerprint_state_dict(vae.first_stage_model.state_dict()))[0]
                                            for _ in range(5))
        cold, warm = statistics.median(colds), statistics.median(warms)
        size = sum(p.stat().st_size for p in cache_dir.rglob("*") if p.is_file())
        print(f"\n## 2. cache ({a.items} items with masks, cache on): cold build (encode + store) {cold:.3f} s, "
              f"warm build (load) {1e3 * warm:.1f} ms = x{warm / cold:.4f} of cold ({cold / warm:.0f}x faster); "
              f"cache on disk {size / 1024:.0f} KiB")
        print(f"  of the warm build, fingerprinting the VAE's weights (the cache key) takes {1e3 * fingerprint:.1f} ms")
        print("  warm run's report: " + next((ln for ln in report.splitlines() if ln.startswith("Encoded")), ""))

    if "memory" in a.only:
        side, item_bytes = a.memory_side, 16 * a.memory_side ** 2 * 4
        settings = MaskLossSettings()

        def train_set(mode: str, n: int) -> int:
            """Peak RSS above the level before one training call of ``n`` items (the set already built)."""
            with torch.inference_mode():
                latents, conds = latent_set([(1, side, side)], n, seed=n, tokens=1)
                data = assemble_training_data(latents, conds, None, require_mask=True, bucket_mode=mode == "bucket")
                opts = train_options(batch_size=1, steps=a.memory_steps, bucket_mode=mode != "tensor")
                gc.collect()
                with PeakMemory(torch.device("cpu")) as pm:
                    if mode == "native":
                        TrainLoraNode.execute(**{k: [v] for k, v in dict(opts, model=model).items()},
                                              latents=[{"samples": d["samples"]} for d in latents], positive=conds)
                    else:
                        lora_trainer.train_masked_lora(model, data, settings, lora_trainer.TrainOptions(**opts))
                del latents, conds, data
            gc.collect()
            return pm.peak

        modes = ("bucket", "tensor", "native")
        for mode in modes:  # warm-up: the first training call of a process allocates lazily (kernels, caches)
            train_set(mode, a.memory_items[0])
        peaks = {(mode, n): train_set(mode, n) for n in a.memory_items for mode in modes}
        print(f"\n## 3. peak RSS of a training call above the level before it (the set already in memory), latents "
              f"[16, 1, {side}, {side}] fp32 = {item_bytes / MiB:.3f} MiB per item (+ a [1, 1, 4096] text embedding), "
              f"one bucket, batch 1, "
              f"{a.memory_steps} steps, one call per cell after a warm-up call per trainer")
        print("| items | set storage | ours, bucket mode (run_buckets) | ours, one tensor (bucket off: run) | "
              "native TrainLoraNode, bucket mode |")
        print("|---|---|---|---|---|")
        for n in a.memory_items:
            print(f"| {n} | {n * item_bytes / MiB:.1f} MiB | " + " | ".join(
                f"{peaks[(m, n)] / MiB:.1f} MiB" for m in modes) + " |")
        lo, hi = a.memory_items[0], a.memory_items[-1]
        print(f"growth {lo} -> {hi} items, in items' worth of storage: " + ", ".join(
            f"{m} {(peaks[(m, hi)] - peaks[(m, lo)]) / ((hi - lo) * item_bytes):+.2f}" for m in modes))

    if "steps" in a.only:
        shapes = [(1, 16, 32), (1, 32, 16)]     # two buckets, 128 tokens per item each (same step cost)
        kinds = {"native": "native TrainLoraNode", "ours": "ours, masked loss",
                 "ours_prior": "ours, masked loss + prior preservation 1.0"}
        results = {k: [] for k in kinds}        # (step wall, step CPU, call wall, call CPU) per call

        def train(kind):
            with torch.inference_mode():
                latents, conds = latent_set(shapes, 8)
                opts = train_options(steps=a.steps)
                with StepClock() as clock:
                    t0, c0 = time.perf_counter(), time.process_time()
                    if kind == "native":
                        TrainLoraNode.execute(**{k: [v] for k, v in dict(opts, model=model).items()},
                                              latents=[{"samples": d["samples"]} for d in latents], positive=conds)
                    else:
                        data = assemble_training_data(latents, conds, None, require_mask=True, bucket_mode=True)
                        prior = 1.0 if kind == "ours_prior" else 0.0
                        settings = MaskLossSettings(prior_weight=prior, normalize_per_sample=prior > 0)
                        lora_trainer.train_masked_lora(model, data, settings, lora_trainer.TrainOptions(**opts))
                    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            assert len(clock.times) == a.steps, (kind, len(clock.times))
            step_wall, step_cpu = clock.per_step()
            if os.environ.get("WANMASK_BENCH_VERBOSE"):
                print(f"  {kind}: call {wall:.2f} s wall / {cpu:.2f} s CPU, step {1e3 * step_wall:.1f} ms wall / "
                      f"{1e3 * step_cpu:.1f} ms CPU")
            return step_wall, step_cpu, wall, cpu

        for kind in kinds:  # warm-up
            train(kind)
        for r in range(a.repeats):
            for kind in (list(kinds) if r % 2 == 0 else list(reversed(kinds))):
                results[kind].append(train(kind))
        med = {k: [statistics.median(x[i] for x in v) for i in range(4)] for k, v in results.items()}
        print(f"\n## 4. training step, bucket mode, 2 buckets x 8 items (latents {[list(s) for s in shapes]}, 16 "
              f"channels, a zero [1, 8, 4096] text embedding each), batch 2, fp32, no checkpointing, {a.steps} steps "
              f"per call, median of {a.repeats} calls (interleaved, after a warm-up call each); CPU = process CPU time")
        print("| trainer | per step: wall | CPU | CPU vs native | whole call: wall | CPU | CPU vs native |")
        print("|---|---|---|---|---|---|---|")
        base = med["native"]
        for kind, label in kinds.items():
            m = med[kind]
            print(f"| {label} | {1e3 * m[0]:.1f} ms | {1e3 * m[1]:.1f} ms | x{m[1] / base[1]:.3f} | {m[2]:.2f} s | "
                  f"{m[3]:.2f} s | x{m[3] / base[3]:.3f} |")
        print(f"per-step ratios: ours / native x{med['ours'][1] / base[1]:.3f} CPU, x{med['ours'][0] / base[0]:.3f} "
              f"wall (target <= 1.05); prior preservation vs ours without x{med['ours_prior'][1] / med['ours'][1]:.3f} "
              f"CPU, x{med['ours_prior'][0] / med['ours'][0]:.3f} wall (documented ~1.3-1.7x)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
