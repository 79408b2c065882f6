"""``--set NODE.INPUT=./local/file.mp4``: a local file given to a loader is sent to the ComfyUI that
runs the workflow (``POST /upload/image`` on a server, a copy into its input folder embedded), and
the input names the sent copy.

Only inputs that take an uploaded file (a file combo with the frontend's upload button:
``image_upload``, ``video_upload``, ``audio_upload`` in ``/object_info``) and only values that name
a local file are sent. A path given on the command line is the user's explicit choice, so it may lie
anywhere; a value with a folder in it that names no file is an error before anything runs.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from .workflow.errors import WorkflowFormatError
from .workflow.overrides import override_target
from .workflow.widgets import upload_inputs

log = logging.getLogger("wanmask_runner")
SUBFOLDER = "wanmask-run"  # where sent files land in ComfyUI's input folder


def content_name(sha256_hex: str, filename: str) -> str:
    """The name a sent file gets in ComfyUI's input folder: a prefix of its content's hash, then its own
    name, so two different files of one name never collide and one file is sent under one name."""
    return f"{sha256_hex[:12]}-{filename}"


def looks_like_a_path(value) -> bool:
    return isinstance(value, str) and (any(sep in value for sep in "/\\") or Path(value).expanduser().is_file())


def send_local_files(prompt: dict, overrides: list[str], object_info_fn, backend, cwd: Path | None = None) -> list[str]:
    """Send the local files that ``overrides`` give to upload inputs, and point those inputs at the
    sent copies (named by a hash of their content, so two files of one name never collide). Returns
    one line per file sent. ``object_info_fn`` is only called when an override looks like a path."""
    targets = []
    for item in overrides:
        nid, name, value = override_target(prompt, item)
        if looks_like_a_path(value):
            targets.append((item, nid, name, value))
    if not targets:
        return []
    takes_files = upload_inputs(object_info_fn(), {prompt[nid]["class_type"] for _, nid, _, _ in targets})
    sent = []
    for item, nid, name, value in targets:
        if name not in takes_files.get(prompt[nid]["class_type"], ()):
            continue  # a path for a text input (a prefix, a folder): passed on as it is
        path = ((cwd or Path.cwd()) / Path(value).expanduser()).resolve()
        if not path.is_file():
            raise WorkflowFormatError(f"--set {item!r}: no file at {path}. Give a local file to send it to ComfyUI, "
                                      "or a bare name of a file already in ComfyUI's input folder")
        data = path.read_bytes()
        remote = backend.upload_input(SUBFOLDER, content_name(hashlib.sha256(data).hexdigest(), path.name), data)
        prompt[nid]["inputs"][name] = remote
        sent.append(f"sent {path} to ComfyUI's input folder as {remote} (node {nid} {name})")
        log.info(sent[-1])
    return sent
