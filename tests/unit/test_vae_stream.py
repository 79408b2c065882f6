"""Streaming/tiled drivers: streaming == one-shot, tiled == untiled in tile interiors, offload
bit-identical on the CPU, progress, interrupt, precision and bad input."""
import logging

import pytest
import torch

from comfyui_wanmasking.vae.cache import FeatureCache
from comfyui_wanmasking.vae.stream import NonFiniteOutputError, StreamInterrupted, StreamOptions, decode_video, encode_video, latent_chunks
from comfyui_wanmasking.tests.unit.vae_helpers import latent, small21, small22, video


def local(model):
    """Zero the attention output projections: the mid-block attention is the only non-local layer,
    so without it every output cell depends on a bounded neighbourhood (17.25 latent cells for the
    decoder, see test_decoder_receptive_field_is_bounded) and tiles can match exactly."""
    for blk in (model.encoder.middle[1], model.decoder.middle[1]):
        torch.nn.init.zeros_(blk.proj.weight)
        torch.nn.init.zeros_(blk.proj.bias)
    return model


# ---- chunking ---------------------------------------------------------------------------------

def test_latent_chunks_put_frame_zero_alone():
    assert latent_chunks(5, 1) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    assert latent_chunks(5, 3) == [(0, 1), (1, 4), (4, 5)]
    assert latent_chunks(1, 4) == [(0, 1)]
    with pytest.raises(ValueError):
        latent_chunks(3, 0)


@pytest.mark.parametrize("make", [small21, small22])
def test_streaming_decode_equals_one_shot(make):
    m = make()
    z = latent(m.z_dim, 5, 3, 4)
    streamed = m.decode(z, temporal_chunk=1)      # one latent frame per call (upstream)
    one_shot = m.decode(z, temporal_chunk=99)     # frame 0, then the whole rest in one call
    pairs = m.decode(z, temporal_chunk=2)
    assert streamed.shape[2] == 17
    torch.testing.assert_close(one_shot, streamed, rtol=0, atol=1e-5)
    torch.testing.assert_close(pairs, streamed, rtol=0, atol=1e-5)


@pytest.mark.parametrize("make", [small21, small22])
def test_streaming_encode_equals_one_shot(make):
    m = make()
    s = m.geometry.spatial_stride
    x = video(13, 2 * s, 3 * s)
    streamed = m.encode(x, temporal_chunk=1)      # frame 0, then groups of 4
    one_shot = m.encode(x, temporal_chunk=99)
    assert streamed.shape[2] == 4
    torch.testing.assert_close(one_shot, streamed, rtol=0, atol=1e-5)


def test_streaming_at_the_real_width():
    m = small21(dim=96)
    z = latent(16, 3, 2, 2)
    torch.testing.assert_close(m.decode(z, temporal_chunk=9), m.decode(z, temporal_chunk=1), rtol=0, atol=1e-5)


# ---- offload ------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [small21, small22])
def test_offload_is_bit_identical_on_cpu(make):
    m = make()
    s = m.geometry.spatial_stride
    z = latent(m.z_dim, 4, 2, 3)
    assert torch.equal(m.decode(z, offload=True), m.decode(z, offload=False))
    x = video(9, 2 * s, 2 * s)
    assert torch.equal(m.encode(x, offload=True), m.encode(x, offload=False))


def test_offloaded_cache_holds_copies_not_views():
    cache = FeatureCache(offload=True)
    t = torch.ones(1, 2, 2, 3, 3)
    idx = cache.next_slot()
    cache.put(idx, t)
    t.zero_()
    assert cache.get(idx).sum() == 36 and cache.device_bytes() == 0


# ---- tiling -------------------------------------------------------------------------------------

def test_decoder_receptive_field_is_bounded():
    m = local(small21())
    z = latent(16, 2, 2, 48)
    z2 = z.clone()
    z2[..., 24] += 1
    changed = ((m.decode(z) - m.decode(z2)).abs().amax(dim=(0, 1, 2, 3)) > 0).nonzero().flatten() / 8
    assert changed.min() >= 24 - 18 and changed.max() < 25 + 18


def test_tiled_decode_equals_untiled_inside_tile_interiors():
    m = local(small21())
    z = latent(16, 4, 1, 44)  # 13 frames, 352 px wide: tiles [0, 24) and [20, 44) latent cells
    untiled = m.decode(z)
    tiled = m.decode(z, tile=24 * 8, overlap=4 * 8)
    # interiors: more than the 18-cell receptive field away from a tile's inner edge; every frame
    # matches, so each tile's own cache carries it through time without a temporal seam
    left, right = slice(0, 6 * 8), slice(38 * 8, 44 * 8)
    torch.testing.assert_close(tiled[..., left], untiled[..., left], rtol=0, atol=1e-5)
    torch.testing.assert_close(tiled[..., right], untiled[..., right], rtol=0, atol=1e-5)
    seam = (tiled - untiled)[..., 14 * 8:30 * 8].abs().max()
    assert seam > 1e-4, "tiling did nothing near the seam"


def test_tiled_encode_equals_untiled_inside_tile_interiors():
    m = local(small21())
    x = video(5, 16, 44 * 8)
    untiled = m.encode(x)
    tiled = m.encode(x, tile=24 * 8, overlap=4 * 8)
    torch.testing.assert_close(tiled[..., :8], untiled[..., :8], rtol=0, atol=1e-5)
    torch.testing.assert_close(tiled[..., 36:], untiled[..., 36:], rtol=0, atol=1e-5)
    assert (tiled - untiled)[..., 16:28].abs().max() > 1e-5


