"""Benchmark: WanMaskSamplerPatch vs native DifferentialDiffusion in a real ComfyUI KSampler.

Runs the tiny Wan T2V checkpoint (wanmask_runner/fixtures/tiny_checkpoints.py) through ``comfy.sample.sample``
(what the KSampler node calls) with a soft latent noise mask, once with the model patched by our
node and once with ComfyUI's own ``DifferentialDiffusion``, interleaved, under
``torch.inference_mode()``. Reports:

* whole-sampling time per step, patch / native (median over repeats), i.e. the overhead ratio;
* the per-step mask function alone (ours vs native), microseconds per call;
* host syncs inside the patch's per-step path: on CUDA with ``torch.cuda.set_sync_debug_mode``,
  on CPU by counting calls to ``item/cpu/tolist/numpy/__float__/__int__/__bool__/__index__`` while
  the mask function runs (native is counted the same way, for comparison).

Usage::

    COMFYUI_PATH=/work/ComfyUI python benchmarks/run.py sampler_patch --models /tmp/tinym [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import platform
import statistics
import time
import types
import warnings
from pathlib import Path

import torch

SYNC_METHODS = ("item", "cpu", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__")


def import_comfy(device: str):
    import comfy.cli_args
    if device == "cpu":
        comfy.cli_args.args.cpu = True
    import comfy.model_management  # noqa: F401
    import comfy.sample
    import comfy.sampler_helpers
    import comfy.sd
    return comfy


def import_pack():
    """The pack's sampler node module (after ComfyUI is imported: nodes/ declares ComfyUI nodes)."""
    return importlib.import_module("..nodes.sampler", __package__)


class SyncCounter:
    """Counts host-sync calls while ``active``; wraps a per-step function to switch it on."""

    def __init__(self):
        self.active = False
        self.count = 0
        self.calls = 0
        self._orig = {}

    def install(self, cuda: bool = False):
        if cuda:
            return
        for name in SYNC_METHODS:
            orig = getattr(torch.Tensor, name)
            self._orig[name] = orig

            def spy(t, *a, _orig=orig, **k):
                if self.active:
                    self.count += 1
                return _orig(t, *a, **k)
            setattr(torch.Tensor, name, spy)

    def uninstall(self):
        for name, orig in self._orig.items():
            setattr(torch.Tensor, name, orig)

    def wrap(self, fn, cuda: bool):
        def counted(*a, **k):
            self.calls += 1
            if not cuda:  # CPU: count the Python-level calls that would sync on a GPU
                self.active = True
                try:
                    return fn(*a, **k)
                finally:
                    self.active = False
            with cuda_sync_warnings() as found:  # CUDA: every synchronizing call warns
                out = fn(*a, **k)
            self.count += len(found)
            return out
        return counted


@contextlib.contextmanager
def cuda_sync_warnings():
    """Counts CUDA host syncs inside the block: under ``torch.cuda.set_sync_debug_mode("warn")``
    every synchronizing call warns. ``with cuda_sync_warnings() as found:``; after the block,
    ``len(found)`` is the number of syncs."""
    found: list = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield found
        finally:
            torch.cuda.set_sync_debug_mode(0)
            found.extend(w for w in caught if "synchroniz" in str(w.message))


def load_models(comfy, models_dir, aa: bool = False):
    """(model, ours, native): the tiny Wan T2V checkpoint of ``models_dir``, patched by our node and by
    native ``DifferentialDiffusion`` (with ``aa``, "ours" is a second native clone: the noise floor)."""
    from comfy_extras.nodes_differential_diffusion import DifferentialDiffusion
    sampler_nodes = import_pack()
    model = comfy.sd.load_diffusion_model(str(Path(models_dir) / "diffusion_models" / "wan_tiny_t2v.safetensors"))
    native = DifferentialDiffusion.execute(model, strength=1.0)[0]
    ours = sampler_nodes.WanMaskSamplerPatch.execute(model, "timestep", 1.0, True, True).result[0]
    if aa:
        ours = DifferentialDiffusion.execute(model, strength=1.0)[0]
    return model, ours, native


