"""Start the generation backend as a real process, from any test venv (stdlib only).

The bpy venvs have no torch, so the backend always runs in the backend venv's Python, found by
``backend_python()``. The repository is put on that Python's PYTHONPATH as ``posebridge`` through
a symlink, whatever the checkout folder is called (as Blender's "start local backend" does).

    from backend_process import start_backend

    with start_backend(tmp_path, token="t") as server:
        urllib.request.urlopen(server.url + "/health")

The session fixture ``backend_server`` (tests/conftest.py) shares one such server (tiny model,
CPU, token ``backend_process.TEST_TOKEN``) and skips when no backend Python is found.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEST_TOKEN = "posebridge-test-token"
START_TIMEOUT = 120.0

# make-tiny-model runs once per test process and backend Python: (python) -> model folder.
_tiny_models: dict[str, Path] = {}
_tiny_lock = threading.Lock()


def backend_python() -> str | None:
    """The backend venv's interpreter: $POSEBRIDGE_BACKEND_PYTHON, else
    ${POSEBRIDGE_VENVS:-~/.cache/posebridge/venvs}/backend/bin/python if present, else None."""
    explicit = os.environ.get("POSEBRIDGE_BACKEND_PYTHON")
    if explicit:
        return explicit
    venvs = Path(os.environ.get("POSEBRIDGE_VENVS") or Path.home() / ".cache/posebridge/venvs")
    candidate = venvs / "backend" / "bin" / "python"
    return str(candidate) if candidate.exists() else None


def _package_path(tmp_dir: Path) -> Path:
    """A folder holding only ``posebridge -> <repo root>``: the backend process's PYTHONPATH."""
    folder = Path(tmp_dir) / "pythonpath"
    link = folder / "posebridge"
    if not link.exists():
        folder.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO, target_is_directory=True)
    return folder


def _backend_env(tmp_dir: Path, extra_env: dict | None = None) -> dict:
    env = dict(os.environ)
    # Only our package: the calling venv's own PYTHONPATH (bpy's, say) must not leak in.
    env["PYTHONPATH"] = str(_package_path(tmp_dir))
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("HF_HUB_OFFLINE", "1")  # the tiny model is local; never reach for the hub
    env.pop("PYTHONHOME", None)
    env.update(extra_env or {})
    return env


def backend_command(python: str, *args: str) -> list[str]:
    return [python, "-m", "posebridge.backend", *args]


def run_backend_command(tmp_dir, *args: str, python: str | None = None, timeout: float = 300.0):
    """Run ``python -m posebridge.backend ARGS`` to completion; return the CompletedProcess."""
    python = python or backend_python()
    if python is None:
        raise RuntimeError("no backend Python found (set POSEBRIDGE_BACKEND_PYTHON)")
    tmp_dir = Path(tmp_dir)
    return subprocess.run(
        backend_command(python, *args),
        env=_backend_env(tmp_dir),
        cwd=tmp_dir,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def make_tiny_model(tmp_dir, python: str | None = None) -> Path:
    """The tiny model set, written once per test process (by make-tiny-model) under tmp_dir."""
    python = python or backend_python()
    with _tiny_lock:
        if python in _tiny_models and _tiny_models[python].is_dir():
            return _tiny_models[python]
        directory = Path(tmp_dir) / "tiny-model"
        done = run_backend_command(tmp_dir, "make-tiny-model", str(directory), python=python)
        if done.returncode != 0:
            raise RuntimeError(f"make-tiny-model failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        _tiny_models[python] = directory
        return directory


def has_ray(python: str | None = None) -> bool:
    """Whether the backend Python can import Ray Serve (``serve --ray``)."""
    python = python or backend_python()
    if python is None:
        return False
    check = subprocess.run([python, "-c", "import ray.serve"], capture_output=True, timeout=120)
    return check.returncode == 0


RAY_START_TIMEOUT = 240.0  # a local Ray cluster, its Serve proxy, and each replica loading the models


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class BackendProcess:
    """A running backend: ``url`` (http://127.0.0.1:PORT), ``token`` (or None), ``process``
    (the Popen), ``stdout_path``/``stderr_path`` (its output files). stop() ends it politely
    (SIGTERM, then SIGKILL), kill() at once (SIGKILL, for crash tests)."""

    def __init__(self, process: subprocess.Popen, port: int, token: str | None, stdout_path, stderr_path):
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.token = token
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path

    @property
    def headers(self) -> dict:
        """The Authorization header this server wants (empty without a token)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def stderr_tail(self, chars: int = 4000) -> str:
        return _tail(self.stderr_path, chars)

    def stdout_text(self) -> str:
        return _tail(self.stdout_path, 100_000)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 20.0) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> "BackendProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until /health answers 200; raises RuntimeError (with stderr's tail) if the process
        exits or the timeout passes first."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise RuntimeError(
                    f"the backend exited (code {self.process.returncode}) before it was ready:\n"
                    + self.stderr_tail()
                )
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as exc:  # 503 while loading
                exc.close()
            except (OSError, ValueError):
                pass  # not listening yet
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"the backend was not ready after {timeout:.0f} s:\n" + self.stderr_tail())
            time.sleep(0.2)


def start_backend(
    tmp_dir,
    *,
    token: str | None = None,
    extra_args=(),
    model_dir=None,
    python: str | None = None,
    env: dict | None = None,
    timeout: float = START_TIMEOUT,
) -> BackendProcess:
    """Start ``python -m posebridge.backend serve`` on a free loopback port with the tiny model
    (made once unless ``model_dir`` is given), on the CPU, and wait until /health is 200.

    extra_args: more serve flags (e.g. ("--max-frames", "3")). env: extra environment variables
    for the process. Work files go under tmp_dir.
    """
    python = python or backend_python()
    if python is None:
        raise RuntimeError("no backend Python found (set POSEBRIDGE_BACKEND_PYTHON)")
    tmp_dir = Path(tmp_dir)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    model = Path(model_dir) if model_dir is not None else make_tiny_model(tmp_dir, python)
    last_error = None
    for attempt in range(3):  # another process may take the free port before we bind it
        port = free_port()
        run_dir = tmp_dir / f"backend-{port}-{attempt}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--model", str(model),
                "--device", "cpu", "--work-dir", str(run_dir / "work")]
        if token is not None:
            args += ["--token", token]
        args += [str(a) for a in extra_args]
        stdout_path, stderr_path = run_dir / "stdout.txt", run_dir / "stderr.txt"
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            process = subprocess.Popen(
                backend_command(python, *args),
                env=_backend_env(tmp_dir, env),
                cwd=run_dir,
                stdout=out,
                stderr=err,
            )
        server = BackendProcess(process, port, token, stdout_path, stderr_path)
        server.work_dir = run_dir / "work"
        try:
            server.wait_ready(timeout)
            return server
        except RuntimeError as exc:
            server.kill()
            last_error = exc
            if "address already in use" not in server.stderr_tail().lower():
                raise
    raise last_error
