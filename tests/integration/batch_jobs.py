"""Tiny batch jobs for the batch runner's tests and benchmark: one masked T2V graph on the tiny checkpoints
(mask file -> WanMaskToLatent -> KSampler, 1 step -> SaveLatent), a mask PNG per shot, and JOBS files.

A job takes well under a second on a 2-core CPU: a 32x32 single-frame latent, one sampler step, no decode;
the model loader stays cached between the jobs of one ComfyUI.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image

from comfyui_wanmasking.tests.integration.graphs import Graph, ksampler, tiny_t2v_model, zero_cond

SIZE = 32
MODEL_NODE, MASK_NODE, SEED_NODE = "1", "4", "6"


def tiny_masked_t2v(steps: int = 1, sample: bool = True) -> dict:
    """The API-format job graph; node 4 loads the shot's mask file, node 6 samples with the shot's seed, node 7
    saves the latent (without ``sample``: the masked latent, so that no model runs and a job takes a few ms)."""
    g = Graph()
    model, cond = tiny_t2v_model(g), zero_cond(g)
    latent = g.add("EmptyHunyuanLatentVideo", width=SIZE, height=SIZE, length=1, batch_size=1)
    mask = g.add("LoadImageMask", image="placeholder.png", channel="red")
    masked = g.add("WanMaskToLatent", samples=latent, mask=mask, temporal="max", spatial="max", grow=0)
    sampled = ksampler(g, model, cond, masked, steps=steps)
    g.add("SaveLatent", samples=sampled if sample else masked, filename_prefix="wanmask_batch/shot")
    assert (model.id, mask.id, sampled.id) == (MODEL_NODE, MASK_NODE, SEED_NODE), "node ids moved: update them"
    return g.prompt


def write_mask(path: Path, index: int) -> Path:
    """A distinct binary mask per shot: a box whose place and size follow ``index``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    m = torch.zeros(SIZE, SIZE, dtype=torch.uint8)
    x, w = index % 16, 8 + index % 9
    m[4:4 + w, x:x + w] = 255
    Image.fromarray(m.numpy(), "L").convert("RGB").save(path)
    return path


def write_shots(folder: Path, count: int, workflow: dict | None = None, seed0: int = 100) -> tuple[Path, list[dict]]:
    """``count`` shots in ``folder``: the workflow (``job.json``: ``workflow``, default the tiny masked T2V), a
    mask per shot under ``masks/``, and the job list (id, workflow, set) as written to ``jobs.jsonl``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "job.json"
    path.write_text(json.dumps(workflow or tiny_masked_t2v()))
    jobs = []
    for i in range(count):
        mask = write_mask(folder / "masks" / f"shot{i:03d}_mask.png", i)
        jobs.append({"id": f"shot{i:03d}", "workflow": path.name,
                     "set": {f"{MASK_NODE}.image": str(mask.relative_to(folder)), f"{SEED_NODE}.seed": seed0 + i}})
    return write_jsonl(folder / "jobs.jsonl", jobs), jobs


def write_jsonl(path: Path, jobs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    return path


def read_records(out: Path) -> dict[str, dict]:
    """OUT/results.jsonl as {job id: its last record}."""
    records = {}
    path = out / "results.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        rec = json.loads(line)
        records[rec["id"]] = rec
    return records
