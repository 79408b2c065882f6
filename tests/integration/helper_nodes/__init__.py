"""Test-only ComfyUI nodes, loaded by the integration tests beside the pack (never shipped).

Every module in this folder declares NODE_CLASS_MAPPINGS; they are merged here. ``core`` has:
* WanMaskTestZeroConditioning: a zero text embedding [1, L, 4096] (no text encoder needed).
* WanMaskTestLoad: IMAGE / MASK / LATENT from a safetensors file written by the test.
* WanMaskTestSave: writes any of IMAGE / MASK / LATENT to a safetensors file for the test to read.
"""
import importlib
import pkgutil

NODE_CLASS_MAPPINGS = {}
for _info in pkgutil.iter_modules(__path__):
    NODE_CLASS_MAPPINGS.update(importlib.import_module(f"{__name__}.{_info.name}").NODE_CLASS_MAPPINGS)
