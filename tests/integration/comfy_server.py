"""A real ComfyUI server for the integration tests, on loopback, in a throw-away base directory.

The base directory gets ``custom_nodes/`` with this pack (linked under a hyphenated folder name,
as users clone it) and the test-only helper nodes, and ``models/`` with tiny generated Wan
checkpoints. ComfyUI itself is never copied or changed: it is started from ``COMFYUI_PATH``
with ``--base-directory``.
"""
from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from comfyui_wanmasking.wanmask_runner import locate

REPO = Path(__file__).resolve().parents[2]
HELPERS = Path(__file__).resolve().parent / "helper_nodes"
TINY_MODELS = REPO / "wanmask_runner" / "fixtures" / "tiny_checkpoints.py"


def find_comfyui() -> tuple[Path | None, str]:
    """ComfyUI's folder (COMFYUI_PATH, or the ComfyUI this pack is installed in), else (None, why)."""
    path, why = locate.find_comfyui()
    return path, (why + " (with its requirements installed) to run the integration tests") if why else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args, timeout=900) -> subprocess.CompletedProcess:
    """``python -m wanmask_runner ARGS`` from the repository, its output captured."""
    return subprocess.run([sys.executable, "-m", "wanmask_runner", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def start_cli(*args, stdout, stderr) -> subprocess.Popen:
    """``python -m wanmask_runner ARGS`` from the repository, started in the background (for tests that
    signal it); its output goes to the given files."""
    return subprocess.Popen([sys.executable, "-m", "wanmask_runner", *map(str, args)], cwd=REPO, stdout=stdout,
                            stderr=stderr)


COMPAT = Path(__file__).resolve().parents[2] / "nodes" / "comfy_compat"


def run_compat_in_comfyui(comfy: Path, call: str, prelude: str = ""):
    """``call`` (an expression on ``m``, the pack's compat package, e.g. ``m.self_check()``) evaluated in
    a fresh Python process of the ComfyUI tree at ``comfy``, with ComfyUI's argument parsing on as
    main.py has it and ``prelude`` run first; its JSON result. The package is loaded by path, as the
    embedded runner loads it."""
    code = ("import importlib.util, json, sys\n"
            "sys.argv = ['main.py', '--cpu']\n"
            "sys.path.insert(0, '.')\n"
            "import comfy.options; comfy.options.enable_args_parsing()\n"
            + prelude +
            f"spec = importlib.util.spec_from_file_location('wanmask_comfy_compat', {str(COMPAT / '__init__.py')!r}, "
            f"submodule_search_locations=[{str(COMPAT)!r}])\n"
            "m = importlib.util.module_from_spec(spec); sys.modules['wanmask_comfy_compat'] = m\n"
            "spec.loader.exec_module(m)\n"
            f"print('@@' + json.dumps({call}))\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=comfy, capture_output=True, text=True, timeout=300)
    line = next((ln for ln in run.stdout.splitlines() if ln.startswith("@@")), None)
    assert line, f"{call} did not run:\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    return json.loads(line[2:])


def make_tiny_models(comfy: Path, models_dir: Path) -> None:
    """Generate the tiny checkpoints once per models folder (again whenever tiny_checkpoints.py changes)."""
    stamp = hashlib.sha256(TINY_MODELS.read_bytes()).hexdigest()
    marker = models_dir / ".tiny_models_stamp"
    if marker.exists() and marker.read_text() == stamp:
        return
    models_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(TINY_MODELS), str(comfy), str(models_dir)], check=True)
    marker.write_text(stamp)


class ComfyServer:
    """A ComfyUI process and a small client for its HTTP API."""

    def __init__(self, comfy: Path, base: Path, models_cache: Path | None = None, api_nodes: bool = False,
                 extra_args: tuple[str, ...] = ()):
        self.comfy, self.base, self.api_nodes, self.extra_args = comfy, base, api_nodes, tuple(extra_args)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client_id = uuid.uuid4().hex
        (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
        for name, target in (("ComfyUI-WanMasking", REPO), ("wanmask_test_helpers", HELPERS)):
            link = base / "custom_nodes" / name
            if not link.exists():
                link.symlink_to(target, target_is_directory=True)
        models = base / "models"
        if models_cache is not None:
            make_tiny_models(comfy, models_cache)
            models.mkdir(exist_ok=True)
            if not (models / "diffusion_models").exists():
                (models / "diffusion_models").symlink_to(models_cache / "diffusion_models", target_is_directory=True)
            # vae: a folder of links, so a test can add a file of its own without touching the shared cache
            (models / "vae").mkdir(exist_ok=True)
            for file in (models_cache / "vae").iterdir():
                if file.is_file() and not (models / "vae" / file.name).exists():
                    (models / "vae" / file.name).symlink_to(file)
        else:
            make_tiny_models(comfy, models)
        self.log_path = base / "comfyui.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180.0) -> "ComfyServer":
        cmd = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--base-directory", str(self.base), "--disable-auto-launch",
               "--database-url", "sqlite:///:memory:"] + ([] if self.api_nodes else ["--disable-api-nodes"]) + list(self.extra_args)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=self.comfy, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.get("/system_stats")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise RuntimeError(f"ComfyUI did not answer within {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if getattr(self, "_log", None):
            self._log.close()

    def embedded_args(self, temp_dir: Path) -> list[str]:
        """The runner's arguments for an embedded ComfyUI on this server's base directory, with its own
        temp folder: ComfyUI empties its temp folder when it starts, and this server's cached previews
        live in the shared one."""
        return ["--comfyui", str(self.comfy), "--comfy-arg=--cpu", f"--comfy-arg=--base-directory={self.base}",
                f"--comfy-arg=--temp-directory={temp_dir}", "--comfy-arg=--database-url=sqlite:///:memory:",
                "--comfy-arg=--disable-api-nodes"]

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    # ---- HTTP --------------------------------------------------------------------------
    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def submit(self, prompt: dict) -> tuple[int, dict]:
        """POST /prompt; returns (status, body) without waiting."""
        return self.post("/prompt", {"prompt": prompt, "client_id": self.client_id})

    def run(self, prompt: dict, timeout: float = 600.0) -> dict:
        """Queue an API-format prompt and wait for its history entry.

        Raises AssertionError with ComfyUI's node errors when validation fails, and returns the
        history entry (with ``status``) otherwise; callers check ``status_str``.
        """
        code, body = self.submit(prompt)
        if code != 200:
            raise AssertionError(f"/prompt refused ({code}): {json.dumps(body, indent=1)[:4000]}")
        pid = body["prompt_id"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            hist = self.get(f"/history/{pid}")
            if pid in hist and hist[pid].get("status", {}).get("completed") is not None:
                entry = hist[pid]
                if entry["status"].get("status_str") in ("success", "error"):
                    return entry
            time.sleep(0.2)
        raise AssertionError(f"prompt {pid} did not finish in {timeout}s:\n{self.log_tail()}")

    def run_ok(self, prompt: dict, timeout: float = 600.0) -> dict:
        entry = self.run(prompt, timeout)
        if entry["status"]["status_str"] != "success":
            raise AssertionError(f"prompt failed: {execution_error(entry)}\n{self.log_tail(30)}")
        return entry


def execution_error(entry: dict) -> str:
    """The exception message of a failed history entry ('' when none)."""
    for event, data in entry.get("status", {}).get("messages", []):
        if event == "execution_error":
            return f"{data.get('node_type')}: {data.get('exception_message')}"
    return ""
