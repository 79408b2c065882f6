"""``wanmask-run batch JOBS [options]`` (also ``python -m wanmask_runner batch``): one workflow over many shots,
over many ComfyUI instances, on Dask distributed (the ``batch`` extra: pip install '.[batch]').

JOBS: a .jsonl file, one job per line: {"id": "shot010", "workflow": "wf.json", "set": {"9.file": "clips/010.mp4",
"17.seed": 10}, "out": "optional/folder"}; or a .csv file with columns id and workflow, every other column
header a NODE.INPUT override (its cells the values, as --set; an empty cell keeps the workflow's value).
Paths are relative to the JOBS file. A local file given to a file input (LoadImage, LoadVideo, ...) is
uploaded to the instance that runs the job. Outputs: OUT/<job id>/; the record: OUT/results.jsonl.
Running the same command again skips the jobs recorded done whose files are unchanged.

Batch exit codes: 0 every job done; 1 some job failed; 2 the batch was refused before anything ran (JOBS file,
overrides, files outside the working folder); 3 bad usage, no ComfyUI reachable, or the batch extra missing;
130 interrupted (Ctrl-C; what finished is recorded, the next run resumes).
"""
from __future__ import annotations

import argparse
import sys

from .workflow.errors import WorkflowFormatError


def build_batch_parser(prog: str = "wanmask-run batch") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("jobs", metavar="JOBS", help="the jobs: .jsonl (one JSON job per line) or .csv")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--server", dest="servers", action="append", default=[], metavar="URL",
                       help="a running ComfyUI; repeat for several (one job at a time on each)")
    where.add_argument("--comfyui", metavar="PATH", help="embed ComfyUI from this folder in --workers worker "
                       "processes (the default, with COMFYUI_PATH or the ComfyUI this pack is in)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="join a running Dask cluster whose workers have "
                       "the pack's preload (README: Batch and cluster runs)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="embedded mode: worker processes, each with its own ComfyUI (default 1)")
    p.add_argument("--gpus", metavar="LIST", help="embedded mode: GPUs for the workers, one each in turn, e.g. "
                   "0,1 (default: CUDA_VISIBLE_DEVICES, else the GPUs nvidia-smi lists)")
    p.add_argument("--comfy-arg", dest="comfy_args", action="append", default=[], metavar="ARG",
                   help="embedded mode: a ComfyUI command-line argument (repeatable), e.g. --comfy-arg=--cpu")
    p.add_argument("--out", default="batch_out", help="folder for the outputs and results.jsonl (default batch_out)")
    p.add_argument("--retries", type=int, default=2, metavar="N",
                   help="times a job whose ComfyUI or worker died mid-job runs again elsewhere (default 2)")
    p.add_argument("--retry-failed", action="store_true", help="run again the jobs recorded as failed")
    p.add_argument("--allow-outside", action="append", default=[], metavar="PATH",
                   help="a file or folder outside the working folder and the JOBS folder that jobs may name "
                        "(repeatable)")
    p.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS",
                   help="a job that has not finished after this long fails (default 3600)")
    p.add_argument("--name", help="the batch's name: its uploads go to ComfyUI's input/wanmask-batch-NAME/ "
                   "(default: the JOBS file's name)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def batch_main(argv, prog: str = "wanmask-run batch") -> int:
    """The batch command (``prog``: how it was started, for --help); its exit code."""
    args = build_batch_parser(prog).parse_args(argv)
    try:
        from .batch import run_batch
        from .batch_cluster import ClusterError
        from .batch_jobs import JobsError
        from .batch_records import BatchInterrupted
    except ImportError as e:
        if (e.name or "").split(".")[0] not in ("distributed", "dask", "tqdm"):
            raise
        print(f"error: batch runs need the batch extra ({e.name} is missing): pip install 'comfyui-wanmasking[batch]' "
              "(or pip install distributed tqdm)", file=sys.stderr)
        return 3
    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else None
    try:
        records = run_batch(args.jobs, servers=args.servers, comfyui=args.comfyui, workers=args.workers,
                            scheduler=args.scheduler, out_dir=args.out, retries=args.retries,
                            retry_failed=args.retry_failed, allow_outside=args.allow_outside,
                            comfy_args=args.comfy_args, gpus=gpus, timeout=args.timeout, name=args.name,
                            progress=not args.quiet)
    except (JobsError, WorkflowFormatError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BatchInterrupted as e:
        print(f"{e}; the record: {args.out}/results.jsonl", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"interrupted; what finished is recorded in {args.out}/results.jsonl", file=sys.stderr)
        return 130
    except (ClusterError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    failed = [r["id"] for r in records if r["status"] != "done"]
    print(f"{len(records) - len(failed)} of {len(records)} job(s) done; the record: {args.out}/results.jsonl")
    return 1 if failed else 0
