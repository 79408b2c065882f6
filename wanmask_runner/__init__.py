"""Headless runner for ComfyUI workflows (UI or API format), against a server or embedded.

Python API::

    from wanmask_runner import run_workflow
    result = run_workflow("example_workflows/api/t2v_fast_motion_inpaint.json",
                          server="http://127.0.0.1:8188", overrides=["KSampler.steps=4"], out_dir="out")
    result.ok, result.files, result.node_errors

Command line: ``python -m wanmask_runner WORKFLOW [--server URL | --comfyui PATH] [--set NODE.INPUT=VALUE]... [--out DIR]``.
"""
from .locate import import_pack

import_pack()  # the pack's core (used by the demo) as comfyui_wanmasking, whichever way the runner was imported

from .api import RunResult, WorkflowError, run_workflow  # noqa: E402

__all__ = ["RunResult", "WorkflowError", "run_workflow"]
