"""Differential diffusion core: threshold schedules, native equality, strength, exact keep, device rules."""
import numpy
import pytest
import scipy.stats
import torch

from comfyui_wanmasking.masking.differential import (
    MODES, DifferentialMask, SigmaSchedule, apply_threshold, check_settings, flow_timestep, paste_kept,
    threshold_schedule, to_device,
)

# ---- Wan sigma schedules, re-derived in pure torch from ComfyUI's formulas ------------------------
# ModelSamplingDiscreteFlow: sigmas[i] = shift*t/(1+(shift-1)*t), t = (i+1)/1000 (model_sampling.py);
# simple / beta schedulers (samplers.py) and karras (k_diffusion/sampling.py), each with a final 0.


def flow_table(shift):
    t = torch.arange(1, 1001, 1) / 1000
    return shift * t / (1 + (shift - 1) * t)


def simple_sigmas(tab, steps):
    ss = len(tab) / steps
    return torch.FloatTensor([float(tab[-(1 + int(x * ss))]) for x in range(steps)] + [0.0])


def karras_sigmas(tab, n, rho=7.0):
    lo, hi = float(tab[0]) ** (1 / rho), float(tab[-1]) ** (1 / rho)
    s = (hi + torch.linspace(0, 1, n) * (lo - hi)) ** rho
    return torch.cat([s, s.new_zeros([1])])


def beta_sigmas(tab, steps, a=0.6, b=0.6):
    ts = numpy.rint(scipy.stats.beta.ppf(1 - numpy.linspace(0, 1, steps, endpoint=False), a, b) * (len(tab) - 1))
    sigs, last = [], -1
    for t in ts:
        if t != last:
            sigs.append(float(tab[int(t)]))
        last = t
    return torch.FloatTensor(sigs + [0.0])


SCHEDULERS = {"simple": simple_sigmas, "karras": karras_sigmas, "beta": beta_sigmas}


def native_differential(sigma, mask, sigmas, sigma_min, strength, multiplier=1000.0):
    """ComfyUI 0.3.64 DifferentialDiffusion.forward, re-stated from the reference spec §2 (a test oracle)."""
    sigma_to = sigma_min
    if sigmas[-1] > sigma_to:
        sigma_to = sigmas[-1]
    ts_from, ts_to, ts = sigmas[0] * multiplier, sigma_to * multiplier, sigma[0] * multiplier
    threshold = (ts - ts_to) / (ts_from - ts_to)
    binary = (mask >= threshold).to(mask.dtype)
    if strength and strength < 1:
        return strength * binary + (1 - strength) * mask
    return binary


