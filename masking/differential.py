"""Differential diffusion for latent noise masks: threshold schedules, strength and exact keep.

Convention: a noise mask holds 1 = regenerate, 0 = keep the input latent (ComfyUI ``noise_mask``).
Differential diffusion turns a *soft* mask m in [0, 1] into a per-step mask: a cell with value v
starts being regenerated once the step's threshold (1 at the first step, falling towards 0)
drops to v or below. Grey values thus get fewer denoising steps, which feathers edges.

Modes (``MODES``):

* ``off``: the mask is used as given (no per-step change).
* ``timestep``: ComfyUI's native ``DifferentialDiffusion`` formula, bit for bit:
  ``threshold = (ts(sigma) - ts(sigma_to)) / (ts(sigma_from) - ts(sigma_to))`` where ``ts`` is the
  model's ``timestep`` function, ``sigma_from = sigmas[0]`` and
  ``sigma_to = max(sigma_min, sigmas[-1])``; the per-step mask is ``m >= threshold``.
* ``step``: the WanVideoWrapper's step-index release, ``threshold = 1 - i/N`` for step i of N;
  between schedule points (multi-stage samplers) i is interpolated linearly in sigma.
* ``soft``: a continuous ramp instead of a hard threshold, ``min(1, m / threshold)`` with the
  ``timestep`` threshold: each cell grows smoothly from m at the first step to 1 when the
  threshold reaches m (where the hard mode would switch it on).

``strength`` s in [0, 1] blends: ``s * thresholded + (1 - s) * m``. s = 1 gives the thresholded
mask, s = 0 gives the plain soft mask m (no binarization at all; ComfyUI's node treats 0 as 1).

``exact_keep``: cells with m == 0 are never released (natively a schedule that ends at
``sigma_min``, e.g. karras, gives threshold 0 on the last step and releases everything), and
after sampling (also after a partial run with leftover noise) they are pasted back from the
input latent so they equal it bit for bit.

Device rules: everything per sampling call (threshold constants, the sigma table) is built
once on the mask's device and reused; the per-step path has no host/device synchronisation
(no ``.item()``, ``.cpu()``, ``.tolist()``, ``float(tensor)`` or tensor truth tests). When the mask
arrives on another device (model offload between steps), the constants follow it.
"""
from __future__ import annotations

from typing import Callable

import torch

MODES = ("off", "timestep", "step", "soft")

TimestepFn = Callable[[torch.Tensor], torch.Tensor]


def flow_timestep(multiplier: float = 1000.0) -> TimestepFn:
    """``timestep(sigma) = sigma * multiplier``: ComfyUI's ``ModelSamplingDiscreteFlow`` (all Wan models)."""
    return lambda sigma: sigma * multiplier


def check_settings(mode: str, strength: float) -> None:
    """Raise ValueError for an unknown mode or a strength outside [0, 1]."""
    if mode not in MODES:
        raise ValueError(f"differential: unknown mode {mode!r}. Use one of {', '.join(MODES)}.")
    if not (0.0 <= float(strength) <= 1.0):
        raise ValueError(f"strength: {strength} is outside [0.0, 1.0]. Fix: 1 = fully thresholded, "
                         "0 = the plain soft mask (no binarization).")


