"""Shared fixtures: one real ComfyUI server per test session for tests/integration and
tests/reliability (skipped with the reason when no ComfyUI is found). Unit tests never use them."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.comfy_server import ComfyServer, find_comfyui


@pytest.fixture(scope="session")
def comfyui_path() -> Path:
    path, why = find_comfyui()
    if path is None:
        pytest.skip(why)
    return path


@pytest.fixture(scope="session")
def models_cache(tmp_path_factory) -> Path:
    cache = os.environ.get("WANMASK_TEST_MODELS")
    return Path(cache) if cache else tmp_path_factory.mktemp("tiny_models")


@pytest.fixture(scope="session")
def server(comfyui_path, models_cache, tmp_path_factory):
    srv = ComfyServer(comfyui_path, tmp_path_factory.mktemp("comfy_base"), models_cache).start()
    yield srv
    srv.stop()


@pytest.fixture
def io_dir(tmp_path) -> Path:
    """A folder both the test and the server process read and write."""
    return tmp_path
