"""Pairing a training folder: the guide's fallback chain (alpha -> mask file -> none), captions, subject
masks, and every error found from the headers before any pixel is decoded."""
import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from comfyui_wanmasking.masking.training.dataset_files import (
    IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, pair_training_folder, probe_media,
)
from comfyui_wanmasking.tests.unit.dataset_helpers import (  # noqa: F401  (tiny_set is a fixture)
    fresh_copy, gradient, pair_tiny, tier_mask, tiny_set, write_bad_aspect_mask, write_image, write_video,
)


# ---- the tiny set ----------------------------------------------------------------------------

def test_pairing_matches_what_the_generator_wrote(tiny_set):
    report = pair_tiny(tiny_set)
    expected = tiny_set["items"]
    assert [item.name for item in report.items] == sorted(expected)
    for item in report.items:
        want = expected[item.name]
        assert item.path.name == want["file"]
        assert (item.info.kind, item.info.width, item.info.height, item.info.frames, item.info.has_alpha) == (
            want["kind"], want["width"], want["height"], want["frames"], want["has_alpha"]), item.name
        assert item.mask_source == want["mask_source"], item.name
        assert (item.mask_path.name if item.mask_path else None) == want["mask_file"], item.name
        assert (item.mask_info.kind if item.mask_info else None) == want["mask_kind"], item.name
        assert item.caption == (want["caption"] or "")  # stripped; "" when absent
        assert (item.caption_path is None) == (want["caption"] is None)
        assert (item.subject_path.name if item.subject_path else None) == want["subject_file"], item.name
    sources = [w["mask_source"] for w in expected.values()]
    assert report.counts() == {s: sources.count(s) for s in ("alpha", "file", "none")}
    assert [p.name for p in report.orphan_masks] == tiny_set["orphan_masks"]
    assert report.orphan_subjects == []


def test_video_frame_counts_come_from_the_stream_not_the_container_header(tiny_set):
    """FFV1 in Matroska stores no frame count (PyAV reports 0); the probe counts packets."""
    for name, want in tiny_set["items"].items():
        if want["kind"] == "video":
            info = probe_media(tiny_set["folder"] / want["file"])
            assert info.frames == want["frames"] and info.fps is not None and info.fps > 0, name
    mask_video = probe_media(tiny_set["mask_folder"] / "clip_perframe.mkv")
    assert (mask_video.kind, mask_video.frames) == ("video", tiny_set["items"]["clip_perframe"]["frames"])


def test_report_text_lists_every_item_its_mask_source_and_the_orphans(tiny_set):
    report = pair_tiny(tiny_set)
    text = report.text()
    images = sum(w["kind"] == "image" for w in tiny_set["items"].values())
    assert text.splitlines()[0].startswith(f"{len(report.items)} items ({images} images, "
                                           f"{len(report.items) - images} videos)")
    for item in report.items:
        line = next(line for line in text.splitlines() if line.strip().startswith(item.name + ":"))
        assert f"{item.info.width}x{item.info.height}" in line and f"mask {item.mask_source}" in line
        assert f"caption {'yes' if item.caption else 'no'}" in line
    assert "orphan_mask.png" in text and "full weight" in text


def test_unmasked_items_and_orphans_are_warned(tiny_set, caplog):
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        report = pair_tiny(tiny_set)
    unmasked = sorted(n for n, w in tiny_set["items"].items() if w["mask_source"] == "none")
    assert unmasked and all(name in caplog.text for name in unmasked)
    assert "orphan_mask.png" in caplog.text
    assert any("full weight" in w for w in report.warnings)


def test_require_mask_names_every_item_without_a_mask(tiny_set):
    unmasked = sorted(n for n, w in tiny_set["items"].items() if w["mask_source"] == "none")
    with pytest.raises(ValueError, match="require_mask") as err:
        pair_tiny(tiny_set, require_mask=True)
    assert all(name in str(err.value) for name in unmasked) and "Fix:" in str(err.value)


# ---- the fallback chain ------------------------------------------------------------------------