def soft_mask(shape=(2, 16, 5, 8, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(shape, generator=g)
    m[..., :2] = 0.0  # a kept band
    m[..., -1] = 1.0  # a fully regenerated band
    return m


def run_steps(fn, sigmas, mask, tab):
    """The masks fn returns at every evaluated sigma (sigmas[:-1]), as KSamplerX0Inpaint calls it."""
    ts = flow_timestep()
    return [fn(sigmas[i:i + 1].expand(mask.shape[0]), mask, sigmas, ts, tab[0]) for i in range(len(sigmas) - 1)]


# ---- threshold schedules, pinned ------------------------------------------------------------------

PINNED = {  # 10 steps; threshold at each evaluated sigma, timestep mode
    (5, "simple"): [1.0, 0.9782, 0.9521, 0.9207, 0.8818, 0.8325, 0.7681, 0.6802, 0.5533, 0.3539],
    (5, "karras"): [1.0, 0.6515, 0.4122, 0.2519, 0.1476, 0.0819, 0.0421, 0.0191, 0.0065, 0.0],
    (5, "beta"): [1.0, 0.9917, 0.9726, 0.9421, 0.8976, 0.8331, 0.7389, 0.6037, 0.4115, 0.172],
    (8, "simple"): [1.0, 0.9862, 0.9695, 0.9487, 0.9225, 0.888, 0.8408, 0.7724, 0.664, 0.4663],
    (8, "karras"): [1.0, 0.6683, 0.4349, 0.2743, 0.1664, 0.096, 0.0515, 0.0244, 0.0087, 0.0],
    (8, "beta"): [1.0, 0.9948, 0.9826, 0.9629, 0.9332, 0.8884, 0.8187, 0.7085, 0.5273, 0.2489],
}


@pytest.mark.parametrize("shift,scheduler", list(PINNED))
def test_timestep_threshold_schedule_is_pinned_for_wan_shifts(shift, scheduler):
    tab = flow_table(shift)
    sigmas = SCHEDULERS[scheduler](tab, 10)
    got = threshold_schedule(sigmas, "timestep", tab[0])
    assert torch.allclose(got, torch.tensor(PINNED[(shift, scheduler)]), atol=1e-4)
    # and it is the normalized timestep, (s - s_to) / (s_0 - s_to), computed independently in float64
    s = sigmas.double()
    s_to = max(float(tab[0]), float(s[-1]))
    ref = (s[:-1] - s_to) / (s[0] - s_to)
    assert torch.allclose(got.double(), ref, atol=1e-6)


@pytest.mark.parametrize("shift", [5, 8])
@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_step_threshold_schedule_is_one_minus_i_over_n(shift, scheduler):
    tab = flow_table(shift)
    sigmas = SCHEDULERS[scheduler](tab, 10)
    n = len(sigmas) - 1
    got = threshold_schedule(sigmas, "step", tab[0])
    assert torch.allclose(got, 1 - torch.arange(n) / n, atol=1e-6)


def test_step_and_timestep_release_grey_at_very_different_steps_at_shift_8():
    """Why the modes exist: mask 0.5 is released at step 5 by index but step 9 by timestep (simple, shift 8)."""
    tab = flow_table(8)
    sigmas = simple_sigmas(tab, 10)
    first = {m: int((threshold_schedule(sigmas, m, tab[0]) <= 0.5).nonzero()[0]) for m in ("step", "timestep")}
    assert first == {"step": 5, "timestep": 9}


def test_simple_shift_8_20_steps_never_releases_values_below_029():
    """Reference spec §2: simple at shift 8 ends at sigma 0.296, so the last threshold is about 0.29."""
    tab = flow_table(8)
    last = threshold_schedule(simple_sigmas(tab, 20), "timestep", tab[0])[-1]
    assert 0.28 < float(last) < 0.30


def test_step_threshold_interpolates_between_schedule_points():
    tab = flow_table(8)
    sigmas = simple_sigmas(tab, 4)
    sched = SigmaSchedule(sigmas, flow_timestep(), tab[0], torch.device("cpu"))
    mid = (sigmas[1] + sigmas[2]) / 2
    assert torch.allclose(sched.step_threshold(mid), torch.tensor(1 - 1.5 / 4), atol=1e-6)
    assert torch.allclose(sched.step_threshold(sigmas[0] + 1), torch.tensor(1.0))  # above the schedule: clamped


# ---- timestep mode == native ----------------------------------------------------------------------

@pytest.mark.parametrize("shift", [5, 8])
@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
@pytest.mark.parametrize("strength", [1.0, 0.5, 0.25])
def test_timestep_mode_equals_native_bit_for_bit(shift, scheduler, strength):
    tab = flow_table(shift)
    sigmas = SCHEDULERS[scheduler](tab, 8)
    mask = soft_mask()
    ours = run_steps(DifferentialMask("timestep", strength, exact_keep=False), sigmas, mask, tab)
    for i, got in enumerate(ours):
        ref = native_differential(sigmas[i:i + 1].expand(2), mask, sigmas, tab[0], strength)
        assert torch.equal(got, ref), f"step {i}"


@pytest.mark.parametrize("scheduler", ["simple", "beta"])
def test_exact_keep_changes_nothing_when_the_threshold_never_reaches_zero(scheduler):
    tab = flow_table(8)
    sigmas = SCHEDULERS[scheduler](tab, 8)
    mask = soft_mask()
    for i, got in enumerate(run_steps(DifferentialMask("timestep", 1.0, exact_keep=True), sigmas, mask, tab)):
        assert torch.equal(got, native_differential(sigmas[i:i + 1], mask, sigmas, tab[0], 1.0))


def test_partial_schedule_uses_its_own_end_like_native():
    """KSamplerAdvanced end_at_step: sigmas[-1] > sigma_min becomes sigma_to, as natively."""
    tab = flow_table(8)
    sigmas = simple_sigmas(tab, 10)[:6]
    mask = soft_mask()
    for i, got in enumerate(run_steps(DifferentialMask("timestep", 1.0, exact_keep=False), sigmas, mask, tab)):
        assert torch.equal(got, native_differential(sigmas[i:i + 1], mask, sigmas, tab[0], 1.0))


# ---- strength -------------------------------------------------------------------------------------

def test_strength_zero_is_the_plain_soft_mask_not_binary():
    tab = flow_table(8)
    sigmas = karras_sigmas(tab, 6)
    mask = soft_mask()
    for got in run_steps(DifferentialMask("timestep", 0.0), sigmas, mask, tab):
        assert torch.equal(got, mask)
    native = native_differential(sigmas[2:3], mask, sigmas, tab[0], 0.0)
    assert set(native.unique().tolist()) == {0.0, 1.0}  # the native bug this fixes: 0 acts like 1


def test_strength_blends_linearly_between_binary_and_soft():
    mask = soft_mask()
    thr = torch.tensor(0.6)
    hard = apply_threshold(mask, thr, "timestep", 1.0, True)
    half = apply_threshold(mask, thr, "timestep", 0.5, True)
    assert torch.allclose(half, 0.5 * hard + 0.5 * mask)
    assert set(hard.unique().tolist()) == {0.0, 1.0}


# ---- exact keep -----------------------------------------------------------------------------------

@pytest.mark.parametrize("shift", [5, 8])
def test_exact_keep_never_releases_mask_zero_under_karras(shift):
    tab = flow_table(shift)
    sigmas = karras_sigmas(tab, 8)
    mask = soft_mask()
    keep = mask == 0
    native_last = native_differential(sigmas[-2:-1], mask, sigmas, tab[0], 1.0)
    # Native: karras' last sigma is sigma_min up to float rounding, so the last threshold is 0 at shift 8
    # (the kept band is released) and 4.8e-10 at shift 5 (kept by float luck).
    assert bool((native_last[keep] == 1).all()) == (shift == 8)
    for mode in ("timestep", "step", "soft"):
        for strength in (1.0, 0.5):
            steps = run_steps(DifferentialMask(mode, strength, exact_keep=True), sigmas, mask, tab)
            for got in steps:
                assert bool((got[keep] == 0).all()), (mode, strength)
            assert bool((steps[-1][mask == 1] == 1).all())


def test_paste_kept_restores_the_input_latent_bit_for_bit():
    g = torch.Generator().manual_seed(1)
    latent = torch.randn(2, 16, 3, 4, 4, generator=g)
    sampled = latent + 1e-3 * torch.randn(latent.shape, generator=g)
    mask = torch.zeros(2, 16, 3, 4, 4)
    mask[0, :, 1:] = 1
    mask[1, :, :, :2] = 0.3  # per-sample masks
    out = paste_kept(sampled, latent, mask)
    assert torch.equal(out[mask == 0], latent[mask == 0])
    assert torch.equal(out[mask > 0], sampled[mask > 0])


def test_paste_kept_skips_empty_latents_and_refuses_other_shapes():
    latent = torch.randn(1, 16, 2, 4, 4)
    sampled = torch.randn(1, 16, 2, 4, 4)
    mask = torch.zeros(1, 16, 2, 4, 4)
    assert torch.equal(paste_kept(sampled, torch.zeros_like(latent), mask), sampled)
    with pytest.raises(ValueError, match="differ in shape"):
        paste_kept(sampled, latent[:, :, :1], mask)


# ---- soft mode ------------------------------------------------------------------------------------

def test_soft_mode_ramps_continuously_and_matches_binary_where_released():
    mask = soft_mask()
    prev = None
    for t in torch.linspace(1, 0, 11):
        s = apply_threshold(mask, t, "soft", 1.0, True)
        hard = apply_threshold(mask, t, "timestep", 1.0, True)
        assert bool((s >= mask).all()) and bool((s <= 1).all())
        assert bool((s[hard == 1] == 1).all())
        assert bool((s[mask == 0] == 0).all())
        if prev is not None:
            assert bool((s >= prev).all()), "a cell must never be re-masked later"
        prev = s
    grey = torch.full((1,), 0.3)
    assert torch.allclose(apply_threshold(grey, torch.tensor(0.6), "soft", 1.0, True), torch.tensor([0.5]))


# ---- batch, devices, host syncs -------------------------------------------------------------------

def test_per_sample_masks_are_thresholded_independently():
    tab = flow_table(5)
    sigmas = simple_sigmas(tab, 6)
    mask = torch.stack([torch.full((16, 2, 4, 4), 0.9), torch.full((16, 2, 4, 4), 0.1)])
    steps = run_steps(DifferentialMask("step", 1.0), sigmas, mask, tab)  # step 1: threshold 5/6
    assert bool((steps[1][0] == 1).all()) and bool((steps[1][1] == 0).all())


def test_schedule_is_built_once_per_call_even_with_fresh_bound_methods():
    """ComfyUI hands ``model_sampling.timestep``: a new bound-method object at every step."""

    class Sampling:
        def timestep(self, sigma):
            return sigma * 1000.0

    ms, tab = Sampling(), flow_table(8)
    sigmas = simple_sigmas(tab, 4)
    fn = DifferentialMask("timestep", 1.0)
    fn(sigmas[0:1], soft_mask(), sigmas, ms.timestep, tab[0])
    first = fn._schedule
    for i in range(1, 4):
        fn(sigmas[i:i + 1], soft_mask(), sigmas, ms.timestep, tab[0])
        assert fn._schedule is first
    fn(sigmas[0:1], soft_mask(), sigmas.clone(), ms.timestep, tab[0])  # a new sampling call
    assert fn._schedule is not first


def test_constants_follow_the_mask_to_another_device():
    """Model offload between steps: the next mask may arrive elsewhere; the schedule is rebuilt there."""
    tab = flow_table(8)
    sigmas = simple_sigmas(tab, 4)
    fn = DifferentialMask("step", 1.0)
    cpu = fn(sigmas[1:2], soft_mask(), sigmas, flow_timestep(), tab[0])
    assert cpu.device.type == "cpu"
    meta = fn(sigmas[1:2], soft_mask().to("meta"), sigmas, flow_timestep(), tab[0])
    assert meta.device.type == "meta" and fn._schedule.device.type == "meta"
    fn.reset()
    assert fn._schedule is None


SYNC_METHODS = ("item", "cpu", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__")


@pytest.mark.parametrize("mode", ["timestep", "step", "soft"])
def test_per_step_path_makes_no_host_syncs(monkeypatch, mode):
    tab = flow_table(8)
    sigmas = karras_sigmas(tab, 6)
    mask = soft_mask()
    fn = DifferentialMask(mode, 0.7, exact_keep=True)
    calls = []
    for name in SYNC_METHODS:
        orig = getattr(torch.Tensor, name)

        def spy(self, *a, _orig=orig, _name=name, **k):
            calls.append(_name)
            return _orig(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, spy)
    run_steps(fn, sigmas, mask, tab)
    monkeypatch.undo()
    assert calls == []


@pytest.mark.parametrize("mode", ["timestep", "step", "soft"])
def test_per_step_path_runs_on_meta_tensors(mode):
    """Meta tensors have no data, so any hidden host read (e.g. indexing with a 0-dim tensor, which
    calls _local_scalar_dense in C++ where a Python spy cannot see it) raises. A CPU stand-in for
    torch.cuda.set_sync_debug_mode."""
    tab = flow_table(8)
    sigmas = karras_sigmas(tab, 6).to("meta")
    mask = soft_mask().to("meta")
    fn = DifferentialMask(mode, 0.7, exact_keep=True)
    for i in range(len(sigmas) - 1):
        out = fn(sigmas[i:i + 1].expand(2), mask, sigmas, flow_timestep(), tab[0].to("meta"))
        assert out.shape == mask.shape and out.device.type == "meta"
    kept = paste_kept(mask, mask, mask)
    assert kept.device.type == "meta"


def test_to_device_converts_dtype_once():
    t = torch.ones(2, 2, dtype=torch.float16)
    out = to_device(t, "cpu", torch.float32)
    assert out.dtype == torch.float32 and out.device.type == "cpu"


def test_bad_settings_raise():
    assert MODES == ("off", "timestep", "step", "soft")
    with pytest.raises(ValueError, match="unknown mode"):
        check_settings("linear", 1.0)
    with pytest.raises(ValueError, match="outside"):
        DifferentialMask("timestep", 1.5)
