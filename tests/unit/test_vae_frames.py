"""Frame streaming inside a chunk (issue 15): one pixel frame at a time below every temporal
upsampling (decode) and above every temporal downsampling (encode) gives the whole-chunk result;
tiles run one after the other; the traced working set that ComfyUI is told."""
import weakref

import pytest
import torch

import comfyui_wanmasking.vae.stream as stream
from comfyui_wanmasking.vae import memory
from comfyui_wanmasking.vae.cache import FeatureCache
from comfyui_wanmasking.vae.layers import CausalConv3d, cached_causal_conv
from comfyui_wanmasking.vae.wan21 import WanVAE21
from comfyui_wanmasking.vae.wan22 import DupUp3D
from comfyui_wanmasking.tests.unit.vae_helpers import latent, small21, small22, video


# ---- equality: streamed frames == whole chunk -------------------------------------------------------

@pytest.mark.parametrize("make", [small21, small22])
@pytest.mark.parametrize("temporal_chunk", [1, 3])
def test_frame_streamed_decode_equals_the_whole_chunk(make, temporal_chunk):
    m = make()
    z = latent(m.z_dim, 5, 3, 4)
    # reference: frame 0, then all other latent frames in one call, nothing streamed inside it
    whole = m.decode(z, temporal_chunk=99, frame_stream=0)
    for frames in (1, 2, 3):
        got = m.decode(z, temporal_chunk=temporal_chunk, frame_stream=frames)
        assert got.shape == whole.shape == (1, 3, 17, *whole.shape[-2:])
        torch.testing.assert_close(got, whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("make", [small21, small22])
def test_frame_streamed_encode_equals_the_whole_chunk(make):
    m = make()
    s = m.geometry.spatial_stride
    x = video(13, 2 * s, 3 * s)
    whole = m.encode(x, temporal_chunk=99, frame_stream=0)
    for chunk, frames in ((1, 1), (2, 1), (1, 3), (3, 2)):
        torch.testing.assert_close(m.encode(x, temporal_chunk=chunk, frame_stream=frames), whole, rtol=0, atol=1e-5)


def test_frame_streaming_at_the_real_width():
    torch.manual_seed(0)
    m = WanVAE21(dim=96).eval()
    z = latent(16, 2, 2, 2)
    torch.testing.assert_close(m.decode(z, frame_stream=1), m.decode(z, frame_stream=0), rtol=0, atol=1e-4)


def test_decode_chunk_emits_single_frames_in_order():
    m = small21()
    z = latent(16, 3, 2, 2)
    cache = FeatureCache()
    sizes, pieces = [], []
    for t in range(3):
        m.decode_chunk(z[:, :, t:t + 1], cache, t == 0, lambda y: (sizes.append(y.shape[2]), pieces.append(y)), 1)
    assert sizes == [1] + [1] * 8  # frame 0, then 4 + 4 pixel frames, one at a time
    torch.testing.assert_close(torch.cat(pieces, dim=2), m.decode(z, frame_stream=0), rtol=0, atol=1e-5)


def test_dupup_frames_equal_slices_of_the_whole():
    up = DupUp3D(8, 4, factor_t=2, factor_s=2)
    x = torch.randn(1, 8, 3, 2, 2)
    for first in (True, False):
        whole = up(x, first)
        for f0 in range(whole.shape[2]):
            assert torch.equal(up.frames(x, first, f0, f0 + 1), whole[:, :, f0:f0 + 1])
        assert torch.equal(up.frames(x, first, 1, whole.shape[2]), whole[:, :, 1:])


def test_single_frame_causal_conv_drops_zero_taps_exactly():
    torch.manual_seed(0)
    conv = CausalConv3d(4, 5, 3, padding=1)
    x, past1 = torch.randn(1, 4, 1, 6, 6), torch.randn(1, 4, 1, 6, 6)
    full = torch.nn.functional.conv3d(torch.nn.functional.pad(x, (1, 1, 1, 1, 2, 0)), conv.weight, conv.bias)
    torch.testing.assert_close(conv(x), full, rtol=0, atol=1e-6)
    ref = torch.nn.functional.conv3d(torch.nn.functional.pad(torch.cat([past1, x], 2), (1, 1, 1, 1, 1, 0)),
                                     conv.weight, conv.bias)
    torch.testing.assert_close(conv(x, past1), ref, rtol=0, atol=1e-6)


def test_single_frames_are_kept_without_copies():
    torch.manual_seed(0)
    conv = CausalConv3d(2, 2, 3, padding=1)
    frames = [torch.randn(1, 2, 1, 3, 3) for _ in range(4)]
    for offload in (False, True):
        cache = FeatureCache(offload=offload)
        outs = []
        for f in frames:
            cache.begin_chunk()
            outs.append(cached_causal_conv(conv, f.clone(), cache))
        slot = cache.slots[0]
        if offload:  # one 2-frame tensor, copied to host memory
            assert torch.equal(slot, torch.cat(frames[-2:], dim=2))
        else:  # the last two inputs themselves, oldest first
            assert isinstance(slot, tuple) and len(slot) == 2
            assert all(torch.equal(a, b) for a, b in zip(slot, frames[-2:]))
        torch.testing.assert_close(torch.cat(outs, 2), conv(torch.cat(frames, 2)), rtol=0, atol=1e-6)
    cache = FeatureCache()
    cache.begin_chunk()
    x = torch.randn(1, 2, 1, 3, 3)
    cached_causal_conv(conv, x, cache)
    assert cache.slots[0][0] is x  # kept as is, not copied


# ---- tiles one after the other --------------------------------------------------------------------

def test_tiles_run_one_after_the_other_with_one_cache_alive(monkeypatch):
    alive, most = weakref.WeakSet(), [0]

    class Counting(FeatureCache):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            alive.add(self)
            most[0] = max(most[0], len(alive))

    monkeypatch.setattr(stream, "FeatureCache", Counting)
    m = small21()
    z = latent(16, 3, 6, 6)
    seen = []
    tiled = m.decode(z, tile=32, overlap=16, progress=lambda d, t: seen.append((d, t)))
    assert most[0] == 1
    assert seen[0] == (0, 4 * 3) and seen[-1] == (12, 12) and len(seen) == 13  # 4 tiles x 3 latent frames
    assert tiled.shape == (1, 3, 9, 48, 48) and torch.isfinite(tiled).all()
    untiled = m.decode(z)
    assert (tiled - untiled).abs().mean() < (untiled.abs().mean())  # blended, not accumulated twice


# ---- the traced working set ---------------------------------------------------------------------

def test_counter_counts_storages_not_views():
    trace = memory.Trace()
    with memory._Counter(trace):
        a = torch.empty(256, 1024, device="meta")  # 1 MiB
        v = a[:, :512]  # a view: nothing new
        b = a * 2  # 1 MiB more
        assert trace.live == 2 * 2**20
        del a, b
        assert trace.live == 2**20  # ``a`` lives on in its view
        del v
        assert trace.live == 0
    assert trace.peak == 2 * 2**20


def test_traced_decode_working_set_shrinks_with_frame_streaming_and_stays_flat_in_length():
    torch.manual_seed(0)
    m = WanVAE21(dim=16)
    shape = (1, 16, 9, 8, 8)
    streamed = memory.decode_bytes(m, shape, frame_stream=1)
    whole = memory.decode_bytes(m, shape, frame_stream=0)
    assert streamed.peak < whole.peak
    assert streamed.cache == whole.cache > 0  # the same cache either way
    assert memory.decode_bytes(m, shape, latent_frames=6).peak == streamed.peak  # steady after 3 chunks
    offload = memory.decode_bytes(m, shape, offload=True)
    assert offload.peak < streamed.peak - streamed.cache / 2  # the cache left the device
    tiled = memory.decode_bytes(m, (1, 16, 9, 32, 32), tile=8 * 8)
    assert tiled.peak == streamed.peak  # a tile of 8x8 latent cells is an 8x8 decode
    # per-frame working set grows with the frame area, ~4x for twice the side
    big = memory.decode_bytes(m, (1, 16, 9, 16, 16))
    assert 3.5 < big.peak / streamed.peak < 4.5


@pytest.mark.parametrize("make", [small21, small22])
def test_traced_encode_working_set_shrinks_with_frame_streaming(make):
    m = make()
    s = m.geometry.spatial_stride
    shape = (1, 3, 17, 8 * s, 8 * s)
    assert memory.encode_bytes(m, shape, frame_stream=1).peak < memory.encode_bytes(m, shape, frame_stream=0).peak


def test_trace_follows_the_decode_precision():
    m = small21()
    fp32 = memory.decode_bytes(m, (1, 16, 5, 8, 8))
    bf16 = memory.decode_bytes(m, (1, 16, 5, 8, 8), dtype=torch.bfloat16)
    assert 0.45 < bf16.peak / fp32.peak < 0.6  # half-size activations, plus the fp32 output piece


def test_offload_prefetch_follows_the_order_the_slots_are_visited_in():
    """With frame streaming the decoder visits the full-resolution slots once per pixel frame, so
    the next slot to copy back is read from the previous chunk's order, not the slot numbers."""
    m = small21()
    cache = FeatureCache(offload=True)
    z = latent(16, 3, 2, 2)
    for t in range(3):
        m.decode_chunk(z[:, :, t:t + 1], cache, t == 0, lambda y: None, 1)
    order = cache._order
    assert len(order) > len(cache.slots)  # slots below the temporal upsamplings come back per frame
    cache.begin_chunk()
    assert cache.upcoming(3) == order[:3]
    first = cache.next_slot()
    assert first == order[0] and cache.upcoming(2) == order[1:3]
    # the slot after the last full-resolution one is the same stage's first slot again, not slot 0
    last_hi = max(order)
    k = order.index(last_hi)
    cache._order = order[:k + 1]
    assert cache.upcoming(1) == [order[k + 1]] and order[k + 1] != (last_hi + 1) % len(cache.slots)
