"""Rewrite a real-model workflow to run on tiny random-weight checkpoints (demo and tests).

Model files become the tiny ones (by kind), text encoding becomes a zero UMT5 embedding from a
given node class, and sizes, lengths and step counts shrink. The graph's masking is untouched.
"""
from __future__ import annotations

# First match wins: "ti2v_5b" must come before "i2v", which it contains.
TINY_UNETS = (("vace", "wan_tiny_vace.safetensors"), ("animate", "wan_tiny_animate.safetensors"),
              ("ti2v_5b", "wan_tiny_wan22_5b.safetensors"), ("flf2v", "wan_tiny_flf2v.safetensors"),
              ("i2v", "wan_tiny_i2v.safetensors"))
TINY_T2V = "wan_tiny_t2v.safetensors"
TINY_VAE = "wan_tiny_vae.safetensors"
SAMPLERS = {"KSampler", "KSamplerAdvanced"}


def tiny_unet_for(name: str) -> str:
    low = name.lower()
    return next((tiny for key, tiny in TINY_UNETS if key in low), TINY_T2V)


def tiny_graph(prompt: dict, zero_cond: tuple[str, dict], size: int = 64, frames: int = 17, steps: int = 3,
               clip_vision: tuple[str, dict] | None = None) -> dict:
    """Return the prompt rewritten in place (see module docstring). ``clip_vision`` names a node that
    stands in for CLIPVisionLoader + CLIPVisionEncode (the real CLIP-H is 1.2 GB)."""
    for nid, node in list(prompt.items()):
        kind, inputs = node["class_type"], node["inputs"]
        if kind == "CLIPVisionLoader" and clip_vision is not None:
            del prompt[nid]
            continue
        if kind == "CLIPVisionEncode" and clip_vision is not None:
            prompt[nid] = {"class_type": clip_vision[0], "inputs": dict(clip_vision[1]), "_meta": node.get("_meta", {})}
            continue
        if kind == "UNETLoader":
            inputs["unet_name"] = tiny_unet_for(inputs["unet_name"])
        elif "vae_name" in inputs:
            inputs["vae_name"] = TINY_VAE
        elif kind == "CLIPLoader":
            del prompt[nid]
            continue
        elif kind == "CLIPTextEncode":
            prompt[nid] = {"class_type": zero_cond[0], "inputs": dict(zero_cond[1]), "_meta": node.get("_meta", {})}
            continue
        for key in ("width", "height"):
            if isinstance(inputs.get(key), int):
                inputs[key] = size
        if isinstance(inputs.get("length"), int):
            inputs["length"] = frames
        if kind in SAMPLERS:
            inputs["steps"] = steps
            if "end_at_step" in inputs:
                inputs["end_at_step"] = min(inputs["end_at_step"], steps)
    return prompt