class SigmaSchedule:
    """Per-sampling-call constants for the thresholds, on one device.

    Args:
        sigmas: the call's sigma schedule [N+1], descending, last entry usually 0.
        timestep: the model's ``timestep(sigma)`` function (``flow_timestep()`` for Wan).
        sigma_min: the model's smallest sigma (tensor or float).
        device: where the per-step masks live.
    """

    def __init__(self, sigmas: torch.Tensor, timestep: TimestepFn, sigma_min, device: torch.device):
        self.source = sigmas  # identity key: ComfyUI passes the same tensor object every step
        self.device = device
        self.timestep = timestep
        s = sigmas.to(device)
        smin = torch.as_tensor(sigma_min).to(device)
        last = s[-1]
        # Native: sigma_to = sigma_min, replaced by sigmas[-1] when that is larger (a host-side if).
        # Same values, chosen on the device.
        self.ts_from = timestep(s[0])
        self.ts_to = torch.where(last > smin, timestep(last), timestep(smin))
        self.steps = s.shape[0] - 1
        # For the step mode: the schedule ascending (searchsorted needs it) and its indices.
        self.ascending = s.flip(0).contiguous()
        self.tiny = torch.finfo(s.dtype if s.is_floating_point() else torch.float32).tiny

    def timestep_threshold(self, sigma: torch.Tensor) -> torch.Tensor:
        """Native threshold for sigma values (any shape): 1 at ``sigmas[0]``, 0 at ``sigma_to``."""
        return (self.timestep(sigma) - self.ts_to) / (self.ts_from - self.ts_to)

    def step_position(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional step index of sigma values: i at ``sigmas[i]``, linear in sigma in between."""
        a = self.ascending
        sig = sigma.to(a.dtype).reshape(-1)
        # 1-D index tensors + index_select: indexing with a 0-dim tensor would read it on the host.
        hi = torch.searchsorted(a, sig).clamp(1, a.shape[0] - 1)
        lo = hi - 1
        s_lo, s_hi = a.index_select(0, lo), a.index_select(0, hi)
        frac = ((sig - s_lo) / (s_hi - s_lo).clamp_min(self.tiny)).clamp(0.0, 1.0)
        # ascending position lo + frac -> descending index steps - (lo + frac)
        return (self.steps - (lo.to(a.dtype) + frac)).reshape(sigma.shape)

    def step_threshold(self, sigma: torch.Tensor) -> torch.Tensor:
        """Wrapper-style threshold ``1 - i/N`` (i fractional between schedule points)."""
        return 1.0 - self.step_position(sigma) / max(self.steps, 1)

    def threshold(self, sigma: torch.Tensor, mode: str) -> torch.Tensor:
        if mode == "step":
            return self.step_threshold(sigma)
        return self.timestep_threshold(sigma)


def threshold_schedule(sigmas: torch.Tensor, mode: str, sigma_min, timestep: TimestepFn | None = None) -> torch.Tensor:
    """The threshold at every step of a schedule: [N] for ``sigmas[:-1]`` (the evaluated sigmas).

    For inspection and tests; the sampler computes the same numbers one step at a time.
    """
    check_settings(mode, 1.0)
    if mode == "off":
        return torch.zeros(sigmas.shape[0] - 1, dtype=sigmas.dtype, device=sigmas.device)
    sched = SigmaSchedule(sigmas, timestep or flow_timestep(), sigma_min, sigmas.device)
    return sched.threshold(sigmas[:-1], mode)


def apply_threshold(mask: torch.Tensor, threshold: torch.Tensor, mode: str, strength: float,
                    exact_keep: bool) -> torch.Tensor:
    """The per-step mask for a threshold (0-dim tensor on mask's device).

    Args:
        mask: noise mask, any shape (e.g. [B, C, T, h, w]), 1 = regenerate, 0 = keep.
        threshold: 0-dim tensor; cells with ``mask >= threshold`` regenerate (hard modes).
        mode: ``timestep``/``step`` (hard threshold) or ``soft`` (ramp ``min(1, m / threshold)``).
        strength: python float in [0, 1]; blend ``s * thresholded + (1 - s) * mask``.
        exact_keep: cells with mask 0 stay 0 even when the threshold reaches 0.

    Returns: a mask of the same shape and dtype.
    """
    if mode == "off" or strength <= 0.0:
        return mask
    if mode == "soft":
        shaped = (mask / threshold.clamp_min(torch.finfo(threshold.dtype).tiny)).clamp(max=1.0).to(mask.dtype)
    else:
        thr = threshold.clamp_min(torch.finfo(threshold.dtype).tiny) if exact_keep else threshold
        shaped = (mask >= thr).to(mask.dtype)
    if strength >= 1.0:
        return shaped
    return strength * shaped + (1 - strength) * mask


class DifferentialMask:
    """The per-step mask function: ``fn(sigma, mask, sigmas, timestep, sigma_min) -> mask``.

    Keeps one :class:`SigmaSchedule` per sampling call (keyed by the identity of ``sigmas`` and
    the mask's device), so a step costs a few scalar kernels plus one compare on the mask.

    Args:
        mode: one of ``MODES``.
        strength: 0..1 (see module docstring).
        exact_keep: never release cells with mask 0.
    """

    def __init__(self, mode: str = "timestep", strength: float = 1.0, exact_keep: bool = True):
        check_settings(mode, strength)
        self.mode = mode
        self.strength = float(strength)
        self.exact_keep = bool(exact_keep)
        self._schedule: SigmaSchedule | None = None

    def schedule(self, sigmas: torch.Tensor, timestep: TimestepFn, sigma_min, device: torch.device) -> SigmaSchedule:
        s = self._schedule
        # ``!=`` not ``is not``: ``model_sampling.timestep`` is a fresh bound method at every access.
        if s is None or s.source is not sigmas or s.device != device or s.timestep != timestep:
            s = self._schedule = SigmaSchedule(sigmas, timestep, sigma_min, device)
        return s

    def __call__(self, sigma: torch.Tensor, mask: torch.Tensor, sigmas: torch.Tensor, timestep: TimestepFn,
                 sigma_min) -> torch.Tensor:
        """Args: sigma [B] (the current sigma, shared by the batch as in ComfyUI: ``sigma[0]`` is
        used); mask [B, C, T, h, w] on the sampling device; sigmas [N+1] the call's schedule."""
        if self.mode == "off":
            return mask
        sched = self.schedule(sigmas, timestep, sigma_min, mask.device)
        thr = sched.threshold(sigma.reshape(-1)[0].to(mask.device), self.mode)
        return apply_threshold(mask, thr, self.mode, self.strength, self.exact_keep)

    def reset(self) -> None:
        """Forget the per-call constants (call at the end of a sampling call)."""
        self._schedule = None


def paste_kept(samples: torch.Tensor, latent: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Exact keep: where ``mask == 0``, take the input latent bit for bit.

    Also at the end of a partial run that returns leftover noise (KSamplerAdvanced
    ``end_at_step``): the mask-0 cells then come back clean, so a chained second sampler, whose
    "input latent" is this output, keeps the original values instead of the leftover noise
    (natively a high/low two-sampler chain ends with noise in its kept region).
    Skipped, on the device and without a host sync, when the input latent is all zeros: ComfyUI
    treats it as empty and never normalizes it, so there is nothing to keep.

    Args:
        samples: sampler output [B, C, T, h, w] (raw VAE latent space).
        latent: the input latent, same shape (any device/dtype; moved to samples').
        mask: the prepared noise mask, broadcastable to samples (1 = regenerate, 0 = keep).
    Returns: [B, C, T, h, w] on samples' device and dtype.
    """
    if latent.shape != samples.shape:
        raise ValueError(f"exact_keep: input latent {list(latent.shape)} and sampled latent {list(samples.shape)} "
                         "differ in shape; cannot paste the kept region back.")
    latent = to_device(latent, samples.device, samples.dtype)
    keep = (mask.to(samples.device) == 0) & latent.ne(0).any()
    return torch.where(keep, latent, samples)


def to_device(t: torch.Tensor, device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Move ``t`` to ``device``/``dtype`` once: pinned memory and ``non_blocking`` for CPU -> CUDA."""
    device = torch.device(device)
    dtype = dtype or t.dtype
    if t.device == device:
        return t.to(dtype)
    if device.type == "cuda" and t.device.type == "cpu":
        src = t.to(dtype).contiguous()
        try:
            src = src.pin_memory()
        except RuntimeError:  # no pinned memory available (e.g. no CUDA driver): plain copy
            return src.to(device)
        return src.to(device, non_blocking=True)
    return t.to(device=device, dtype=dtype)
