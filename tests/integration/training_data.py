"""The masked-loss training fixtures shared by tests/integration/test_training.py (what training learns)
and test_training_nodes.py (declarations, checks before training, the weights nodes): the tiny latent
clip and its per-frame mask, datasets A and B, and a WanMaskTrainLoRA node at the tests' settings."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from comfyui_wanmasking.masking.geometry import WAN21
from comfyui_wanmasking.masking.training.weights import latent_loss_weights

FRAMES, SIZE, T, CELLS = 9, 64, 3, 8          # pixel clip 9x64x64 -> latent [1, 16, 3, 8, 8]
SHORT, LR = 100, 5e-3                         # steps of a short run, learning rate

# Native Train LoRA options that ComfyUI 0.33 added, at native's defaults (a ComfyUI without them
# ignores inputs its node does not declare).
NEWER_NATIVE_OPTIONS = dict(quantized_backward=False, checkpoint_depth=1, offloading=False, bucket_mode=False,
                            bypass_mode=False)


def video_mask():
    """Per-frame loss mask: 0 in frame 0 (latent 0), a 32x32 px square of 1 in frames 1..8 (latents 1, 2)."""
    m = torch.zeros(FRAMES, SIZE, SIZE)
    m[1:, 16:48, 16:48] = 1
    return m


def inside(n=1):
    """Latent cells under the mask, as a bool [n, 16, T, 8, 8]."""
    return (latent_loss_weights(video_mask(), (1, 16, T, CELLS, CELLS), WAN21) > 0.5).expand(n, 16, -1, -1, -1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Datasets A and B (latent + loss mask files) in a folder; the offsets c (inside) and d (outside).
    A is the base plus c inside the mask; B equals A inside and adds d outside."""
    g = torch.Generator().manual_seed(11)
    base = torch.randn(1, 16, T, CELLS, CELLS, generator=g)
    c = torch.randn(1, 16, 1, 1, 1, generator=g).sign() * 1.5
    d = torch.randn(1, 16, 1, 1, 1, generator=g).sign() * 1.5
    a = torch.where(inside(), base + c, base)       # differs from the base only inside the mask
    b = torch.where(inside(), a, a + d)             # same as A inside, different outside
    folder = tmp_path_factory.mktemp("train_data")
    for name, latent in (("A", a), ("B", b)):
        save_file({"samples": latent, "mask": video_mask()}, str(folder / f"{name}.safetensors"))
    return {"dir": folder, "c": c, "d": d}


def trainer(g, model, cond, source, masked, steps=SHORT, **settings):
    """A WanMaskTrainLoRA on ``source`` (a WanMaskTestLoad: [1] the mask, [2] the latent), fp32, rank 8;
    ``masked``: the mask is connected as loss_mask and required; ``settings`` override the masked-loss ones."""
    values = dict(gamma=1.0, min_weight=0.0, prior_preservation_weight=0.0, prior_mask_threshold=0.0,
                  normalize_per_sample=True, require_mask=masked)
    values.update(settings)
    extra = {"loss_mask": source[1]} if masked else {}
    return g.add("WanMaskTrainLoRA", model=model, latents=source[2], positive=cond, batch_size=1,
                 grad_accumulation_steps=1, steps=steps, learning_rate=LR, rank=8, optimizer="AdamW",
                 loss_function="MSE", seed=0, training_dtype="fp32", lora_dtype="fp32", algorithm="LoRA",
                 gradient_checkpointing=False, existing_lora="[None]", **NEWER_NATIVE_OPTIONS, **values, **extra)
