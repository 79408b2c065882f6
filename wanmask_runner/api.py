"""The runner's Python API: load a workflow, convert, override, run on a backend, save outputs."""
from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Callable

from .backends import open_backend
from .local_inputs import send_local_files
from .model_links import hints_for
from .results import OutputGone, OutputPathError, RunResult, WorkflowError
from .node_replacements import replace_then_convert
from .workflow.newer_core_nodes import refusal_hint
from .workflow.convert import is_ui_format
from .workflow.overrides import apply_overrides

log = logging.getLogger("wanmask_runner")

GONE_WHY = ("ComfyUI reused this node's cached result from an earlier prompt, and the file written then is gone "
            "(ComfyUI empties its temp folder when it starts, also when another ComfyUI shares its base directory)")

__all__ = ["OutputPathError", "RunResult", "WorkflowError", "load_workflow", "run_workflow", "to_api"]


def _parts(name: str) -> list[str] | None:
    """The components of a server-given relative path (``/`` or ``\\`` separated, ``.`` and empty
    parts dropped); None when it is absolute, has a drive, a ``..`` component or a control character."""
    if not isinstance(name, str) or any(ord(c) < 32 for c in name):
        return None
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).drive or PureWindowsPath(name).root:
        return None
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    return None if ".." in parts else parts


def _unused(path: Path) -> Path:
    """``path``, or ``stem_1.ext``, ``stem_2.ext``, ... : the first name that does not exist yet."""
    n, candidate = 0, path
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
    return candidate


def output_destination(out: Path, ref: dict) -> Path | str:
    """Where an output file of the server goes under ``out``: ``out/subfolder/filename``, keeping
    the server's subfolder. A string (the reason) when the name would leave ``out``."""
    folder, name = _parts(ref.get("subfolder") or ""), _parts(ref.get("filename"))
    if folder is None:
        return f"subfolder {ref.get('subfolder')!r} is absolute or goes up with '..'"
    if not name or len(name) != 1:
        return f"file name {ref.get('filename')!r} is not a plain file name"
    dest = out.joinpath(*folder, name[0])
    root = out.resolve()
    if root != dest.parent.resolve() and root not in dest.parent.resolve().parents:
        return f"{dest.parent} resolves to {dest.parent.resolve()}, outside {root} (a link?)"
    return dest


PREVIEWS = "previews"  # the folder under out_dir for preview (temp) files, with ``previews=True``


