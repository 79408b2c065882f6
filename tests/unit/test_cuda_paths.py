"""The CUDA paths of the core, on a real CUDA device: pinned output buffers, the causal-cache offload
on a side stream with prefetch, bf16 decode, the differential mask's per-step path without host syncs
(``torch.cuda.set_sync_debug_mode("error")``), the mask conversion on the device. Without a CUDA
device every test here skips with the reason; ``python benchmarks/run.py gpu_check`` runs them
(``pytest -m cuda``) on a GPU machine."""
import pytest
import torch

from comfyui_wanmasking.masking.differential import DifferentialMask, flow_timestep, paste_kept
from comfyui_wanmasking.masking.geometry import WAN21
from comfyui_wanmasking.masking.latent_mask import pixel_mask_to_latent
from comfyui_wanmasking.vae.cache import FeatureCache, tensors
from comfyui_wanmasking.vae.wan21 import WanVAE21
from comfyui_wanmasking.vae.wan22 import WanVAE22

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA device (run on a GPU machine by `python benchmarks/run.py gpu_check`)")]

CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def no_tf32(monkeypatch):
    """fp32 means fp32 here: cuDNN's default TF32 convolutions would round to 10-bit mantissas."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


def small(kind="21", seed=0):
    torch.manual_seed(seed)
    return (WanVAE21(dim=8) if kind == "21" else WanVAE22(dim=8, dec_dim=8)).eval()


def latent(c, t, h, w, seed=2):
    return torch.randn(1, c, t, h, w, generator=torch.Generator().manual_seed(seed))


def test_decode_on_cuda_streams_into_pinned_host_memory_and_matches_the_cpu():
    m = small()
    z = latent(16, 3, 4, 6)
    ref = m.decode(z)
    out = m.to(CUDA).decode(z.to(CUDA))
    assert out.device.type == "cpu" and out.is_pinned() and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)


def test_encode_on_cuda_writes_pinned_latents_that_match_the_cpu():
    m = small()
    x = torch.rand(1, 3, 9, 32, 48, generator=torch.Generator().manual_seed(1)) * 2 - 1
    ref = m.encode(x)
    out = m.to(CUDA).encode(x.to(CUDA))
    assert out.is_pinned()
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)


@pytest.mark.parametrize("kind", ["21", "22"])
def test_cache_offload_on_cuda_gives_the_same_pixels_as_the_device_cache(kind):
    m = small(kind).to(CUDA)
    z = latent(m.z_dim, 4, 3, 4).to(CUDA)
    on_device = m.decode(z)
    offloaded = m.decode(z, offload=True)
    tiled = m.decode(z, offload=True, tile=2 * m.geometry.spatial_stride, overlap=m.geometry.spatial_stride)
    assert (offloaded - on_device).abs().max() <= 1e-6  # exact copies through pinned memory and back
    assert tiled.shape == on_device.shape and torch.isfinite(tiled).all()


def test_offloaded_cache_lives_in_pinned_host_memory_between_chunks():
    m = small().to(CUDA)
    z = latent(16, 4, 4, 4).to(CUDA)
    kept, offloaded = FeatureCache(), FeatureCache(offload=True, prefetch=2)
    for cache in (kept, offloaded):
        for t in range(4):
            m.decode_chunk(z[:, :, t:t + 1], cache, t == 0, lambda y: None)
    torch.cuda.synchronize()
    held = tensors(offloaded.slots)
    assert held and all(t.device.type == "cpu" and t.is_pinned() for t in held)
    assert kept.device_bytes() > 0
    assert offloaded.device_bytes() < kept.device_bytes() / 2  # only the prefetched slots are on the device
    offloaded.clear()


def test_cache_offload_lowers_the_peak_vram_of_a_decode():
    m = small().to(CUDA)
    z = latent(16, 5, 16, 16).to(CUDA)
    peaks = {}
    for offload in (False, True):
        m.decode(z, offload=offload)  # warm-up: cuDNN handles, pinned host blocks
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        m.decode(z, offload=offload)
        peaks[offload] = torch.cuda.max_memory_allocated() - base
    assert peaks[True] < peaks[False], peaks


def test_bf16_decode_on_cuda_is_finite_and_close_to_fp32():
    m = small().to(CUDA)
    z = latent(16, 3, 4, 6).to(CUDA)
    ref = m.decode(z)
    out = m.set_precision(torch.float32, torch.bfloat16).decode(z)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert (out - ref).abs().mean() <= 0.02 * ref.abs().mean()


def test_differential_mask_per_step_path_makes_no_host_syncs_on_cuda():
    sigmas = torch.linspace(1.0, 0.0, 9, device=CUDA)
    mask = torch.rand(2, 16, 5, 8, 8, generator=torch.Generator(device=CUDA).manual_seed(0), device=CUDA)
    mask[..., :2] = 0.0
    sigma_min = torch.tensor(0.001, device=CUDA)
    fn = DifferentialMask("timestep", 0.7, exact_keep=True)
    ts = flow_timestep()
    fn(sigmas[0:1].expand(2), mask, sigmas, ts, sigma_min)  # the call's schedule, built once per call
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        outs = [fn(sigmas[i:i + 1].expand(2), mask, sigmas, ts, sigma_min) for i in range(1, len(sigmas) - 1)]
        kept = paste_kept(outs[-1], mask, mask)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert kept.device.type == "cuda" and all(o.shape == mask.shape for o in outs)


@pytest.mark.parametrize("temporal,spatial", [("max", "max"), ("mean", "area"), ("min", "min")])
def test_mask_conversion_on_cuda_equals_the_cpu(temporal, spatial):
    mask = torch.rand(9, 64, 96, generator=torch.Generator().manual_seed(3))
    shape = (1, 16, WAN21.latent_frames(9), 8, 12)
    ref = pixel_mask_to_latent(mask, shape, WAN21, temporal, spatial)
    out = pixel_mask_to_latent(mask.to(CUDA), shape, WAN21, temporal, spatial)
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), ref, rtol=0, atol=1e-6)
