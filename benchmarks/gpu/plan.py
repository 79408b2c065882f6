"""What the GPU check runs (the plan) and how long each stage should take on a device (the estimate).

Three plans: ``full`` (the default: the VAE suite at 81x480x832 and 81x720x1280, bf16 and fp32),
``quick`` (81x480x832 bf16 only) and ``tiny`` (the CPU dry run: every stage at a tiny size, a VAE
of width 8 in the real layout).

The estimate turns the CPU figures of BENCHMARKS.md into work (FLOPs, bytes) and divides it by the
device's nominal throughput times a stated efficiency. The constants below say where each figure
came from. The efficiencies are assumptions; the VAE stage replaces its assumption with the rate
it measures on its first decode (see :class:`Calibration`), and every stage stops at its budget,
so a wrong estimate costs figures at the end of the run, never the run.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...vae.tiling import plan_tiles


@dataclass(frozen=True)
class DeviceProfile:
    """Nominal throughputs of a device (dense, no sparsity)."""

    name: str
    bf16_tflops: float
    tf32_tflops: float  # cuDNN runs fp32 convolutions on TF32 tensor cores by default (allow_tf32)
    hbm_tbs: float
    link_gbs: float  # host <-> device, effective, one direction (pinned memory)
    source: str


PROFILES = {
    "H100": DeviceProfile("NVIDIA H100 SXM5 80 GB", 989.0, 494.7, 3.35, 55.0,
                          "NVIDIA H100 datasheet: 989 TFLOPS bf16 and 495 TFLOPS TF32 dense tensor, 67 TFLOPS "
                          "fp32 non-tensor, 3.35 TB/s HBM3; PCIe Gen5 x16: 64 GB/s raw, ~55 GB/s effective"),
    "H200": DeviceProfile("NVIDIA H200 141 GB", 989.0, 494.7, 4.8, 55.0,
                          "NVIDIA H200 datasheet: H100's compute, 4.8 TB/s HBM3e; PCIe Gen5 x16 ~55 GB/s effective"),
}

# ---- CPU figures (the shared 2-core x86_64 VM of BENCHMARKS.md) -------------------------------------
CPU_DECODE_SECONDS = 134.14
"""Native Wan 2.1 decode, 9x480x832 fp32, ComfyUI 0.33.0, quiet VM (BENCHMARKS.md, issue 15, 2026-12-01)."""
CPU_DECODE_TFLOP = 27.25
"""FLOPs of that decode (torch.utils.flop_counter.FlopCounterMode on the meta twin, 3 latent frames)."""
DECODE_FLOP_PER_PIXEL = 8.5e6
"""Decode FLOPs per output pixel of the real-width (96) Wan 2.1 VAE: 13.5 TFLOP per latent frame
(4 pixel frames) at 480x832, 31.3 at 720x1280 (FlopCounterMode, meta twin). Scales with width**2."""
OFFLOAD_BYTES_PER_PIXEL = 33745.0
"""Bytes the fp32 cache offload moves each way per latent frame, per output pixel (a counting cache on
the meta twin: 12.55 GiB per latent frame at 480x832, 28.96 GiB at 720x1280; half in bf16). Frame
streaming visits the full-resolution slots once per pixel frame, so the traffic is ~4x the cache."""
VAE_EFFICIENCY = 0.05
"""Assumed fraction of the dense tensor peak the Wan VAE decode reaches on a GPU: cuDNN conv3d at
96-384 channels with 3x3x3 kernels, and memory-bound RMS norms, SiLU and cache concatenations at full
resolution. (The CPU reached CPU_DECODE_TFLOP / CPU_DECODE_SECONDS = 0.20 TFLOPS, about 90 % of its
2 cores' AVX2 FMA peak; GPUs reach a far smaller share on this layer mix.)"""
TRACE_SECONDS = 1.5
"""One working-set trace (vae.memory on the meta twin), measured on the 2-core VM."""
HOST_ELEMENTS_PER_S = 0.5e9
"""Host-side comparison of two float32 videos (abs, max, mean; the native output's copy to the host)."""
SAMPLER_STEP_OVERHEAD_S = 7.35e-3
"""A sampling step of the tiny Wan T2V at [1,16,5,16,16], where the model's own compute is
negligible: Python, ComfyUI's sampler and the kernel launches (BENCHMARKS.md, issue 11, 0.33.0)."""
ATTENTION_EFFICIENCY = 0.3
"""Assumed share of the bf16 peak reached by fused attention at 32k tokens, head dim 128."""
MASK_EFFICIENCY = 0.5
"""Assumed share of HBM bandwidth reached by the mask reductions (CPU: amax read 10.3 GB/s, 28.9 ms
at 81x720x1280, BENCHMARKS.md issue 15)."""
STARTUP_S = {"gpu": 25.0, "cpu": 12.0}
"""Imports (ComfyUI, CUDA context), random real-width VAE weights, device info and link bandwidth."""
TESTS_S = {"gpu": 45.0, "cpu": 25.0}
"""pytest start-up and collection of the CUDA-marked files (measured on the CPU: about 20 s on the
loaded 2-core VM), plus the CUDA tests themselves (small models, seconds)."""
TINY_S = {"vae": 15.0, "sampler": 15.0, "mask": 2.0}
"""The tiny plan's stages on the 2-core VM (measured dry runs)."""

CASES = {
    "native": "native decode",
    "ours": "ours, untiled",
    "offload": "ours, cache offload",
    "tiled": "ours, tiled",
    "tiled_offload": "ours, tiled + offload",
    "native_tiled": "native tiled (VAEDecodeTiled)",
}
"""Decode cases of the VAE suite, in the order they run (native first: every ratio is against it)."""


@dataclass(frozen=True)
class VaeRun:
    """One size and precision of the VAE suite."""

    frames: int
    height: int
    width: int
    dtype: str  # "bf16" or "fp32"
    cases: tuple[str, ...]
    tile: int = 512
    overlap: int = 64

    @property
    def label(self) -> str:
        return f"{self.frames}x{self.height}x{self.width}"

    @property
    def latent_shape(self) -> tuple[int, int, int, int, int]:
        return (1, 16, 1 + (self.frames - 1) // 4, self.height // 8, self.width // 8)

    def tile_area_factor(self) -> float:
        """Latent cells decoded by all tiles together / cells of the frame (overlaps count twice)."""
        _, _, _, h, w = self.latent_shape
        tiles = plan_tiles(h, w, self.tile // 8, self.overlap // 8)
        return sum((t.y1 - t.y0) * (t.x1 - t.x0) for t in tiles) / (h * w)


@dataclass(frozen=True)
class Plan:
    name: str
    vae_width: int  # 96: the real Wan 2.1 VAE
    vae: tuple[VaeRun, ...]
    sampler: dict  # latent frames, height, width; steps, repeats
    mask: dict  # pixel frames, height, width; repeats, inner calls per timing
    device: str  # "gpu" or "cpu"


ALL_CASES = tuple(CASES)


def make_plan(name: str) -> Plan:
    """``full``, ``quick`` or ``tiny`` (see the module docstring)."""
    if name == "tiny":
        runs = (VaeRun(5, 16, 24, "fp32", ALL_CASES, tile=16, overlap=8),
                VaeRun(5, 16, 24, "bf16", ("native", "ours"), tile=16, overlap=8))  # bf16 is slow on CPUs
        return Plan("tiny", 8, runs, {"frames": 2, "height": 8, "width": 8, "steps": 2, "repeats": 1},
                    {"frames": 9, "height": 64, "width": 64, "repeats": 3, "inner": 1}, "cpu")
    p480, p720 = (81, 480, 832), (81, 720, 1280)
    runs = [VaeRun(*p480, "bf16", ALL_CASES)]
    if name == "full":
        runs += [VaeRun(*p720, "bf16", ALL_CASES),
                 VaeRun(*p480, "fp32", ("native", "ours", "offload", "tiled", "tiled_offload")),
                 VaeRun(*p720, "fp32", ("native", "ours", "offload"))]
    elif name != "quick":
        raise ValueError(f"unknown plan {name!r}: full, quick or tiny")
    return Plan(name, 96, tuple(runs), {"frames": 21, "height": 60, "width": 104, "steps": 20, "repeats": 5},
                {"frames": 81, "height": 720, "width": 1280, "repeats": 15, "inner": 10}, "gpu")


# ---- estimates -----------------------------------------------------------------------------------------
def decode_seconds(run: VaeRun, profile: DeviceProfile, vae_width: int = 96) -> float:
    """One untiled decode of ``run`` on ``profile``: its FLOPs over the assumed VAE rate."""
    flops = run.frames * run.height * run.width * DECODE_FLOP_PER_PIXEL * (vae_width / 96) ** 2
    peak = profile.bf16_tflops if run.dtype == "bf16" else profile.tf32_tflops
    return flops / (peak * 1e12 * VAE_EFFICIENCY)


def offload_bytes(run: VaeRun, vae_width: int = 96) -> float:
    """Bytes the cache offload moves each way over the whole clip (untiled)."""
    per_frame = OFFLOAD_BYTES_PER_PIXEL * run.height * run.width * (vae_width / 96)
    return per_frame * (run.latent_shape[2] - 1) * (0.5 if run.dtype == "bf16" else 1.0)


def case_seconds(run: VaeRun, case: str, profile: DeviceProfile, vae_width: int = 96) -> float:
    """Estimated seconds of one decode case, its trace included. Offload adds its transfers in full
    (no overlap with compute assumed: an upper bound); tiles add their overlap."""
    c = decode_seconds(run, profile, vae_width)
    transfer = offload_bytes(run, vae_width) / (profile.link_gbs * 1e9)
    k = run.tile_area_factor()
    seconds = {"native": c, "ours": c, "offload": c + transfer, "tiled": k * c,
               "tiled_offload": k * (c + transfer), "native_tiled": 1.1 * k * c}[case]
    compare = 2 * 3 * run.frames * run.height * run.width / HOST_ELEMENTS_PER_S
    return seconds + compare + (0.0 if case.startswith("native") else TRACE_SECONDS)


def sampler_seconds(plan: Plan, profile: DeviceProfile) -> float:
    """Model load, then the sampling calls: 3 untimed (warm-up, both outputs), 2 x repeats timed,
    4 counting syncs. (The tiny checkpoints, when missing, are made in the background meanwhile.)"""
    s = plan.sampler
    tokens = s["frames"] * (s["height"] // 2) * (s["width"] // 2)
    attention = 2 * 4 * tokens ** 2 * 128  # 2 layers, dim 128: QK^T and PV
    step = SAMPLER_STEP_OVERHEAD_S + attention / (profile.bf16_tflops * 1e12 * ATTENTION_EFFICIENCY)
    calls = 3 + 2 * s["repeats"] + 4
    return 10.0 + calls * s["steps"] * step


def mask_seconds(plan: Plan, profile: DeviceProfile) -> float:
    """Six candidates, each read ~3 times per call, (repeats + 1) x inner calls, plus making the mask."""
    m = plan.mask
    nbytes = m["frames"] * m["height"] * m["width"] * 4
    return 2.0 + 6 * (m["repeats"] + 1) * m["inner"] * 3 * nbytes / (profile.hbm_tbs * 1e12 * MASK_EFFICIENCY)


def estimate(plan: Plan, profile: DeviceProfile) -> dict:
    """Seconds per stage (``startup``, ``vae``, ``sampler``, ``mask``, ``tests``), ``total``, and per
    VAE case (``cases``: ``{(label, dtype, case): seconds}``)."""
    where = plan.device
    cases = {}
    for run in plan.vae:
        for case in run.cases:
            cases[(run.label, run.dtype, case)] = (
                TINY_S["vae"] / sum(len(r.cases) for r in plan.vae) if plan.name == "tiny"
                else case_seconds(run, case, profile, plan.vae_width))
    if plan.name == "tiny":
        stages = {"startup": STARTUP_S[where], "vae": TINY_S["vae"], "sampler": TINY_S["sampler"],
                  "mask": TINY_S["mask"], "tests": TESTS_S[where]}
    else:
        stages = {"startup": STARTUP_S[where], "vae": sum(cases.values()) + 2.0 * len(plan.vae),
                  "sampler": sampler_seconds(plan, profile), "mask": mask_seconds(plan, profile),
                  "tests": TESTS_S[where]}
    return {"plan": plan.name, "stages": stages, "total": sum(stages.values()), "cases": cases,
            "profile": profile.name}


def profile_for(device_name: str) -> tuple[str, DeviceProfile]:
    """The profile whose key is in ``device_name`` (H200 before H100), else H100's numbers."""
    for key in ("H200", "H100"):
        if key in device_name.upper():
            return key, PROFILES[key]
    return "H100", PROFILES["H100"]


def format_estimate(plan: Plan, est: dict) -> str:
    """The estimate as printed before the run: one line per stage, then the total."""
    lines = [f"Estimate for the {plan.name} plan on {est['profile']} (from CPU figures and nominal "
             "throughput; see benchmarks/gpu/plan.py):"]
    for name, seconds in est["stages"].items():
        lines.append(f"  {name:<8} {seconds:6.0f} s")
    lines.append(f"  {'total':<8} {est['total']:6.0f} s = {est['total'] / 60:.1f} min")
    return "\n".join(lines)


class Calibration:
    """Measured / estimated decode time, per precision, from the native decodes measured so far;
    scales the estimates of the cases still to run."""

    def __init__(self):
        self.factor: dict[str, float] = {}

    def update(self, dtype: str, measured: float, estimated: float) -> None:
        if estimated > 0 and measured > 0:
            self.factor[dtype] = measured / estimated

    def predict(self, dtype: str, estimated: float) -> float:
        f = self.factor.get(dtype) or (max(self.factor.values()) if self.factor else 1.0)
        return estimated * f