def test_alpha_mask_off_ignores_alpha_with_a_warning(tiny_set, caplog):
    with caplog.at_level(logging.WARNING, logger="WanMasking"):
        report = pair_tiny(tiny_set, alpha_mask=False)
    alpha_items = [n for n, w in tiny_set["items"].items() if w["has_alpha"]]
    assert alpha_items
    for item in report.items:
        if item.name in alpha_items:
            assert item.mask_source == "none"  # no mask file for them in the tiny set
    assert report.counts()["alpha"] == 0
    assert all(name in caplog.text for name in alpha_items) and "ignored" in caplog.text


def test_alpha_comes_before_a_mask_file_and_the_file_is_used_when_alpha_is_off(tiny_set, tmp_path):
    tiny = fresh_copy(tiny_set, tmp_path)
    write_image(tiny["mask_folder"] / "portrait_alpha.png", tier_mask(32, 32)[::-1].copy())
    report = pair_tiny(tiny)
    item = next(i for i in report.items if i.name == "portrait_alpha")
    assert item.mask_source == "alpha" and any("portrait_alpha.png" in w for w in report.warnings)
    item = next(i for i in pair_tiny(tiny, alpha_mask=False).items if i.name == "portrait_alpha")
    assert item.mask_source == "file" and item.mask_path.name == "portrait_alpha.png"


# ---- errors ------------------------------------------------------------------------------------

def test_empty_folder_says_which_extensions_count(tmp_path):
    (tmp_path / "notes.txt").write_text("a caption without item")
    with pytest.raises(ValueError, match="no images or videos") as err:
        pair_training_folder(tmp_path)
    assert all(ext in str(err.value) for ext in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)


