"""Start a generation backend on this machine: ``python -m posebridge.backend serve ...``.

The backend runs in its own Python (torch, diffusers), not Blender's. It imports the same
package, so that Python must find this add-on's folder as ``posebridge``. The add-on folder *is*
the package (this file is ``<addon>/generate/launcher.py``), but Blender may name it otherwise
and its parent holds other add-ons, so the process gets a private PYTHONPATH folder holding only
a symlink ``posebridge -> <addon>``. Where symlinks are not allowed (Windows without developer
mode), the add-on's parent is used when the folder is already called ``posebridge``, else the
package is copied into that private folder.

    backend = start_local_backend(python, host="127.0.0.1", port=8765, model="...")
    backend.wait_until_ready(timeout=600)   # or backend.poll_ready() from a timer
    ...
    backend.stop()
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .client import BackendClient, BackendError, BackendNotReady, BackendUnavailable

ADDON_DIR = Path(__file__).resolve().parent.parent
PACKAGE_NAME = "posebridge"
# What a copy of the package for the backend can leave out (only when symlinks are refused).
_COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "tests", "bench", "dist", "demo_out", "docs")


class BackendLaunchError(BackendError):
    """The local backend could not be started, or exited, or did not get ready."""


def _port_in_use(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _package_parent(addon_dir: Path, scratch: Path) -> Path:
    """A folder to put on PYTHONPATH in which ``posebridge`` is ``addon_dir``."""
    folder = scratch / "pythonpath"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / PACKAGE_NAME
    try:
        link.symlink_to(addon_dir, target_is_directory=True)
        return folder
    except (OSError, NotImplementedError):
        pass
    if addon_dir.name == PACKAGE_NAME:
        return addon_dir.parent  # Windows without symlinks: the add-ons folder itself
    shutil.copytree(addon_dir, link, ignore=_COPY_IGNORE)  # snapshot: restart after editing the add-on
    return folder


# The backend reads its token from here when --token is not given; a command line is readable by
# every local user (ps), the environment of another user's process is not.
TOKEN_ENV = "POSEBRIDGE_BACKEND_TOKEN"


def backend_command(python: str, *, host: str, port: int, model: str | None = None, extra_args=(),
                    parent_pid: int | None = None) -> list[str]:
    """The ``serve`` command line (docs/backend_api.md); the token goes in TOKEN_ENV instead.
    ``parent_pid``: the backend shuts down once that process has exited."""
    command = [str(python), "-m", f"{PACKAGE_NAME}.backend", "serve", "--host", str(host), "--port", str(int(port))]
    if model:
        command += ["--model", str(model)]
    if parent_pid is not None:
        command += ["--parent-pid", str(int(parent_pid))]
    return command + [str(a) for a in extra_args]


class LocalBackend:
    """A backend process this add-on started: ``url``, ``token``, ``process``, ``log_path``."""

    def __init__(self, process: subprocess.Popen, url: str, token: str | None, log_path: Path,
                 command: list[str], scratch: Path, log_handle):
        self.process = process
        self.url = url
        self.token = token
        self.log_path = log_path
        self.command = command
        self._scratch = scratch
        self._log_handle = log_handle

    def __repr__(self) -> str:
        return f"LocalBackend({self.url!r}, pid={self.process.pid}, running={self.running()})"

    def __enter__(self) -> "LocalBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def client(self, timeout: float = 30.0) -> BackendClient:
        return BackendClient(self.url, self.token, timeout=timeout)

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - chars))
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _exited_error(self) -> BackendLaunchError:
        tail = self.log_tail().strip() or "(the log is empty)"
        return BackendLaunchError(
            f"the backend exited (code {self.process.returncode}) before it was ready; "
            f"its log ({self.log_path}) ends with:\n{tail}",
            url=self.url,
        )

    def poll_ready(self) -> dict | None:
        """One quick look, for a UI timer: ``/health`` when ready, None while it is starting or
        loading; BackendLaunchError when the process exited or its models failed to load."""
        if not self.running():
            raise self._exited_error()
        try:
            health = self.client(timeout=2.0).health()
        except BackendUnavailable:
            return None  # not listening yet
        except BackendNotReady as error:
            if error.state == "error":
                raise BackendLaunchError(f"{error}\nits log ({self.log_path}) ends with:\n{self.log_tail()}",
                                         url=self.url) from None
            return None
        # Something answered: make sure it is our process and not one that held the port.
        if not self.running():
            raise self._exited_error()
        return health

    def wait_until_ready(self, timeout: float = 600.0, poll: float = 0.25) -> dict:
        """Block until ``/health`` says ready (returns it). Raises BackendLaunchError with the tail
        of the log when the process exits, or after ``timeout`` seconds (it is left running then:
        a first start may still be downloading models; ``stop()`` it if that is not wanted)."""
        deadline = time.monotonic() + timeout
        while True:
            health = self.poll_ready()
            if health is not None:
                return health
            if time.monotonic() > deadline:
                raise BackendLaunchError(
                    f"the backend at {self.url} was not ready after {timeout:g} s (still loading its models?); "
                    f"it is still running; see its log {self.log_path}",
                    url=self.url,
                )
            time.sleep(poll)

    def stop(self, timeout: float = 10.0) -> int | None:
        """End the process (terminate, then kill after ``timeout``); returns its exit code."""
        if self.running():
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)  # removes the symlink, not its target
            self._scratch = None
        return self.process.returncode


def start_local_backend(
    python,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    model: str | None = None,
    token: str | None = None,
    extra_args=(),
    log_path=None,
    env: dict | None = None,
    addon_dir=None,
) -> LocalBackend:
    """Start ``python -m posebridge.backend serve`` and return at once (see ``wait_until_ready``).

    ``log_path``: where its output goes (default: ``backend.log`` in this run's private scratch
    folder, removed by ``stop()``; pass a path to keep the log). The backend gets
    ``--parent-pid`` of this process (Blender), so it exits when Blender does, even on a crash.
    ``env``: extra environment variables. ``addon_dir``: the package folder (default: this
    add-on). Raises BackendLaunchError when the Python or the backend package is missing or the
    port is already taken (starting anyway would make us talk to whatever holds it).
    """
    python = str(python)
    if not (Path(python).is_file() or shutil.which(python)):
        raise BackendLaunchError(f"no Python at {python}: set the backend's Python (the venv with torch and diffusers)")
    addon_dir = Path(addon_dir).resolve() if addon_dir is not None else ADDON_DIR
    if not (addon_dir / "backend").is_dir():
        raise BackendLaunchError(
            f"{addon_dir} has no backend package (the Blender extension zip leaves it out): start the backend "
            "from a PoseBridge checkout with `python -m posebridge.backend serve` and connect to its URL"
        )
    url_host = f"[{host}]" if ":" in host else host
    url = f"http://{url_host}:{int(port)}"
    probe_host = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    if _port_in_use(probe_host, int(port)):
        raise BackendLaunchError(
            f"port {port} on {host} is already in use (a backend already running there? connect to {url}, "
            "or pick another port)",
            url=url,
        )
    scratch = Path(tempfile.mkdtemp(prefix="posebridge-backend-"))
    try:
        environment = dict(os.environ)
        # Only our package: Blender's own PYTHONPATH/PYTHONHOME must not leak into another Python.
        environment.pop("PYTHONHOME", None)
        environment["PYTHONPATH"] = str(_package_parent(addon_dir, scratch))
        environment["PYTHONUNBUFFERED"] = "1"  # the log shows progress as it happens
        environment.pop(TOKEN_ENV, None)  # no token asked for: none inherited from Blender's environment
        if token:
            environment[TOKEN_ENV] = str(token)
        environment.update(env or {})
        # The default lives in our mkdtemp folder (private to this user): a fixed name in the
        # shared temp folder could be another user's file, or a link planted there.
        log_path = Path(log_path) if log_path else scratch / "backend.log"
        command = backend_command(python, host=host, port=port, model=model, extra_args=extra_args,
                                  parent_pid=os.getpid())
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_handle = open(log_path, "wb")
        except OSError as error:
            raise BackendLaunchError(
                f"cannot write the backend's log {log_path}: {error.strerror or error}", url=url
            ) from None
        try:
            process = subprocess.Popen(
                command, env=environment, cwd=scratch, stdin=subprocess.DEVNULL,
                stdout=log_handle, stderr=subprocess.STDOUT,
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),  # no console window on Windows
            )
        except OSError as error:
            log_handle.close()
            raise BackendLaunchError(f"cannot start {python}: {error.strerror or error}", url=url) from None
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return LocalBackend(process, url, token, log_path, command, scratch, log_handle)
