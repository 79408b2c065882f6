"""JOBS files for ``wanmask-run batch``: reading them (JSONL or CSV), their checks, and each job's plan.

A job is one run of a workflow with its own overrides (``NODE.INPUT=VALUE``, as ``--set``). Everything a
JOBS file can get wrong is found before anything runs and reported together, each problem naming the file
and line, what was found and the fix (:class:`JobsError`).

Paths in a JOBS file are relative to the JOBS file's folder. A file a job names (its workflow, an input
file it uploads) must lie, after ``..`` and links are followed, in the working folder (the current
directory), the JOBS file's folder, or a file or folder given with ``--allow-outside``: a JOBS file from
elsewhere cannot make the batch read, and upload, any file of the machine.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .local_inputs import content_name
from .workflow.convert import is_ui_format
from .workflow.errors import WorkflowFormatError
from .workflow.overrides import override_target, parse_value
from .workflow.widgets import declared_input_names, upload_inputs

JSONL_SUFFIXES = {".jsonl", ".ndjson"}
CSV_SUFFIXES = {".csv", ".tsv"}
JSONL_KEYS = {"id", "workflow", "set", "out"}
MAX_PROBLEMS = 20


class JobsError(ValueError):
    """The JOBS file was refused before anything ran; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = problems[:MAX_PROBLEMS]
        more = f"\n  ... and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
        super().__init__("the batch was refused before anything ran:\n" + "\n".join(f"  {p}" for p in shown) + more)


@dataclass
class Job:
    id: str
    workflow: Path          # resolved
    overrides: list[str]    # "NODE.INPUT=VALUE", as --set
    out: str                # its folder under OUT ('/'-separated, relative)
    where: str              # "jobs.csv:4", for messages
    base: Path              # the folder its relative paths start from


@dataclass
class InputFile:
    """A local file a job's override names, to upload to the instance that runs the job."""
    node: str
    input: str
    path: Path
    sha256: str

    @property
    def upload_name(self) -> str:
        """The name it gets in ComfyUI's input folder (inside the batch's subfolder): its content hash
        first, so two jobs' different files never collide and one file is uploaded once."""
        return content_name(self.sha256, self.path.name)


@dataclass
class JobPlan:
    job: Job
    prompt: dict                                   # API format, overrides applied
    files: list[InputFile] = field(default_factory=list)
    missing: str | None = None                     # why the job fails before running


class Roots:
    """Where the files a JOBS file names may lie: the working folder, the JOBS file's folder, and the
    ``--allow-outside`` paths (files or folders)."""

    def __init__(self, jobs_dir: Path, allow_outside=(), cwd: Path | None = None):
        self.cwd = (cwd or Path.cwd()).resolve()
        self.jobs_dir = jobs_dir.resolve()
        self.allowed = [Path(p).expanduser().resolve() for p in allow_outside]

    def contains(self, path: Path) -> bool:
        return any(path == root or root in path.parents for root in (self.cwd, self.jobs_dir, *self.allowed))

    def check(self, value: str, base: Path, what: str) -> Path | str:
        """The resolved path, or the refusal (naming the path, where it leads and the fix)."""
        resolved = (base / Path(value).expanduser()).resolve()
        if self.contains(resolved):
            return resolved
        return (f"{what} {value!r} resolves to {resolved}, outside the working folder {self.cwd} and the JOBS "
                f"folder {self.jobs_dir} (through '..', an absolute path or a link). If this file is meant, "
                f"allow it on the command line: --allow-outside {resolved}")


def check_name(value, what: str) -> str | None:
    """Why ``value`` cannot be a job id or one part of an ``out`` folder (None when it can)."""
    if not isinstance(value, str) or not value.strip():
        return f"{what} is missing or empty"
    if value != value.strip() or any(ord(c) < 32 for c in value) or any(c in value for c in '/\\:*?"<>|'):
        return (f"{what} {value!r} has a character a folder name cannot safely have (spaces at the ends, "
                "control characters, / \\ : * ? \" < > |)")
    if value.startswith("."):
        return f"{what} {value!r} starts with '.' (names starting with '.' are the batch's own)"
    return None


def read_jobs(path: str | os.PathLike, roots: Roots | None = None, allow_outside=()) -> list[Job]:
    """The jobs of a JOBS file (``.jsonl`` / ``.ndjson`` or ``.csv`` / ``.tsv``), checked: raises
    JobsError naming every problem (line, what was found, the fix)."""
    path = Path(path)
    if not path.is_file():
        raise JobsError([f"{path}: no such JOBS file"])
    roots = roots or Roots(path.parent, allow_outside)
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8-sig")
    if suffix in JSONL_SUFFIXES:
        items, problems = jsonl_items(text, path.name)
    elif suffix in CSV_SUFFIXES:
        items, problems = csv_items(text, path.name)
    else:
        raise JobsError([f"{path}: a JOBS file is .jsonl (one JSON job per line) or .csv (a spreadsheet export), "
                         f"not {suffix or 'a file without extension'}"])
    jobs, more = jobs_from_items(items, path.parent, roots)
    problems += more
    if problems:
        raise JobsError(problems)
    if not jobs:
        raise JobsError([f"{path}: no jobs in it"])
    return jobs


