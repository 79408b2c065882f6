"""Reading an item's pixels and masks exactly (dataset_media), choosing its frames and its training size,
and fitting it there with one scale and one crop for pixels, mask and subject (dataset_frames)."""
import logging
import math

import av
import numpy as np
import pytest
import torch
from PIL import Image

from comfyui_wanmasking.masking.geometry import WAN21
from comfyui_wanmasking.masking.training import dataset_frames, dataset_media
from comfyui_wanmasking.masking.training.dataset_files import pair_training_folder
from comfyui_wanmasking.masking.training.dataset_frames import bucket_resolution, fit_item, select_frames
from comfyui_wanmasking.masking.training.dataset_media import read_item
from comfyui_wanmasking.tests.unit.dataset_helpers import (  # noqa: F401  (tiny_set is a fixture)
    as_unit, gradient, moving_square, nearest_upscale, pair_tiny, tier_mask, tiny_set, write_image,
)


@pytest.fixture(scope="module")
def items(tiny_set):
    return {item.name: item for item in pair_tiny(tiny_set).items}


# ---- read_item ---------------------------------------------------------------------------------

def test_images_read_exact_rgb_and_alpha_is_never_composited(tiny_set, items):
    for name in ("photo_wide", "photo_halfmask", "portrait_alpha", "group_alpha"):
        pixels, mask, _ = read_item(items[name], [0])
        want = tiny_set["items"][name]
        assert pixels.dtype == torch.float32 and torch.equal(pixels, as_unit(want["rgb"])), name
    _, mask, subject = read_item(items["portrait_alpha"], [0])
    assert torch.equal(mask, as_unit(tiny_set["items"]["portrait_alpha"]["mask"]))  # alpha / 255 exactly
    assert subject is None
    assert (mask == 0).any()  # and the RGB under alpha 0 was compared exactly above (not black)


def test_mask_file_at_half_size_is_upscaled_nearest_keeping_the_tiers(tiny_set, items):
    pixels, mask, _ = read_item(items["photo_halfmask"], [0])
    want = nearest_upscale(tiny_set["items"]["photo_halfmask"]["mask"], tuple(pixels.shape[1:3]))
    assert torch.equal(mask, as_unit(want))
    assert set((mask * 255).round().unique().tolist()) <= set(tiny_set["tiers"])


def test_subject_mask_is_binary_at_the_item_size(tiny_set, items):
    pixels, mask, subject = read_item(items["group_alpha"], [0])
    want = nearest_upscale(tiny_set["items"]["group_alpha"]["subject"], tuple(pixels.shape[1:3])) >= 128
    assert subject.shape == mask.shape and torch.equal(subject, torch.from_numpy(want).float())
    assert 0 < subject.mean() < 1


def test_per_frame_mask_video_reads_the_same_frames_as_the_clip(tiny_set, items):
    want = tiny_set["items"]["clip_perframe"]
    indices = [7, 1, 4, 8]
    pixels, mask, _ = read_item(items["clip_perframe"], indices)
    assert pixels.shape == (4, want["height"], want["width"], 3) and mask.shape == (4, want["height"], want["width"])
    assert torch.equal(pixels, as_unit(want["rgb"][indices]))  # FFV1: lossless
    assert torch.equal(mask, as_unit(want["mask"][indices]))
    square = (pixels == 245 / 255).all(dim=-1)  # the clip's moving square is where the mask says 255
    assert torch.equal(square, mask == 1.0)


def test_image_mask_and_subject_repeat_for_every_frame_of_a_clip(tiny_set, items):
    want = tiny_set["items"]["clip_static"]
    pixels, mask, subject = read_item(items["clip_static"], [0, 2, 4])
    clip, _ = moving_square(want["frames"], want["height"], want["width"], 6)
    assert (pixels - as_unit(clip[[0, 2, 4]])).abs().mean() < 0.03  # lossy MPEG-4, the right frames
    assert torch.equal(mask, as_unit(want["mask"]).expand(3, -1, -1))
    assert torch.equal(subject, (as_unit(want["subject"]) >= 0.5).float().expand(3, -1, -1))


