"""What ComfyUI's template browser shows of the pack's examples (no ComfyUI needed): the frontend shows a
custom-node template's file name as its title and asks for ``<name>.jpg`` beside it, so every UI
example has a readable title paired with its API twin, and a 256 px JPEG thumbnail that is the
picture wanmask_runner/example_thumbnails.py draws today from the example's own settings."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from comfyui_wanmasking.wanmask_runner.example_names import EXAMPLES, TITLES, api_twin, thumbnail, ui_example

UI_FILES = sorted(EXAMPLES.glob("*.json"))
API_FILES = sorted((EXAMPLES / "api").glob("*.json"))


def test_every_example_is_a_template_with_a_title_and_every_template_has_its_api_twin():
    assert sorted(p.stem for p in API_FILES) == sorted(TITLES), "an API example without a title, or a title without one"
    assert sorted(UI_FILES) == sorted(ui_example(p.stem) for p in API_FILES)
    assert all(api_twin(ui_example(name)) == EXAMPLES / "api" / f"{name}.json" for name in TITLES)
    with pytest.raises(KeyError, match="TITLES"):
        api_twin(EXAMPLES / "t2v_fast_motion_inpaint.json")


@pytest.mark.parametrize("ui_file", UI_FILES, ids=lambda p: api_twin(p).stem)
def test_template_title_is_readable(ui_file):
    title = ui_file.stem
    # words separated by spaces; no "_" (snake case) or "-" (frontends before 1.28 show the name again as
    # the description with both turned into spaces); one line on the card (about 40 characters)
    assert " " in title and not re.search(r"[_\-]", title), title
    assert title[0].isupper() and len(title) <= 40, title
    # characters a URL path and a shell take (quoted) as they are: the thumbnail URL is built from it
    assert re.fullmatch(r"[A-Za-z0-9 ,.]+", title), title


def gray(image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("L"), dtype=np.float32))


@pytest.mark.parametrize("ui_file", UI_FILES, ids=lambda p: api_twin(p).stem)
def test_template_thumbnail_is_the_drawn_256px_jpeg(ui_file):
    from PIL import Image

    from comfyui_wanmasking.wanmask_runner.example_thumbnails import SIZE, render

    path = thumbnail(ui_file)
    assert path.is_file(), f"{path.name} is missing: run python -m wanmask_runner.example_thumbnails"
    assert path.stat().st_size < 40_000, path.stat().st_size
    with Image.open(path) as saved:
        assert saved.format == "JPEG" and saved.size == (SIZE, SIZE) == (256, 256)
        saved = gray(saved)
    drawn = gray(render(api_twin(ui_file).stem))
    # the committed picture is what the script draws from the example now, up to JPEG loss (a changed
    # word or bar differs by far more than 20 grey levels over some 8 x 8 block)
    blocks = torch.nn.functional.avg_pool2d((saved - drawn).abs()[None, None], 8)
    assert blocks.max() < 20, "stale thumbnail: run python -m wanmask_runner.example_thumbnails"
    assert drawn.std() > 20, "a blank picture"


def test_thumbnails_differ_where_the_examples_do():
    """Each kind of example has its own picture (two versions of one example may share it)."""
    from comfyui_wanmasking.wanmask_runner.example_thumbnails import picture

    kinds = {}
    for name in TITLES:
        pic, caption = picture(name)
        kinds.setdefault(caption, set()).add(pic.tobytes())
    assert len(kinds) >= 8 and all(len(pics) == 1 for pics in kinds.values())