def save_outputs(result: "RunResult", backend, out_dir, prompt: dict | None = None, previews: bool = False) -> list[str]:
    """Write every output file of ``result`` under ``out_dir`` (appended to ``result.files``).

    Preview files (ComfyUI's type "temp": PreviewImage, the pack's mask previews) are only counted
    (``result.previews_skipped``) unless ``previews``, which writes them under ``out_dir/previews/``.

    The server's subfolder is kept; a name that exists already (from an earlier run, another
    subfolder's twin, a temp and an output file of one name) gets ``_1``, ``_2``, ... : nothing is
    overwritten. Names that would land outside ``out_dir`` are refused, and files of type "output"
    that ComfyUI lists but no longer has are missed: returns one line for each, naming the node (its
    id and, from ``prompt``, its title) and the file. A missing temp file (a preview) is skipped with
    a warning.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    refused = []
    for node_id, node_outputs in result.outputs.items():
        for key, refs in node_outputs.items() if isinstance(node_outputs, dict) else ():
            # every kind of file: images, gifs, videos, audio, latents, 3d, ...
            for ref in refs if isinstance(refs, list) else []:
                if not (isinstance(ref, dict) and isinstance(ref.get("filename"), str)):
                    continue
                if ref.get("type") == "temp" and not previews:
                    result.previews_skipped += 1
                    continue
                title = ((prompt or {}).get(node_id) or {}).get("_meta", {}).get("title")
                where = (f"node {node_id}{f' ({title!r})' if title else ''}: {key} file {ref.get('filename')!r} "
                         f"(subfolder {ref.get('subfolder', '')!r}, type {ref.get('type', 'output')!r})")
                dest = output_destination(out / PREVIEWS if ref.get("type") == "temp" else out, ref)
                if isinstance(dest, str):
                    refused.append(f"  {where}: {dest}")
                    continue
                try:
                    data = backend.read_output(ref)
                except OutputGone as e:
                    if ref.get("type") == "temp":
                        log.warning("skipped a preview that is gone: %s: %s; %s", where, e, GONE_WHY)
                    else:
                        refused.append(f"  {where}: gone from ComfyUI ({e}); {GONE_WHY}. Change an input of the "
                                       "node, or free ComfyUI's cache, and run again")
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                while True:
                    dest = _unused(dest)
                    try:
                        with open(dest, "xb") as f:  # exclusive: never replaces a file
                            f.write(data)
                        break
                    except FileExistsError:
                        continue
                result.files.append(dest)
    return refused


def node_titles(prompt: dict) -> dict:
    """node id -> its title in the workflow, else its class type (an API-format prompt)."""
    return {nid: (n.get("_meta") or {}).get("title") or n.get("class_type", "") for nid, n in prompt.items()
            if isinstance(n, dict)}


def load_workflow(path: str | os.PathLike) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def to_api(workflow: dict, object_info_fn: Callable[[], dict],
           frontend_version_fn: Callable[[], str | None] | None = None,
           replacements_fn: Callable[[], dict] | None = None) -> dict:
    """The API-format prompt of a workflow in either format (object_info, the server's frontend
    version and its node replacements are fetched only for UI format)."""
    if is_ui_format(workflow):
        return replace_then_convert(workflow, object_info_fn(), frontend_version_fn() if frontend_version_fn else None,
                                    replacements_fn() if replacements_fn else None)
    if "prompt" in workflow and isinstance(workflow["prompt"], dict):  # a saved POST body
        return workflow["prompt"]
    return workflow


def run_workflow(workflow: str | os.PathLike | dict, *, server: str | None = None, comfyui: str | None = None,
                 overrides: list[str] = (), out_dir: str | os.PathLike | None = None,
                 on_event: Callable[[str, dict], None] | None = None, backend=None,
                 comfy_args: list[str] = (), timeout: float = 3600.0, previews: bool = False) -> RunResult:
    """Run a workflow (UI or API format, a path or a dict) and write its outputs to ``out_dir``
    (preview files too, under ``out_dir/previews/``, with ``previews``).

    Exactly one of ``server`` (URL of a running ComfyUI), ``comfyui`` (path: embedded, in-process) or
    ``backend`` (an already-open backend) is used. Raises WorkflowError when validation or
    execution fails, TimeoutError when it has not finished after ``timeout`` seconds, and
    RuntimeError when embedded ComfyUI's worker thread died.
    """
    if backend is None:
        backend = open_backend(server=server, comfyui=comfyui, comfy_args=comfy_args, timeout=timeout)
    wf = load_workflow(workflow) if not isinstance(workflow, dict) else json.loads(json.dumps(workflow))
    prompt = apply_overrides(to_api(wf, backend.object_info, getattr(backend, "frontend_version", None),
                                    getattr(backend, "node_replacements", None)), list(overrides))
    send_local_files(prompt, list(overrides), backend.object_info, backend)  # --set LoadVideo.file=./clip.mp4
    prompt_id = str(uuid.uuid4())
    if on_event is not None:  # what the user calls each node, for the progress bar
        on_event("wanmask_prompt", {"prompt_id": prompt_id, "titles": node_titles(prompt)})
    result = backend.run(prompt, prompt_id=prompt_id, on_event=on_event, timeout=timeout)
    if result.ok and out_dir is not None:
        refused = save_outputs(result, backend, out_dir, prompt, previews)
        if refused:
            raise OutputPathError("the workflow ran, but these output files were not written:\n"
                                  + "\n".join(refused), result)
    if not result.ok:
        hints = hints_for(result.node_errors, result.error, wf)
        newer = refusal_hint(result.error)  # a node type of a newer ComfyUI (the loop nodes)
        if newer:
            hints = (hints or ["what to do:"]) + [newer]
        raise WorkflowError("\n".join([f"workflow {result.status}:", result.describe(), *hints]), result)
    return result
