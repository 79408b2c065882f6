"""Shared by the embed builder tests (test_embeds_*.py): the clip size, test media written for
WanMaskTestLoad, graph snippets and readers."""
from __future__ import annotations

import torch
from safetensors.torch import load_file, save_file

from comfyui_wanmasking.tests.integration.examples import FRAMES as L
from comfyui_wanmasking.tests.integration.examples import SIZE as S

C = S // 8  # latent cells per side: 17 frames at 32x32 -> latent [1, 16, 5, 4, 4]
T = 1 + (L - 1) // 4

__all__ = ["L", "S", "C", "T", "write_media", "media", "load", "save_cond", "i2v", "read", "max_diff",
           "class_type", "clip_slots"]


def write_media(io_dir, items: dict, prefix: str = "") -> dict:
    """Save each {name: {key: tensor}} for WanMaskTestLoad as ``<prefix><name>.safetensors``; returns
    {name: path}."""
    paths = {name: str(io_dir / f"{prefix}{name}.safetensors") for name in items}
    for name, tensors in items.items():
        save_file(tensors, paths[name])
    return paths


def media(io_dir) -> dict:
    """A clip, a box control mask (binary, exact size) and single images, saved for WanMaskTestLoad."""
    g = torch.Generator().manual_seed(5)
    clip = torch.rand(L, S, S, 3, generator=g)
    box = torch.zeros(L, S, S)
    box[:, S // 4:3 * S // 4, S // 8:5 * S // 8] = 1.0
    return write_media(io_dir, {
        "clip": {"image": clip, "mask": box},
        "start1": {"image": clip[:1]},
        "start3": {"image": clip[:3]},
        "start5": {"image": clip[:5]},
        "end": {"image": torch.rand(1, S, S, 3, generator=g)},
        "ref": {"image": torch.rand(1, S, S, 3, generator=g)},
    })


def load(g, path):
    return g.add("WanMaskTestLoad", path=path)


def save_cond(g, path, cond, value=None):
    kw = {"value": value} if value is not None else {}
    g.add("WanMaskTestSaveConditioning", path=path, conditioning=cond, **kw)


def i2v(g, vae, cond, length=L, fun=True, fill="gray", strength=1.0, **optional):
    return g.add("WanMaskI2VEmbeds", positive=cond, negative=cond, vae=vae, width=S, height=S, length=length,
                 batch_size=1, fun_or_fl2v_model=fun, null_fill=fill, latent_strength=strength, **optional)


def read(path):
    return load_file(str(path))


def max_diff(a, b):
    return float((a.float() - b.float()).abs().max())


def class_type(g, node):
    return g.prompt[node.id]["class_type"]


def clip_slots(concat_mask, cells: bool = True):
    """An Animate concat mask [1, 4, 1+T, h, w] -> the clip's slots [4T, h, w] (or [4T] at cell (0, 0)
    with ``cells`` off): the reference latent dropped, channel c of latent t = slot 4t+c."""
    m = concat_mask[0, :, 1:]
    slots = m.transpose(0, 1).reshape(-1, *m.shape[-2:])
    return slots if cells else slots[:, 0, 0]