def test_tiled_decode_with_offload_is_bit_identical_on_cpu():
    m = small22()
    z = latent(48, 3, 3, 10)
    a = m.decode(z, tile=6 * 16, overlap=2 * 16)
    assert torch.equal(a, m.decode(z, tile=6 * 16, overlap=2 * 16, offload=True))


def test_tile_sizes_must_be_multiples_of_the_stride():
    m = small21()
    with pytest.raises(ValueError, match="multiples of 8"):
        m.decode(latent(16, 1, 4, 4), tile=60, overlap=16)
    with pytest.raises(ValueError, match="smaller than the tile size"):
        m.decode(latent(16, 1, 4, 8), tile=16, overlap=16)


# ---- progress, interrupt, precision ---------------------------------------------------------------

def test_progress_is_reported_per_latent_frame():
    m = small21()
    seen = []
    m.decode(latent(16, 4, 2, 2), progress=lambda done, total: seen.append((done, total)))
    assert seen == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]


def test_interrupt_is_checked_at_every_cached_layer_and_stops_inside_a_chunk():
    m = small21()
    done, checks_in_chunk = [], []

    def check():
        checks_in_chunk.append(len(done))
        # interrupt half-way through the second latent frame's decoder pass
        return len(done) == 2 and checks_in_chunk.count(2) > 5

    with pytest.raises(StreamInterrupted):
        m.decode(latent(16, 6, 2, 2), check_interrupt=check, progress=lambda d, t: done.append(d))
    assert done == [0, 1]  # the second latent frame never finished
    assert checks_in_chunk.count(1) > 5  # checked many times per chunk, not once between chunks


def test_interrupt_check_may_raise_its_own_exception():
    class Stop(Exception):
        pass

    def check():
        raise Stop()

    with pytest.raises(Stop):
        small21().encode(video(5, 16, 16), check_interrupt=check)


def test_precision_is_set_separately_for_encode_and_decode():
    m = small21().set_precision(torch.float32, torch.bfloat16)
    assert m.encoder.conv1.weight.dtype == torch.float32 and m.conv1.weight.dtype == torch.float32
    assert m.decoder.conv1.weight.dtype == torch.bfloat16 and m.conv2.weight.dtype == torch.bfloat16
    ref = small21()
    z = latent(16, 2, 2, 2)
    out = m.decode(z)
    assert out.dtype == torch.float32
    assert (out - ref.decode(z)).abs().max() < 0.1  # bf16 decode stays close to fp32
    torch.testing.assert_close(m.encode(video(5, 16, 16)), ref.encode(video(5, 16, 16)), rtol=0, atol=1e-6)


def test_fp16_overflow_is_detected_with_advice():
    m = small21().set_precision(torch.float32, torch.float16)
    with torch.no_grad():
        m.decoder.head[2].weight.mul_(1e6)  # force activations past fp16's 65504
    with pytest.raises(NonFiniteOutputError, match="fp16.*bf16.*fp32"):
        m.decode(latent(16, 2, 2, 2))


# ---- bad input ------------------------------------------------------------------------------------

def test_pixel_frames_not_1_plus_4k_raise_with_the_fix():
    with pytest.raises(ValueError, match=r"pixels: 7 frames is not of the form 1\+4k.*Use 5 or 9 frames"):
        small21().encode(video(7, 16, 16))


def test_pad_option_repeats_the_last_frame_and_warns(caplog):
    m = small21()
    x = video(7, 16, 16)
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        z = m.encode(x, pad_frames=True)
    assert z.shape[2] == 3
    assert "repeated the last frame 2 time(s) to 9 frames" in caplog.text
    padded = torch.cat([x, x[:, :, -1:], x[:, :, -1:]], dim=2)
    assert torch.equal(z, m.encode(padded))


def test_spatial_size_must_be_a_multiple_of_the_stride():
    with pytest.raises(ValueError, match=r"pixels: 20x16 \(WxH\) is not a multiple of 8"):
        small21().encode(video(1, 16, 20))
    with pytest.raises(ValueError, match="multiple of 16 for the Wan 2.2 5B VAE"):
        small22().encode(video(1, 24, 32))


def test_wrong_latent_channels_name_the_vae_to_load():
    with pytest.raises(ValueError, match="samples: the latent has 48 channels but the loaded Wan 2.1 VAE decodes 16"):
        small21().decode(latent(48, 2, 2, 2))
    with pytest.raises(ValueError, match="16 channels but the loaded Wan 2.2 5B VAE decodes 48"):
        small22().decode(latent(16, 2, 2, 2))


def test_non_finite_latent_is_rejected_before_decoding():
    z = latent(16, 2, 2, 2)
    z[0, 0, 1, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="inf/NaN"):
        small21().decode(z)


def test_direct_driver_calls_take_options():
    m = small21()
    z = latent(16, 2, 2, 2)
    assert torch.equal(decode_video(m, z, StreamOptions()), m.decode(z))
    x = video(5, 16, 16)
    assert torch.equal(encode_video(m, x, StreamOptions(temporal_chunk=1)), m.encode(x))
