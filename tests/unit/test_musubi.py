"""Exporting a paired set to musubi-tuner / blissful-tuner's layout, and reading the export back: the same
items, bit-exact item files and pixels, the same masks (subject masks multiplied in)."""
import dataclasses
import filecmp
import logging
import tomllib

import pytest
import torch

from comfyui_wanmasking.masking.training.dataset_files import pair_training_folder, probe_media
from comfyui_wanmasking.masking.training.dataset_media import read_item
from comfyui_wanmasking.masking.training.musubi import export_musubi
from comfyui_wanmasking.tests.unit.dataset_helpers import (  # noqa: F401  (tiny_set is a fixture)
    pair_tiny, tier_mask, tiny_set, write_image,
)


@pytest.fixture(scope="module")
def source(tiny_set):
    """Every item of the tiny set with all its frames: (item, pixels, expected exported mask or None)."""
    out = {}
    for item in pair_tiny(tiny_set).items:
        pixels, mask, subject = read_item(item, list(range(item.info.frames)))
        if subject is not None:
            mask = subject if mask is None else mask * subject
        out[item.name] = (item, pixels, mask)
    return out


def read_back(toml_path, *, alpha_mask):
    out_dir = toml_path.parent
    report = pair_training_folder(out_dir, out_dir / "weighted_masks", alpha_mask=alpha_mask)
    return {item.name: item for item in report.items}


def check_round_trip(source, exported):
    assert sorted(exported) == sorted(source)
    for name, (item, pixels, mask) in source.items():
        back = exported[name]
        assert (back.info.kind, back.info.width, back.info.height, back.info.frames) == (
            item.info.kind, item.info.width, item.info.height, item.info.frames), name
        assert back.caption == item.caption, name
        got_pixels, got_mask, got_subject = read_item(back, list(range(back.info.frames)))
        assert got_subject is None
        assert torch.equal(got_pixels, pixels), name  # bit-exact (copied files, exact RGB in RGBA PNGs)
        if mask is None:
            assert back.mask_source == "none" and got_mask is None, name
        else:
            assert got_mask is not None and (got_mask - mask).abs().max() <= 1 / 255 + 1e-7, name
            assert torch.equal(got_mask, mask), name  # every source in the tiny set is 8-bit: exact


def test_mask_folder_export_reads_back_the_same_set(source, tmp_path):
    toml_path = export_musubi([item for item, _, _ in source.values()], tmp_path / "out")
    exported = read_back(toml_path, alpha_mask=False)
    check_round_trip(source, exported)
    for name, (item, _, mask) in source.items():
        assert filecmp.cmp(item.path, tmp_path / "out" / item.path.name, shallow=False), name
        masks = list((tmp_path / "out" / "weighted_masks").glob(f"{name}.*"))
        assert len(masks) == (mask is not None), name  # items without a mask get no mask file
    assert exported["clip_perframe"].mask_path.suffix == ".mkv"  # per-frame, lossless
    config = tomllib.loads(toml_path.read_text())
    assert config["general"]["caption_extension"] == ".txt"
    images, videos = config["datasets"]
    assert images["image_directory"] == videos["video_directory"] == (tmp_path / "out").resolve().as_posix()
    masks = (tmp_path / "out" / "weighted_masks").resolve().as_posix()
    assert images["mask_directory"] == videos["mask_directory"] == masks
    assert "alpha_mask" not in images and images["cache_directory"] != videos["cache_directory"]
    shortest = min(item.info.frames for item, _, _ in source.values() if item.info.kind == "video")
    assert videos["target_frames"][0] <= shortest and (videos["target_frames"][0] - 1) % 4 == 0


def test_alpha_export_puts_image_masks_into_rgba_pngs(source, tmp_path):
    toml_path = export_musubi([item for item, _, _ in source.values()], tmp_path / "out", method="alpha")
    exported = read_back(toml_path, alpha_mask=True)
    check_round_trip(source, exported)
    for name, (item, _, mask) in source.items():
        back = exported[name]
        if item.info.kind == "image" and mask is not None:
            assert back.path.name == f"{name}.png" and back.info.has_alpha and back.mask_source == "alpha", name
        if item.info.kind == "video" and mask is not None:
            assert back.mask_source == "file", name
    assert not list((tmp_path / "out" / "weighted_masks").glob("photo_*"))
    images, videos = tomllib.loads(toml_path.read_text())["datasets"]
    assert images["alpha_mask"] is True and "alpha_mask" not in videos  # musubi rejects it for videos


def test_static_video_masks_take_the_max_over_frames_with_a_warning(source, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        toml_path = export_musubi([source["clip_perframe"][0]], tmp_path / "out", video_masks="static")
    back = read_back(toml_path, alpha_mask=False)["clip_perframe"]
    assert back.mask_path.name == "clip_perframe.png"
    mask = source["clip_perframe"][2]
    got = read_item(back, list(range(back.info.frames)))[1]
    assert torch.equal(got, mask.amax(dim=0).expand_as(mask))
    differ = [i for i in range(1, mask.shape[0]) if not torch.equal(mask[i], mask[0])]
    assert differ and "clip_perframe" in caplog.text and str(differ) in caplog.text


def test_refuses_a_folder_in_use_and_a_mask_with_another_aspect(source, tiny_set, tmp_path):
    items = [item for item, _, _ in source.values()]
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an empty folder"):
        export_musubi(items, tmp_path / "used")
    bad = write_image(tmp_path / "square.png", tier_mask(32, 32))
    item = source["photo_wide"][0]  # 64x32
    broken = dataclasses.replace(item, mask_path=bad, mask_info=probe_media(bad))
    with pytest.raises(ValueError, match="1%.*Fix"):
        export_musubi([broken], tmp_path / "new")
    assert not (tmp_path / "new").exists()  # refused before writing anything
    with pytest.raises(ValueError, match="method"):
        export_musubi(items, tmp_path / "new", method="crop")