def sampling_inputs(frames: int, height: int, width: int = 0, seed: int = 0) -> dict:
    """Latent, noise, a soft noise mask (a quarter of the columns kept at 0) and a zero text
    conditioning for a ``[1, 16, frames, height, width]`` latent (``width`` 0: square)."""
    width = width or height
    g = torch.Generator().manual_seed(seed)
    shape = (1, 16, frames, height, width)
    latent = torch.randn(shape, generator=g)
    mask = torch.rand(1, 1, *shape[2:], generator=g)
    mask[..., : width // 4] = 0
    return {"shape": shape, "latent": latent, "mask": mask, "noise": torch.randn(shape, generator=g),
            "cond": [[torch.zeros(1, 8, 4096), {}]]}


def sampling_runner(comfy, inputs: dict, steps: int, scheduler: str, cuda: bool):
    """``run(model) -> (seconds, samples)``: one ``comfy.sample.sample`` call (what KSampler calls)."""
    def run(m):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = comfy.sample.sample(m, inputs["noise"], steps, 1.0, "euler", scheduler, inputs["cond"], inputs["cond"],
                                  inputs["latent"], noise_mask=inputs["mask"], seed=1, disable_pbar=True)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t0, out
    return run


def paired_times(run, ours, native, repeats: int, warm_up: bool = True):
    """Whole-call seconds of each model over ``repeats`` interleaved pairs (the order alternates, so
    drifting machine load hits both alike), after one warm-up call each (unless the caller made
    them): (times by name, ours/native ratio of each pair)."""
    if warm_up:
        run(ours), run(native)  # model load, allocator
    results, pairs = {"ours": [], "native": []}, []
    for r in range(repeats):
        order = (("ours", ours), ("native", native)) if r % 2 == 0 else (("native", native), ("ours", ours))
        t = {name: run(m)[0] for name, m in order}
        for name in t:
            results[name].append(t[name])
        pairs.append(t["ours"] / t["native"])
    return results, pairs


def count_host_syncs(run, models: dict, cuda: bool) -> dict:
    """Host syncs in each model's per-step mask function during one real sampling call:
    ``{name: (syncs, mask-function calls)}`` (CUDA: ``set_sync_debug_mode``; CPU: the Python spy)."""
    counter, counts = SyncCounter(), {}
    counter.install(cuda)
    try:
        for name, m in models.items():
            fn = m.model_options["denoise_mask_function"]
            m.model_options["denoise_mask_function"] = counter.wrap(fn, cuda)
            counter.count = counter.calls = 0
            try:
                run(m)
            finally:
                m.model_options["denoise_mask_function"] = fn
            counts[name] = (counter.count, counter.calls)
    finally:
        counter.uninstall()
    return counts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.environ.get("WANMASK_TEST_MODELS", "/tmp/tinym"))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--frames", type=int, default=9, help="latent frames")
    ap.add_argument("--size", type=int, default=16, help="latent h = w")
    ap.add_argument("--scheduler", default="simple")
    ap.add_argument("--aa", action="store_true", help="control: time native against native (noise floor); "
                    "'ours' in the output is then a second native clone")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    comfy = import_comfy(args.device)  # ComfyUI from COMFYUI_PATH (benchmarks/run.py)
    sampler_nodes = import_pack()
    cuda = args.device == "cuda"
    model, ours, native = load_models(comfy, args.models, args.aa)
    inputs = sampling_inputs(args.frames, args.size)
    shape, latent, mask, cond = inputs["shape"], inputs["latent"], inputs["mask"], inputs["cond"]
    run = sampling_runner(comfy, inputs, args.steps, args.scheduler, cuda)

    with torch.inference_mode():
        results, pairs = paired_times(run, ours, native, args.repeats)
        _, out_ours = run(ours)
        _, out_native = run(native)

        # host syncs in the per-step mask function, during a real sampling run
        counts = count_host_syncs(run, {"ours": ours, "native": native}, cuda)

        # the mask function alone
        dev = model.load_device
        ms = model.get_model_object("model_sampling")
        sig = comfy.samplers.calculate_sigmas(ms, args.scheduler, args.steps).to(dev)
        pm = mask.expand(1, 16, *shape[2:]).contiguous().to(dev)
        fake = types.SimpleNamespace(inner_model=types.SimpleNamespace(model_sampling=ms.to(dev)))
        extra = {"model": fake, "sigmas": sig}
        fns = {"ours": ours.model_options["denoise_mask_function"], "native": native.model_options["denoise_mask_function"]}
        micro = {}
        for name, fn in fns.items():
            for i in range(args.steps):  # warm-up
                fn(sig[i:i + 1], pm, extra)
            reps = []
            for _ in range(5):
                if cuda:
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(40):
                    for i in range(args.steps):
                        fn(sig[i:i + 1], pm, extra)
                if cuda:
                    torch.cuda.synchronize()
                reps.append((time.perf_counter() - t0) / (40 * args.steps))
            micro[name] = statistics.median(reps)

        # the once-per-call extras of the patch (validation, exact-keep paste), alone
        from ..masking.differential import paste_kept
        from ..wan.validation import summarize_conds, validate_sampling
        info = sampler_nodes.wan_model_info(model)
        reps = []
        for _ in range(20):
            t0 = time.perf_counter()
            validate_sampling(info, shape, tuple(mask.shape), summarize_conds({"positive": [cond[0][1]]}))
            prepared = comfy.sampler_helpers.prepare_mask(mask, shape, latent.device)
            paste_kept(out_ours, latent, prepared)
            if cuda:
                torch.cuda.synchronize()
            reps.append(time.perf_counter() - t0)
        per_call = statistics.median(reps)

    t_ours, t_nat = statistics.median(results["ours"]), statistics.median(results["native"])
    keep = (mask == 0).expand(shape)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"device {args.device}{' (' + torch.cuda.get_device_name() + ')' if cuda else ''}, "
          f"{torch.get_num_threads()} torch threads, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"latent {list(shape)}, {args.steps} steps euler/{args.scheduler}, tiny Wan T2V, repeats {args.repeats}")
    step_s = t_nat / args.steps
    print(f"sampling per step: ours {1e3 * t_ours / args.steps:.3f} ms, native {1e3 * step_s:.3f} ms (medians); "
          f"ratio ours/native: median of paired runs {statistics.median(pairs):.4f}, "
          f"min-based {min(results['ours']) / min(results['native']):.4f}")
    print(f"mask-function overhead per step vs native, as a share of a native step: "
          f"{100 * (micro['ours'] - micro['native']) / step_s:+.3f}%")
    print(f"once-per-call extras (validate + exact-keep paste): {1e3 * per_call:.3f} ms = "
          f"{100 * per_call / t_nat:.3f}% of a native {args.steps}-step sampling call")
    print(f"mask function per call: ours {1e6 * micro['ours']:.1f} us, native {1e6 * micro['native']:.1f} us, "
          f"ratio {micro['ours'] / micro['native']:.2f}")
    print(f"host syncs in the per-step mask function: ours {counts['ours'][0]} in {counts['ours'][1]} calls, "
          f"native {counts['native'][0]} in {counts['native'][1]} calls")
    print(f"exact keep: ours kept region equal to input: {torch.equal(out_ours[keep], latent[keep])}; "
          f"native max deviation {float((out_native - latent)[keep].abs().max()):.3g}")


if __name__ == "__main__":
    main()
