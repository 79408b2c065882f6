"""The repo root as one package, and shared fixtures.

The repo root is a ComfyUI custom-node package; the tests import it the way ComfyUI does, as one
package under a fixed name (``comfyui_wanmasking``), so every module of the pack uses relative
imports and nothing here shadows ComfyUI's own ``nodes``. Importing the package loads nothing of
ComfyUI (its ``comfy_entrypoint`` is lazy).

Fixtures: one real ComfyUI server per test session for tests/integration and tests/reliability
(skipped with the reason when no ComfyUI is found), and its ``/object_info``. Unit tests never use them.
Shared helpers that are not fixtures live in tests/helpers/.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

PACKAGE = "comfyui_wanmasking"
ROOT = Path(__file__).resolve().parents[1]
if PACKAGE not in sys.modules:
    _spec = importlib.util.spec_from_file_location(PACKAGE, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    sys.modules[PACKAGE] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules[PACKAGE])

from comfyui_wanmasking.tests.integration.comfy_server import ComfyServer, find_comfyui  # noqa: E402


NEEDS_COMFYUI = ("integration", "reliability")  # the suites that run a real ComfyUI


class ModuleWithoutComfyUI(pytest.Module):
    """A test module of a suite that needs ComfyUI, where none is found: skipped whole, with one line."""

    why = ""

    def collect(self):
        pytest.skip(self.why, allow_module_level=True)


def pytest_pycollect_makemodule(module_path, parent):
    """Without ComfyUI, each integration or reliability module is one skip line naming COMFYUI_PATH
    (not one line per test); the tests that need none still run."""
    if module_path.parent.name in NEEDS_COMFYUI and module_path.parent.parent == Path(__file__).parent:
        path, why = find_comfyui()
        if path is None:
            module = ModuleWithoutComfyUI.from_parent(parent, path=module_path)
            module.why = why
            return module
    return None


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: has a CUDA path; runs with a real CUDA device (benchmarks/gpu_check.py "
                                       "runs `pytest -m cuda` on a GPU machine) and skips with the reason without one")


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


@pytest.fixture(scope="module")
def object_info(server) -> dict:
    """The server's ``/object_info``, fetched once per module (from the module's own ``server`` where it
    overrides the session one, as the frontend oracle does)."""
    return server.get("/object_info")


@pytest.fixture
def io_dir(tmp_path) -> Path:
    """A folder both the test and the server process read and write."""
    return tmp_path