def test_missing_folders_and_a_mask_folder_equal_to_the_item_folder(tiny_set, tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        pair_training_folder(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="mask folder.*not a folder"):
        pair_training_folder(tiny_set["folder"], tmp_path / "no_masks")
    with pytest.raises(ValueError, match="item folder itself"):
        pair_training_folder(tiny_set["folder"], tiny_set["folder"])


def test_unreadable_item_and_mask_are_named(tiny_set, tmp_path):
    tiny = fresh_copy(tiny_set, tmp_path)
    (tiny["folder"] / "broken.png").write_bytes(b"not a png at all")
    (tiny["folder"] / "broken_clip.mp4").write_bytes(b"\x00" * 64)
    (tiny["mask_folder"] / "photo_tall.png").write_bytes(b"garbage")
    with pytest.raises(ValueError) as err:
        pair_tiny(tiny)
    text = str(err.value)
    for name in ("broken.png", "broken_clip.mp4", "photo_tall.png"):
        assert name in text
    assert text.count("unreadable") >= 3 and "Fix:" in text
    with pytest.raises(ValueError, match="unreadable"):
        probe_media(tiny["folder"] / "broken.png")


def test_two_items_or_two_masks_with_one_basename(tiny_set, tmp_path):
    tiny = fresh_copy(tiny_set, tmp_path)
    write_image(tiny["folder"] / "photo_wide.jpg", gradient(32, 64, 1))
    write_image(tiny["mask_folder"] / "photo_halfmask.webp", tier_mask(16, 32))
    with pytest.raises(ValueError) as err:
        pair_tiny(tiny)
    text = str(err.value)
    assert "photo_wide.jpg" in text and "photo_wide.png" in text
    assert "photo_halfmask.png" in text and "photo_halfmask.webp" in text and "basename" in text


def test_mask_aspect_ratio_more_than_1_percent_off_is_an_error(tiny_set, tmp_path):
    tiny = fresh_copy(tiny_set, tmp_path)
    bad = write_bad_aspect_mask(tmp_path)
    with pytest.raises(ValueError, match="1%") as err:
        pair_tiny(tiny)
    assert bad.name in str(err.value) and "photo_tall.jpg" in str(err.value) and "Fix:" in str(err.value)


@pytest.mark.parametrize("mask_size, ok", [((199, 100), True), ((203, 100), False), ((32, 16), True)])
def test_aspect_tolerance_is_1_percent_of_the_item_aspect(tmp_path, mask_size, ok):
    folder = tmp_path / "items"
    write_image(folder / "wide.png", gradient(32, 64, 0))  # aspect 2.0: 1% = 0.02
    write_image(folder / "masks" / "wide.png", tier_mask(mask_size[1], mask_size[0]))
    if ok:
        assert pair_training_folder(folder, folder / "masks").items[0].mask_source == "file"
    else:
        with pytest.raises(ValueError, match="1%"):
            pair_training_folder(folder, folder / "masks")


def test_mask_video_for_an_image_and_with_another_frame_count(tiny_set, tmp_path):
    tiny = fresh_copy(tiny_set, tmp_path)
    frames = np.stack([tier_mask(64, 32)] * 3)
    write_video(tiny["mask_folder"] / "photo_tall.mkv", frames, codec="ffv1")  # a video mask for an image
    (tiny["mask_folder"] / "clip_perframe.mkv").unlink()
    write_video(tiny["mask_folder"] / "clip_perframe.mkv", np.stack([tier_mask(32, 64)] * 7), codec="ffv1")
    with pytest.raises(ValueError) as err:
        pair_tiny(tiny)
    text = str(err.value)
    assert "photo_tall.mkv" in text and "for the image photo_tall.jpg" in text
    assert "clip_perframe.mkv" in text and "7 frames" in text and "9" in text


def test_image_mask_for_a_video_is_accepted(tiny_set):
    item = next(i for i in pair_tiny(tiny_set).items if i.name == "clip_static")
    assert item.info.kind == "video" and item.mask_source == "file" and item.mask_info.kind == "image"


def test_subject_masks_orphans_and_their_aspect(tiny_set, tmp_path):
    tiny = fresh_copy(tiny_set, tmp_path)
    write_image(tiny["subject_folder"] / "nobody.png", tier_mask(8, 8))
    report = pair_tiny(tiny)
    assert [p.name for p in report.orphan_subjects] == ["nobody.png"]
    without = [i.name for i in report.items if i.subject_path is None]
    assert "no subject mask" in report.text() and all(n in report.text() for n in without)
    write_image(tiny["subject_folder"] / "photo_wide.png", tier_mask(32, 32))  # a square subject for a 2:1 item
    with pytest.raises(ValueError, match="subject mask.*1%"):
        pair_tiny(tiny)


# ---- probing -----------------------------------------------------------------------------------

def test_probe_reports_alpha_for_rgba_la_and_palette_transparency(tmp_path):
    rgb = gradient(8, 8, 0)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(np.dstack([rgb, tier_mask(8, 8)])).save(tmp_path / "rgba.png")
    Image.fromarray(np.dstack([rgb[..., 0], tier_mask(8, 8)])).save(tmp_path / "la.png")
    palette = Image.fromarray(rgb).convert("P")
    palette.info["transparency"] = 0
    palette.save(tmp_path / "p.png", transparency=0)
    got = {p: probe_media(tmp_path / f"{p}.png").has_alpha for p in ("rgb", "rgba", "la", "p")}
    assert got == {"rgb": False, "rgba": True, "la": True, "p": True}


def test_probe_swaps_width_and_height_for_an_exif_rotation(tmp_path):
    image = Image.fromarray(gradient(16, 48, 0))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    image.save(tmp_path / "rotated.jpg", exif=exif)
    info = probe_media(tmp_path / "rotated.jpg")
    assert (info.width, info.height) == (16, 48)


def test_stray_files_are_warned_and_mask_subfolder_is_skipped(tiny_set, tmp_path):
    tiny = fresh_copy(tiny_set, tmp_path)
    (tiny["folder"] / "notes.json").write_text("{}")
    shutil.copy(tiny["folder"] / "photo_wide.png", tiny["mask_folder"] / "photo_wide.png")  # still a mask
    report = pair_tiny(tiny)
    assert any("notes.json" in w for w in report.warnings)
    assert len(report.items) == len(tiny_set["items"])
