"""GPU check, sampler stage: WanMaskSamplerPatch against native DifferentialDiffusion in a real
``comfy.sample.sample`` call on the tiny Wan T2V checkpoint (random weights, real layout), reusing
``benchmarks/sampler_patch.py``: step time ratio (interleaved pairs) and host syncs per step, in the
patch's per-step mask function and in the whole sampling call, counted with
``torch.cuda.set_sync_debug_mode`` (on the CPU: the mask function's Python-level sync calls only)."""
from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
TINY_SCRIPT = ROOT / "wanmask_runner" / "fixtures" / "tiny_checkpoints.py"
T2V_FILE = Path("diffusion_models") / "wan_tiny_t2v.safetensors"


def start_tiny_models(models_dir: Path, comfy_path: str, log: Path):
    """Start generating the tiny checkpoints (random weights, real layout) in the background when
    ``models_dir`` lacks them, so that it overlaps the VAE suite; returns the process, or None."""
    if (models_dir / T2V_FILE).exists():
        return None
    print(f"  generating the tiny checkpoints in {models_dir} (in the background)", flush=True)
    return subprocess.Popen([sys.executable, str(TINY_SCRIPT), comfy_path, str(models_dir)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_for_tiny_models(job, models_dir: Path, seconds: float) -> None:
    if job is not None:
        if job.wait(timeout=max(1.0, seconds)) != 0:
            raise RuntimeError(f"generating the tiny checkpoints failed (exit {job.returncode}); see its log")
    if not (models_dir / T2V_FILE).exists():
        raise FileNotFoundError(f"no {T2V_FILE} in {models_dir}")


def per_step(counts: dict, steps: int) -> dict:
    """``{name: syncs per mask-function call}`` from ``count_host_syncs``' ``(syncs, calls)``."""
    return {name: n / (calls or steps) for name, (n, calls) in counts.items()}


def run_sampler_stage(ctx, report) -> str:
    """Run the plan's sampler comparison; returns the stage status."""
    from .. import sampler_patch as sp

    cuda = ctx.device.type == "cuda"
    s = ctx.plan.sampler
    wait_for_tiny_models(ctx.models_job, ctx.models_dir, ctx.time_left("sampler"))
    comfy = sp.import_comfy("cuda" if cuda else "cpu")
    model, ours, native = sp.load_models(comfy, ctx.models_dir)
    inputs = sp.sampling_inputs(s["frames"], s["height"], s["width"])
    shape, latent, mask = inputs["shape"], inputs["latent"], inputs["mask"]
    run = sp.sampling_runner(comfy, inputs, s["steps"], "simple", cuda)
    data = report.data["sampler"]
    data.update(latent=str(list(shape)), steps=s["steps"], model_dtype=str(model.model_dtype()))

    run(ours)  # warm-up: the model's load, kernels
    call, out_native = run(native)
    _, out_ours = run(ours)
    keep = (mask == 0).expand(shape)
    data["kept"] = (f"patch {'bit-exact' if torch.equal(out_ours[keep], latent[keep]) else 'changed'}; native "
                    f"max deviation {float((out_native - latent)[keep].abs().max()):.3g}")
    status = "done"
    affordable = int(max(0.0, ctx.time_left("sampler") - 4 * call) / (2 * call))  # 4 calls count syncs
    repeats = min(s["repeats"], affordable)
    if repeats < s["repeats"]:
        status = "partial"
        report.skip("sampler", f"{s['repeats'] - repeats} of {s['repeats']} timed pairs",
                    f"budget: {ctx.time_left('sampler'):.0f} s left, a call takes {call:.2f} s")
    if repeats:
        results, pairs = sp.paired_times(run, ours, native, repeats, warm_up=False)
        data.update(measured=True, repeats=repeats,
                    step_s={k: statistics.median(v) / s["steps"] for k, v in results.items()},
                    ratio_paired_median=statistics.median(pairs),
                    ratio_min=min(results["ours"]) / min(results["native"]))
        report.save()

    models = {"ours": ours, "native": native}
    counts = sp.count_host_syncs(run, models, cuda)
    if cuda:
        data["syncs_per_step"] = {"mask_function": per_step(counts, s["steps"])}
        bare = sp.sampling_runner(comfy, inputs, s["steps"], "simple", cuda=False)  # no synchronize() around
        whole = {}
        for name, m in models.items():
            with sp.cuda_sync_warnings() as found:
                bare(m)
            whole[name] = len(found) / s["steps"]
        data["syncs_per_step"]["whole_call"] = whole
        data["syncs_note"] = ("whole call / steps includes the once-per-call syncs (set-up, the result's copy to "
                              "the host), the same for both")
    else:
        data["cpu_spy_syncs_per_step"] = per_step(counts, s["steps"])
        report.skip("sampler", "host syncs per step (set_sync_debug_mode)",
                    "CUDA only; the CPU spy on Tensor.item/cpu/tolist/... in the mask function is given instead")
        report.skip("sampler", "GPU step time", "CUDA only: the CPU times of the tiny model are not the GPU figure")
    data["measured"] = bool(repeats)
    data["seconds_per_call"] = call
    comfy.model_management.unload_all_models()
    comfy.model_management.soft_empty_cache()
    return status
