"""Preload for the Dask workers of a cluster that runs batches (``wanmask-run batch --scheduler ADDRESS``).

On each GPU machine, one worker per GPU, each with that machine's ComfyUI::

    CUDA_VISIBLE_DEVICES=0 python -m dask worker tcp://SCHEDULER:8786 --nthreads 1 --resources comfyui=1 \\
        --preload wanmask_runner.batch_worker --wanmask-comfyui /path/to/ComfyUI

(from the pack's folder, or with the pack installed: ``--preload comfyui_wanmasking.wanmask_runner.batch_worker``;
the batch command must import the pack the same way). ``--wanmask-server URL`` points the worker at a ComfyUI
server of its machine instead of embedding one; ``--wanmask-comfy-arg ARG`` (repeatable) passes arguments to
the embedded ComfyUI.
"""
from __future__ import annotations

import click

from .batch_slots import PLUGIN, ComfySlots


@click.command()
@click.option("--wanmask-comfyui", metavar="PATH", default=None, help="embed the ComfyUI in this folder")
@click.option("--wanmask-server", metavar="URL", default=None, help="use this ComfyUI server (of this machine)")
@click.option("--wanmask-comfy-arg", metavar="ARG", multiple=True, help="an argument for the embedded ComfyUI")
@click.option("--wanmask-timeout", type=float, default=3600.0, help="seconds a job may run (default 3600)")
async def dask_setup(worker, wanmask_comfyui, wanmask_server, wanmask_comfy_arg, wanmask_timeout):
    if bool(wanmask_comfyui) == bool(wanmask_server):
        raise click.UsageError("give one of --wanmask-comfyui PATH or --wanmask-server URL")
    plugin = ComfySlots(servers=[wanmask_server] if wanmask_server else (), comfyui=wanmask_comfyui,
                        comfy_args=wanmask_comfy_arg, timeout=wanmask_timeout)
    await worker.plugin_add(plugin=plugin, name=PLUGIN)
