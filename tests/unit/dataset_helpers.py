"""Shared helpers of the dataset tests: the tiny set on disk, its pairing, and what it should read back as.

The tiny set is written by ``wanmask_runner/fixtures/tiny_dataset.py`` (numpy + PIL + PyAV, none of the
code under test), which returns what it wrote; the tests compare against that.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from comfyui_wanmasking.masking.training.dataset_files import PairingReport, pair_training_folder
from comfyui_wanmasking.wanmask_runner.fixtures.tiny_dataset import (  # noqa: F401  (re-exported for the tests)
    TIER_LEVELS, gradient, moving_square, tier_mask, write_bad_aspect_mask, write_image, write_tiny_dataset,
    write_video,
)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> dict:
    """The tiny set, written once per test module. Tests that change files use :func:`fresh_copy`."""
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny_set"))


def fresh_copy(tiny: dict, dest: Path) -> dict:
    """A copy of the tiny set under ``dest`` (for tests that add or break files); paths rewritten."""
    root = Path(tiny["folder"]).parent
    shutil.copytree(root, dest, dirs_exist_ok=True)
    moved = {k: dest / Path(tiny[k]).relative_to(root) for k in ("folder", "mask_folder", "subject_folder")}
    return {**tiny, **moved}


def pair_tiny(tiny: dict, *, subjects: bool = True, **kwargs) -> PairingReport:
    """Pair the tiny set with its mask folder (and its subject folder unless ``subjects`` is False)."""
    return pair_training_folder(tiny["folder"], tiny["mask_folder"],
                                subject_folder=tiny["subject_folder"] if subjects else None, **kwargs)


def as_unit(levels: np.ndarray) -> torch.Tensor:
    """uint8 levels -> float32 in [0, 1], the way a reader must turn 8-bit values into weights."""
    return torch.from_numpy(np.asarray(levels, dtype=np.float32) / 255.0)


def nearest_upscale(levels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[..., h, w] -> [..., H, W] by integer pixel repetition (H, W multiples of h, w)."""
    fy, fx = size[0] // levels.shape[-2], size[1] // levels.shape[-1]
    assert fy * levels.shape[-2] == size[0] and fx * levels.shape[-1] == size[1]
    return levels.repeat(fy, axis=-2).repeat(fx, axis=-1)
