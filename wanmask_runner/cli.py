"""Command line: ``python -m wanmask_runner WORKFLOW [options]`` (also the ``wanmask-run`` script), and
``python -m wanmask_runner batch JOBS [options]`` for many jobs over many ComfyUI instances.

Exit codes: 0 success; 1 the run failed: execution failed, was interrupted or timed out, ComfyUI's worker
died, or output files were not written (names outside --out, or files ComfyUI no longer has; the others were);
2 the workflow was refused (validation, unknown nodes, bad --set), with ComfyUI's node errors one input per
line; 3 bad usage, or ComfyUI not reachable or not found.
"""
from __future__ import annotations

import argparse
import logging
import sys

from .api import OutputPathError, WorkflowError, run_workflow
from .backends import open_backend
from .progress import ProgressPrinter, logs_above_bar
from .workflow.errors import WorkflowFormatError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=program_name(), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workflow", help="workflow JSON: UI format (as the frontend saves it) or API format")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--server", metavar="URL", help="a running ComfyUI, e.g. http://127.0.0.1:8188")
    where.add_argument("--comfyui", metavar="PATH", help="run embedded: start ComfyUI's executor from this checkout in-process")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.INPUT=VALUE",
                   help="override an input; NODE is a node id (12:5 for node 5 inside subgraph node 12, as the "
                        "frontend numbers them), a title or a unique class type (repeatable)")
    p.add_argument("--out", default="outputs", help="folder for the workflow's output files (default: outputs)")
    p.add_argument("--comfy-arg", dest="comfy_args", action="append", default=[], metavar="ARG",
                   help="extra ComfyUI command-line argument for embedded mode (repeatable), e.g. --comfy-arg=--cpu")
    p.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS",
                   help="give up (exit 1) when the workflow has not finished after this long (default 3600)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--previews", action="store_true",
                   help="also write the preview images (ComfyUI's temp files: PreviewImage, mask previews) "
                        "under OUT/previews/; by default only the workflow's saved outputs are written")
    p.epilog = f"Many jobs over many ComfyUI instances: {program_name()} batch JOBS ... (batch --help for more)."
    return p


def program_name() -> str:
    """How the runner was started: ``python -m wanmask_runner`` or the ``wanmask-run`` script."""
    return "python -m wanmask_runner" if sys.argv[0].endswith("__main__.py") else "wanmask-run"


def use_runner_logger() -> None:
    """The runner's own messages on stderr, once: its logger gets its own handler and does not
    propagate (embedded ComfyUI puts its handler on the root logger; both would print each line)."""
    log = logging.getLogger("wanmask_runner")
    for old in [h for h in log.handlers if getattr(h, "wanmask_runner", False)]:
        log.removeHandler(old)  # bound to an earlier stderr (ComfyUI and test captures replace it)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.wanmask_runner = True
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def summary(result, out: str) -> str:
    """The last lines: each file written, then where the previews went (or that they were left out)."""
    lines = [f"wrote {f}" for f in result.files]
    videos = [f for f in result.files if str(f).lower().endswith((".mp4", ".webm", ".mov", ".mkv", ".gif"))]
    if videos:
        lines.append(f"video: {videos[0]}" + (f" (and {len(videos) - 1} more)" if len(videos) > 1 else ""))
    if result.previews_skipped:
        lines.append(f"{result.previews_skipped} preview image(s) not written (--previews writes them to "
                     f"{out}/previews/)")
    lines.append(f"done: prompt {result.prompt_id}, {len(result.files)} file(s) in {out}")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["batch"]:  # python -m wanmask_runner batch JOBS ... (a workflow named batch: ./batch)
        from .batch_cli import batch_main

        use_runner_logger()
        return batch_main(argv[1:], prog=f"{program_name()} batch")
    args = build_parser().parse_args(argv)
    use_runner_logger()
    try:
        # ComfyUI starts (embedded) before the bar, so its log handler is routed above the bar too
        backend = open_backend(server=args.server, comfyui=args.comfyui, comfy_args=args.comfy_args,
                               timeout=args.timeout)
        with logs_above_bar():
            result = run_workflow(args.workflow, backend=backend, overrides=args.overrides, out_dir=args.out,
                                  on_event=None if args.quiet else ProgressPrinter(), timeout=args.timeout,
                                  previews=args.previews)
    except OutputPathError as e:  # the run succeeded; the files with safe names were written
        for f in e.result.files:
            print(f"wrote {f}")
        print(f"\nerror: {e}", file=sys.stderr)
        return 1
    except WorkflowError as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 2 if e.result.status == "invalid" else 1
    except WorkflowFormatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TimeoutError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (OSError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except RuntimeError as e:  # e.g. ComfyUI's worker thread died (embedded mode)
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(summary(result, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
