"""Tile layout, feather weights and IMAGE <-> video conversions."""
import pytest
import torch

from comfyui_wanmasking.vae.image_conversion import image_to_video, video_to_image
from comfyui_wanmasking.vae.tiling import Tile, blend_weights, feather_weight, plan_tiles, tile_starts


def test_tile_starts_cover_the_axis_with_the_overlap():
    assert tile_starts(44, 24, 4) == [0, 20]
    assert tile_starts(50, 24, 4) == [0, 20, 26]  # last tile aligned to the end
    assert tile_starts(10, 24, 4) == [0]
    assert tile_starts(10, 0, 4) == [0]
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(50, 8, 8)


def test_plan_tiles_covers_every_cell():
    tiles = plan_tiles(30, 50, 16, 4)
    covered = torch.zeros(30, 50)
    for t in tiles:
        assert t.y1 - t.y0 == 16 and t.x1 - t.x0 == 16
        covered[t.y0:t.y1, t.x0:t.x1] += 1
    assert covered.min() >= 1
    assert plan_tiles(8, 8, 0, 0) == [Tile(0, 8, 0, 8)]


def test_feather_weight_ramps_only_towards_neighbours():
    w = feather_weight(Tile(0, 4, 4, 12), height=4, width=16, overlap=2, scale=2)
    assert w.shape == (8, 16)
    assert torch.all(w[:, 4:12] == 1)                # middle: full weight
    assert torch.all(w[0] == w[-1])                  # top/bottom are image borders: no ramp
    torch.testing.assert_close(w[0, :4], torch.tensor([0.2, 0.4, 0.6, 0.8]))  # left neighbour: ramp up
    torch.testing.assert_close(w[0, -4:], torch.tensor([0.8, 0.6, 0.4, 0.2]))  # right neighbour: ramp down


def test_blend_weights_sum_to_one_everywhere_and_are_exact_outside_overlaps():
    tiles = plan_tiles(20, 44, 24, 4)
    ws = blend_weights(tiles, 20, 44, 4, 8)
    total = torch.zeros(160, 352)
    for t, w in zip(tiles, ws):
        total[t.y0 * 8:t.y1 * 8, t.x0 * 8:t.x1 * 8] += w
    torch.testing.assert_close(total, torch.ones_like(total))
    assert torch.all(ws[0][:, :20 * 8] == 1.0)  # only one tile there: its value is used unchanged


def test_image_video_round_trip():
    img = torch.rand(5, 16, 24, 3)
    v = image_to_video(img)
    assert v.shape == (1, 3, 5, 16, 24) and v.min() >= -1 and v.max() <= 1
    torch.testing.assert_close(video_to_image(v), img)
    assert video_to_image(torch.full((2, 3, 3, 4, 4), 5.0)).shape == (6, 4, 4, 3)
    assert video_to_image(torch.full((1, 3, 1, 2, 2), 5.0)).max() == 1.0


def test_rgba_image_is_rejected_with_the_fix():
    with pytest.raises(ValueError, match=r"pixels: expected an RGB IMAGE.*\[5, 16, 16, 4\].*alpha"):
        image_to_video(torch.rand(5, 16, 16, 4))
