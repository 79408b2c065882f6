"""Small builders for API-format graphs, so that tests read like the graph a user would build."""
from __future__ import annotations

from itertools import count


class Graph:
    """An API-format prompt under construction: ``g.add("KSampler", seed=1, model=m)`` returns
    a node handle; ``node[i]`` is a link to its i-th output."""

    def __init__(self):
        self.prompt: dict = {}
        self._ids = count(1)

    def add(self, class_type: str, **inputs) -> "Node":
        nid = str(next(self._ids))
        self.prompt[nid] = {"class_type": class_type,
                            "inputs": {k: (v.link(0) if isinstance(v, Node) else v) for k, v in inputs.items()}}
        return Node(nid)


class Node:
    def __init__(self, nid: str):
        self.id = nid

    def link(self, index: int) -> list:
        return [self.id, index]

    def __getitem__(self, index: int) -> list:
        return self.link(index)


def tiny_t2v_model(g: Graph, kind: str = "t2v"):
    return g.add("UNETLoader", unet_name=f"wan_tiny_{kind}.safetensors", weight_dtype="default")


def tiny_vae(g: Graph):
    return g.add("VAELoader", vae_name="wan_tiny_vae.safetensors")


def zero_cond(g: Graph):
    return g.add("WanMaskTestZeroConditioning", tokens=8)


def ksampler(g: Graph, model, cond, latent, steps=3, seed=7, scheduler="simple", denoise=1.0):
    return g.add("KSampler", model=model, positive=cond, negative=cond, latent_image=latent, seed=seed,
                 steps=steps, cfg=1.0, sampler_name="euler", scheduler=scheduler, denoise=denoise)