def test_unmasked_item_has_no_mask_and_indices_out_of_range_raise(items):
    pixels, mask, subject = read_item(items["photo_tall"], [0])
    assert mask is None and subject is None and pixels.shape[0] == 1
    with pytest.raises(ValueError, match="frame indices"):
        read_item(items["clip_plain"], [0, 9])
    with pytest.raises(ValueError, match="frame indices"):
        read_item(items["photo_tall"], [1])


def test_video_decoding_stops_at_the_last_wanted_frame(items, monkeypatch):
    decoded = []
    real_open = av.open

    class Counting:
        def __init__(self, *args, **kwargs):
            self.container = real_open(*args, **kwargs)
            self.streams = self.container.streams

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.container.close()

        def decode(self, *args, **kwargs):
            for frame in self.container.decode(*args, **kwargs):
                decoded.append(frame)
                yield frame

    monkeypatch.setattr(dataset_media.av, "open", Counting)
    read_item(items["clip_plain"], [1, 2])
    assert len(decoded) == 3


def test_sixteen_bit_and_rgb_mask_files_become_one_channel(tmp_path):
    folder = tmp_path / "items"
    write_image(folder / "a.png", gradient(4, 4, 0))
    write_image(folder / "b.png", gradient(4, 4, 1))
    deep = np.array([[0, 32768, 65535, 1000]] * 4, dtype=np.uint16)
    (folder / "masks").mkdir()
    Image.fromarray(deep).save(folder / "masks" / "a.png")
    rgb = np.repeat(tier_mask(4, 4)[..., None], 3, axis=-1)
    write_image(folder / "masks" / "b.png", rgb)
    got = {i.name: read_item(i, [0])[1] for i in pair_training_folder(folder, folder / "masks").items}
    assert torch.allclose(got["a"], torch.from_numpy(deep / 65535.0).float()[None], atol=1e-7)
    assert torch.equal(got["b"], as_unit(tier_mask(4, 4))[None])


# ---- select_frames -----------------------------------------------------------------------------

@pytest.mark.parametrize("length", [2, 4, 6, -1])
def test_length_must_be_1_plus_4k(length):
    with pytest.raises(ValueError, match="1\\+4k"):
        select_frames(33, length)


@pytest.mark.parametrize("length", [0, 1, 5, 81])
def test_an_image_is_one_frame(length):
    assert select_frames(1, length, name="img") == [0]


def test_contiguous_start_is_seeded_by_seed_and_name_without_python_hash(monkeypatch):
    picks = {(seed, name): select_frames(40, 9, seed=seed, name=name) for seed in range(6) for name in "abc"}
    for indices in picks.values():
        assert len(indices) == 9 and indices == list(range(indices[0], indices[0] + 9)) and indices[-1] < 40
    assert len({indices[0] for indices in picks.values()}) > 3  # starts differ across seeds and names

    def no_hash(_):
        raise AssertionError("Python's hash() is salted per process; use hashlib")

    monkeypatch.setattr(dataset_frames, "hash", no_hash, raising=False)  # shadows the builtin in that module
    assert all(select_frames(40, 9, seed=s, name=n) == v for (s, n), v in picks.items())


def test_spread_is_evenly_spaced_over_the_whole_clip():
    for total, length in ((9, 5), (30, 9), (81, 81), (100, 13)):
        got = select_frames(total, length, mode="spread")
        assert got == [round(i * (total - 1) / (length - 1)) for i in range(length)]
        assert got[0] == 0 and got[-1] == total - 1 and len(set(got)) == length


def test_short_clip_trims_to_1_plus_4k_with_a_warning_or_raises(caplog):
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        got = select_frames(7, 9, name="shorty")
    assert len(got) == 5 and WAN21.is_exact_pixel_count(len(got))
    assert "shorty" in caplog.text and "7" in caplog.text and "9" in caplog.text
    with pytest.raises(ValueError, match="shorty.*Fix"):
        select_frames(7, 9, name="shorty", short="error")


def test_length_0_takes_all_frames_trimmed_to_1_plus_4k(caplog):
    assert select_frames(9, 0, name="x") == list(range(9))
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        got = select_frames(12, 0, name="twelve", mode="spread")
    assert len(got) == 9 and got[0] == 0 and got[-1] == 11 and "twelve" in caplog.text
    with pytest.raises(ValueError, match="twelve"):
        select_frames(12, 0, name="twelve", short="error")