def jsonl_items(text: str, name: str) -> tuple[list[tuple[str, dict]], list[str]]:
    """(where, fields) per job line: {"id", "workflow", "set": {NODE.INPUT: value} or ["NODE.INPUT=VALUE"],
    "out"}; blank lines are skipped."""
    items, problems = [], []
    for n, line in enumerate(text.splitlines(), 1):
        where = f"{name}:{n}"
        if not line.strip():
            continue
        try:
            job = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{where}: not JSON ({e.msg} at column {e.colno}); each line is one job, "
                            'e.g. {"id": "shot010", "workflow": "wf.json", "set": {"3.seed": 1}}')
            continue
        if not isinstance(job, dict):
            problems.append(f"{where}: a job is a JSON object, found {type(job).__name__}")
            continue
        unknown = sorted(set(job) - JSONL_KEYS)
        if unknown:
            problems.append(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; a job has "
                            f"{', '.join(sorted(JSONL_KEYS))}")
            continue
        overrides = overrides_of(job.get("set", {}))
        if overrides is None:
            problems.append(f"{where}: \"set\" is an object {{\"NODE.INPUT\": value}} or a list of "
                            f"\"NODE.INPUT=VALUE\" strings, found {json.dumps(job.get('set'))[:80]}")
            continue
        items.append((where, {"id": job.get("id"), "workflow": job.get("workflow"), "set": overrides,
                              "out": job.get("out")}))
    return items, problems


def overrides_of(sets) -> list[str] | None:
    """A job's "set" as --set items: {"NODE.INPUT": value} (any JSON value) or ["NODE.INPUT=VALUE", ...];
    None when it is neither."""
    if isinstance(sets, dict):
        return [f"{k}={json.dumps(v)}" for k, v in sets.items()]
    if isinstance(sets, list) and all(isinstance(s, str) for s in sets):
        return list(sets)
    return None


def csv_items(text: str, name: str) -> tuple[list[tuple[str, dict]], list[str]]:
    """(where, fields) per row: columns id and workflow (and optionally out); every other column header is a
    NODE.INPUT override, its cell the value (as --set: JSON when it parses); an empty cell keeps the
    workflow's value."""
    first = text.split("\n", 1)[0]
    try:
        dialect = csv.Sniffer().sniff(first, delimiters=",;\t") if first else csv.excel
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(io.StringIO(text), dialect))
    if not rows:
        return [], [f"{name}: empty; the first row names the columns: id, workflow, then NODE.INPUT overrides"]
    header = [h.strip() for h in rows[0]]
    problems = []
    lower = [h.lower() for h in header]
    for needed in ("id", "workflow"):
        if needed not in lower:
            problems.append(f"{name}:1: no {needed!r} column (found {', '.join(map(repr, header))}); the first "
                            "row names the columns: id, workflow, then NODE.INPUT overrides such as 3.seed")
    for i, h in enumerate(header):
        if not h:
            problems.append(f"{name}:1: column {i + 1} has no header; name it NODE.INPUT (e.g. KSampler.seed) "
                            "or delete the column")
        elif lower.count(h.lower()) > 1 and lower.index(h.lower()) == i:
            problems.append(f"{name}:1: column {h!r} appears {lower.count(h.lower())} times; keep one")
        elif h.lower() not in ("id", "workflow", "out") and "." not in h:
            problems.append(f"{name}:1: column {h!r} is not NODE.INPUT (e.g. KSampler.seed or 12.image)")
    if problems:
        return [], problems
    items = []
    for n, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            problems.append(f"{name}:{n}: {len(row)} cells for {len(header)} columns (a comma inside a value "
                            "needs quotes)")
            continue
        cells = dict(zip(lower, row + [""] * (len(header) - len(row))))
        fields = {"id": cells["id"].strip(), "workflow": cells["workflow"].strip(), "out": cells.get("out") or None,
                  "set": [f"{h}={row[i]}" for i, h in enumerate(header)
                          if h.lower() not in ("id", "workflow", "out") and i < len(row) and row[i] != ""]}
        items.append((f"{name}:{n}", fields))
    return items, problems


