"""Test-only nodes for the training-set tests.

* WanMaskTestFakeClip: a CLIP stand-in (the real umt5-xxl is 10 GB): each caption becomes a [1, 8, 4096]
  embedding that depends on the text, so tests can tell captions apart.
* WanMaskTestCountingVAE: the given VAE, with every encode call counted in a file.
* WanMaskTestSaveLora: writes a LORA_MODEL to a safetensors file.
* WanMaskTestSaveSet: writes every bucket of a LATENT / CONDITIONING list (samples, carried loss weights,
  names, the conditioning tensors) to one safetensors file.
"""
import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import save_file


class _FakeClip:
    def __init__(self):
        self.cond_stage_model = torch.nn.Linear(4, 4)
        torch.nn.init.constant_(self.cond_stage_model.weight, 0.5)

    def tokenize(self, text):
        return text

    def encode_from_tokens_scheduled(self, tokens):
        seed = int(hashlib.sha256(tokens.encode()).hexdigest()[:8], 16)
        return [[torch.randn(1, 8, 4096, generator=torch.Generator().manual_seed(seed)), {}]]


class WanMaskTestFakeClip:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "make"
    CATEGORY = "testing"

    def make(self):
        return (_FakeClip(),)


class _CountingVAE:
    def __init__(self, vae, path):
        self._vae, self._path = vae, Path(path)

    def __getattr__(self, name):
        return getattr(self._vae, name)

    def encode(self, pixels):
        count = int(self._path.read_text()) if self._path.exists() else 0
        self._path.write_text(str(count + 1))
        return self._vae.encode(pixels)


class WanMaskTestCountingVAE:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae": ("VAE",), "path": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("VAE",)
    FUNCTION = "wrap"
    CATEGORY = "testing"

    def wrap(self, vae, path):
        return (_CountingVAE(vae, path),)


class WanMaskTestSaveSet:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"latents": ("LATENT",), "positive": ("CONDITIONING",),
                             "path": ("STRING", {"default": ""})}}

    INPUT_IS_LIST = True
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "testing"

    def save(self, latents, positive, path):
        tensors, names = {}, []
        for b, (latent, conds) in enumerate(zip(latents, positive)):
            tensors[f"{b}.samples"] = latent["samples"].float().contiguous()
            if "wanmask_loss_weights" in latent:
                tensors[f"{b}.weights"] = latent["wanmask_loss_weights"].float().contiguous()
            for i, entry in enumerate(conds):
                tensors[f"{b}.cond.{i}"] = entry[0].float().contiguous()
            names.append(latent.get("wanmask_items", []))
        save_file(tensors, path[0], metadata={"names": json.dumps(names)})
        return {}


NODE_CLASS_MAPPINGS = {
    "WanMaskTestFakeClip": WanMaskTestFakeClip,
    "WanMaskTestCountingVAE": WanMaskTestCountingVAE,
    "WanMaskTestSaveSet": WanMaskTestSaveSet,
}


class WanMaskTestSaveLora:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"lora": ("LORA_MODEL",), "path": ("STRING", {"default": ""})}}

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "testing"

    def save(self, lora, path):
        save_file({k: v.detach().float().contiguous().cpu() for k, v in lora.items()}, path)
        return {}


NODE_CLASS_MAPPINGS["WanMaskTestSaveLora"] = WanMaskTestSaveLora