def test_bad_mode_or_policy_raise():
    with pytest.raises(ValueError, match="frame mode"):
        select_frames(9, 5, mode="random")
    with pytest.raises(ValueError, match="short"):
        select_frames(9, 5, short="pad")


# ---- bucket_resolution ---------------------------------------------------------------------------

@pytest.mark.parametrize("width, height", [(1920, 1080), (1080, 1920), (512, 512), (640, 480), (300, 1000)])
@pytest.mark.parametrize("area, multiple", [(512 * 512, 16), (832 * 480, 16), (64 * 64, 32)])
def test_bucket_is_a_multiple_within_the_area_and_locally_best(width, height, area, multiple):
    h, w = bucket_resolution(width, height, area, multiple)
    assert h % multiple == 0 and w % multiple == 0 and h * w <= area
    assert (h + multiple) * w > area  # the tallest that fits this width
    err = abs(math.log(w / h) - math.log(width / height))
    for w2 in (w - multiple, w + multiple):  # neighbouring widths, each with its tallest height
        h2 = (area // w2) // multiple * multiple if w2 >= multiple else 0
        if h2 >= multiple:
            assert err <= abs(math.log(w2 / h2) - math.log(width / height)) + 1e-12
    assert (h > w) == (height > width) or h == w
    assert bucket_resolution(width, height, area, multiple) == (h, w)


def test_bucket_exact_cases_and_errors():
    assert bucket_resolution(512, 512, 512 * 512, 16) == (512, 512)
    assert bucket_resolution(64, 32, 64 * 32, 16) == (32, 64)
    with pytest.raises(ValueError, match="area"):
        bucket_resolution(64, 64, 100, 16)


# ---- fit_item ----------------------------------------------------------------------------------

def blocks(height, width, cell=8):
    """[1, H, W] weights constant on cell x cell blocks, four tier levels."""
    levels = torch.tensor([1.0, 128 / 255, 80 / 255, 0.0])
    idx = (torch.arange(height)[:, None] // cell + torch.arange(width)[None, :] // cell) % 4
    return levels[idx][None]


def test_fit_crops_the_center_without_resampling_when_one_side_fits():
    mask = blocks(32, 64)
    pixels = mask[..., None].expand(-1, -1, -1, 3)
    subject = (mask > 0.4).float()
    p, m, s = fit_item(pixels, mask, subject, (32, 32))
    assert torch.equal(m, mask[:, :, 16:48]) and torch.equal(p, pixels[:, :, 16:48])
    assert torch.equal(s, subject[:, :, 16:48])


def test_fit_scales_all_three_the_same_then_crops():
    mask = blocks(32, 16)  # 16x32 (WxH) item into 64x64: scale 4, 64x128, crop rows 32..96
    pixels = mask[..., None].expand(-1, -1, -1, 3).contiguous()
    subject = (mask == 1.0).float()
    p, m, s = fit_item(pixels, mask, subject, (64, 64))
    assert p.shape == (1, 64, 64, 3) and m.shape == s.shape == (1, 64, 64)
    want = nearest_upscale(mask.numpy(), (128, 64))[:, 32:96]
    assert torch.equal(m, torch.from_numpy(want))  # nearest up keeps the tiers
    assert torch.equal(s, (m == 1.0).float())
    inside = (torch.arange(64) % 32 >= 4) & (torch.arange(64) % 32 <= 27)  # away from the 32-px block edges
    centers = inside[:, None] & inside[None, :]  # bilinear equals the block value there
    assert torch.allclose(p[0, ..., 0][centers], m[0][centers], atol=1e-5)


def test_fit_downscale_keeps_the_mean_weight_and_the_subject_binary():
    mask = blocks(64, 64, cell=3)
    subject = (blocks(64, 64, cell=5) > 0.4).float()
    pixels = torch.rand(2, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    p, m, s = fit_item(pixels, mask.expand(2, -1, -1), subject.expand(2, -1, -1), (32, 32))
    assert torch.allclose(m.mean(), mask.mean(), atol=1e-6)
    assert set(s.unique().tolist()) <= {0.0, 1.0} and p.min() >= 0 and p.max() <= 1


def test_fit_refuses_masks_of_another_shape():
    with pytest.raises(ValueError, match="mask"):
        fit_item(torch.zeros(1, 8, 8, 3), torch.zeros(1, 8, 4), None, (8, 8))