def jobs_from_items(items: list[tuple[str, dict]], base: Path, roots: Roots) -> tuple[list[Job], list[str]]:
    """Jobs from (where, fields) pairs: ids and out folders checked and unique (also without regard to
    case, as on Windows and macOS disks), workflows found inside the roots."""
    jobs, problems, seen_ids, seen_out = [], [], {}, {}
    for where, f in items:
        bad = check_name(f["id"], "job id")
        out = f.get("out") if f.get("out") not in (None, "") else f["id"]
        parts = out.replace("\\", "/").split("/") if isinstance(out, str) else [None]
        bad = bad or next((b for b in (check_name(p, "out folder part") for p in parts) if b), None)
        if bad:
            problems.append(f"{where}: {bad}")
            continue
        if f["id"] in seen_ids:
            problems.append(f"{where}: job id {f['id']!r} again (first at {seen_ids[f['id']]}); ids must be unique")
            continue
        key = "/".join(parts).lower()
        if key in seen_out:
            problems.append(f"{where}: job {f['id']!r} writes to {'/'.join(parts)!r}, as the job at {seen_out[key]} "
                            "does (folder names are compared without case); give it another id or out")
            continue
        seen_ids[f["id"]], seen_out[key] = where, where
        wf = f.get("workflow")
        if not isinstance(wf, str) or not wf.strip():
            problems.append(f"{where}: job {f['id']!r} has no workflow")
            continue
        resolved = roots.check(wf, base, "workflow")
        if isinstance(resolved, str):
            problems.append(f"{where}: {resolved}")
            continue
        if not resolved.is_file():
            problems.append(f"{where}: workflow {wf!r} not found (looked at {resolved}); paths are relative to the "
                            f"JOBS file's folder {base.resolve()}")
            continue
        jobs.append(Job(f["id"], resolved, list(f["set"]), "/".join(parts), where, base.resolve()))
    return jobs, problems


def load_workflows(jobs: list[Job]) -> tuple[dict[Path, dict], list[str]]:
    """Each distinct workflow file of the jobs, parsed once."""
    docs, problems = {}, []
    for job in jobs:
        if job.workflow in docs:
            continue
        try:
            docs[job.workflow] = json.loads(job.workflow.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            problems.append(f"{job.where}: workflow {job.workflow} is not a JSON workflow ({e})")
    return docs, problems


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def plan_jobs(jobs: list[Job], prompts: dict[Path, dict], object_info: dict, roots: Roots) -> list[JobPlan]:
    """Each job's prompt with its overrides, and its local input files. Raises JobsError for overrides that
    name no node or an input the node does not have, and for files outside the roots (a problem shared by
    many rows, as a bad CSV column, is named once with the count); a missing input file fails only its
    job (``missing``)."""
    uploads = upload_inputs(object_info, {n["class_type"] for p in prompts.values() for n in p.values()})
    plans, problems, hashes = [], {}, {}
    for job in jobs:
        prompt = json.loads(json.dumps(prompts[job.workflow]))
        plan = JobPlan(job, prompt)
        for item in job.overrides:
            target = item.partition("=")[0]
            try:
                nid, name, value = override_target(prompt, item)
                node = prompt[nid]
                info = object_info.get(node["class_type"])
                if info is not None and name not in node["inputs"] and \
                        name not in declared_input_names(info, {**node["inputs"], name: value}):
                    known = ", ".join(sorted(declared_input_names(info, node["inputs"])))
                    raise WorkflowFormatError(f"{target}: node {nid} ({node['class_type']}) has no input {name!r} "
                                              f"(its inputs: {known})")
            except WorkflowFormatError as e:
                problems.setdefault((job.workflow, target), [f"job {job.id!r}: {e}", []])[1].append(job.where)
                continue
            node["inputs"][name] = value
            if not (isinstance(value, str) and name in uploads.get(node["class_type"], ())):
                continue
            what = f"input file for {nid}.{name}"
            resolved = roots.check(value, job.base, what)
            if isinstance(resolved, str):
                problems[(job.id, target)] = [f"job {job.id!r}: {resolved}", [job.where]]
            elif resolved.is_file():
                if resolved not in hashes:
                    hashes[resolved] = sha256_file(resolved)
                plan.files.append(InputFile(nid, name, resolved, hashes[resolved]))
            elif any(sep in value for sep in "/\\") or Path(value).is_absolute():
                plan.missing = plan.missing or (f"{what} {value!r} not found (looked at {resolved}); a bare file "
                                                "name not found here is taken from ComfyUI's input folder")
        plans.append(plan)
    if problems:
        raise JobsError([f"{wheres[0]}{f' (and {len(wheres) - 1} more jobs)' if len(wheres) > 1 else ''}: {msg}"
                         for msg, wheres in problems.values()])
    return plans


def api_prompts(docs: dict[Path, dict]) -> dict[Path, dict]:
    """The workflows already in API format (a saved POST body's prompt too); UI-format ones are left out."""
    out = {}
    for path, doc in docs.items():
        if is_ui_format(doc):
            continue
        out[path] = doc["prompt"] if isinstance(doc.get("prompt"), dict) else doc
    return out


def job_spec(job: Job) -> str:
    """A hash of what defines a job's result: its workflow file, its overrides and the content of every local
    file an override names. A job recorded done with another spec is run again."""
    h = hashlib.sha256(job.workflow.read_bytes())
    h.update(json.dumps(job.overrides).encode())
    for item in job.overrides:
        value = parse_value(item.partition("=")[2])
        try:
            candidate = (job.base / Path(value).expanduser()).resolve() if isinstance(value, str) and value else None
            if candidate is not None and candidate.is_file():
                h.update(sha256_file(candidate).encode())
        except (OSError, ValueError):
            continue
    return h.hexdigest()
