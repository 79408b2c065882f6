"""comfy_compat's probe of native WanAnimateToVideo's character-mask placement, on fakes that present each
placement (the real 0.3.64 / 0.33 nodes are probed in tests/integration/test_embeds_animate.py). The
compatibility package is loaded from its folder, as the runner does; the probe itself needs no ComfyUI."""
from __future__ import annotations

from types import SimpleNamespace

import einops
import pytest
import torch
import torch.nn.functional as F

from comfyui_wanmasking.wanmask_runner.embedded_backend import load_compat

compat = load_compat()


def fake_animate(shift: int, v3: bool = True, fail: bool = False):
    """A fake WanAnimateToVideo that writes character-mask frame 0 to slots 0..shift and frame f to slot
    f + shift (shift 3: ComfyUI after PR #16406; 0: up to 0.33, slots past the clip stay 1), as a V3 node
    (``execute`` returning an object with ``result``) or a V1 node (``FUNCTION``). Counts its runs."""
    def run(positive, negative, vae, width, height, length, batch_size, continue_motion_max_frames,
            video_frame_offset, background_video=None, character_mask=None, **_):
        fake.runs += 1
        if fail:
            raise RuntimeError("this fake needs inputs the probe does not give")
        ref = vae.encode(torch.zeros(1, height, width, 3))
        clip = vae.encode(background_video)
        m = F.interpolate(character_mask[None], size=tuple(clip.shape[-2:]), mode="nearest-exact")[0]
        slots = torch.cat([m[:1].expand(shift, -1, -1), m, torch.ones(4 * clip.shape[2] - length - shift,
                                                                      *m.shape[1:])])
        concat_mask = torch.cat([torch.zeros_like(ref[:, :4]),
                                 einops.rearrange(slots, "(t c) h w -> 1 c t h w", c=4)], dim=2)
        pos = [[positive[0][0], {**positive[0][1], "concat_mask": concat_mask}]]
        out = (pos, negative, {"samples": torch.zeros(1, 16, 1 + clip.shape[2], *clip.shape[-2:])}, 1, 0, length)
        return SimpleNamespace(result=out) if v3 else out

    if v3:
        fake = type("FakeAnimateV3", (), {"execute": staticmethod(run)})
    else:
        fake = type("FakeAnimateV1", (), {"FUNCTION": "go", "go": lambda self, **kw: run(**kw)})
    fake.runs = 0
    return fake


@pytest.mark.parametrize("v3", [True, False])
def test_the_new_placement_is_found(v3):
    fake = fake_animate(compat.ANIMATE_SLOT_SHIFT_CAUSAL, v3=v3)
    assert compat.native_animate_mask_slot_shift(fake) == 3


def test_the_old_placement_is_found():
    fake = fake_animate(compat.ANIMATE_SLOT_SHIFT_SAME_SLOT)
    assert compat.native_animate_mask_slot_shift(fake) == 0


def test_the_probe_runs_once_per_node_class():
    fake = fake_animate(3)
    assert [compat.native_animate_mask_slot_shift(fake) for _ in range(3)] == [3, 3, 3]
    assert fake.runs == 1


@pytest.mark.parametrize("fake", [fake_animate(2), fake_animate(1), fake_animate(3, fail=True)],
                         ids=["other-placement", "one-slot", "fails"])
def test_a_node_the_probe_cannot_read_gives_none(fake):
    assert compat.native_animate_mask_slot_shift(fake) is None
