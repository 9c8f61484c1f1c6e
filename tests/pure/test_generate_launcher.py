"""start_local_backend runs the real ``python -m posebridge.backend serve`` command from this
checkout (whose folder is not called ``posebridge``: the symlink path is what runs here)."""
import os
import socket
import sys
from pathlib import Path

import pytest

from posebridge.generate import launcher
from posebridge.generate.client import BackendAuthError, BackendClient
from posebridge.generate.launcher import BackendLaunchError, start_local_backend

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
import backend_process  # noqa: E402

OFFLINE = {"HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def backend_python():
    python = backend_process.backend_python()
    if python is None:
        pytest.skip("no backend Python (set POSEBRIDGE_BACKEND_PYTHON or create the backend venv)")
    return python


def test_launcher_starts_a_backend_with_the_real_command_and_stops_it(backend_python, tmp_path):
    model = backend_process.make_tiny_model(tmp_path, backend_python)
    port = backend_process.free_port()
    backend = start_local_backend(
        backend_python, host="127.0.0.1", port=port, model=str(model), token="launcher-secret",
        extra_args=("--device", "cpu", "--work-dir", str(tmp_path / "work")),
        log_path=tmp_path / "backend.log", env=OFFLINE,
    )
    try:
        assert backend.command[1:5] == ["-m", "posebridge.backend", "serve", "--host"]
        assert "launcher-secret" not in " ".join(backend.command)  # the token travels in the environment
        # The backend watches this process (Blender) and exits with it.
        assert backend.command[backend.command.index("--parent-pid") + 1] == str(os.getpid())
        health = backend.wait_until_ready(timeout=300)
        assert health["status"] == "ready" and backend.url == f"http://127.0.0.1:{port}"
        assert backend.client().jobs() == []  # the token reached the backend
        with pytest.raises(BackendAuthError, match="token missing"):
            BackendClient(backend.url).jobs()
        assert backend.log_tail()  # its output goes to the log
    finally:
        code = backend.stop()
    assert not backend.running() and code is not None
    assert not backend._scratch  # the private PYTHONPATH folder is gone


def test_a_backend_that_cannot_load_its_model_is_reported_with_its_log(backend_python, tmp_path):
    backend = start_local_backend(
        backend_python, port=backend_process.free_port(), model=str(tmp_path / "no-such-model"),
        extra_args=("--device", "cpu"), log_path=tmp_path / "backend.log", env=OFFLINE,
    )
    try:
        with pytest.raises(BackendLaunchError, match="no-such-model") as caught:
            backend.wait_until_ready(timeout=300)
        assert str(tmp_path / "backend.log") in str(caught.value)
    finally:
        backend.stop()


def test_launcher_refuses_a_port_already_in_use(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        with pytest.raises(BackendLaunchError, match=f"port {port} on 127.0.0.1 is already in use"):
            start_local_backend(sys.executable, port=port)


def test_launcher_names_what_is_missing(tmp_path):
    with pytest.raises(BackendLaunchError, match="no Python at"):
        start_local_backend(str(tmp_path / "python-nowhere"), port=backend_process.free_port())
    with pytest.raises(BackendLaunchError, match="has no backend package"):
        start_local_backend(sys.executable, port=backend_process.free_port(), addon_dir=tmp_path)


def test_package_folder_links_the_addon_as_posebridge(tmp_path):
    parent = launcher._package_parent(launcher.ADDON_DIR, tmp_path)
    assert (parent / "posebridge" / "generate" / "launcher.py").resolve() == Path(launcher.__file__).resolve()


def test_default_log_is_private_to_the_run(backend_python, tmp_path):
    """Not a fixed name in the shared temp folder: backend.log in the run's own mkdtemp folder."""
    backend = start_local_backend(
        backend_python, port=backend_process.free_port(), model=str(tmp_path / "no-such-model"),
        extra_args=("--device", "cpu"), env=OFFLINE,
    )
    try:
        scratch = backend._scratch
        assert backend.log_path == scratch / "backend.log" and backend.log_path.is_file()
        if os.name == "posix":
            assert scratch.stat().st_mode & 0o077 == 0  # only this user can list or write it
    finally:
        backend.stop()
    assert not backend.log_path.exists()


def test_a_log_that_cannot_be_written_is_a_launch_error_naming_it(tmp_path):
    (tmp_path / "a-file").write_text("")
    for log_path in (tmp_path, tmp_path / "a-file" / "backend.log"):  # a folder; a file as folder
        with pytest.raises(BackendLaunchError, match="cannot write the backend's log") as caught:
            start_local_backend(sys.executable, port=backend_process.free_port(), log_path=log_path)
        assert str(log_path) in str(caught.value)


def test_backend_command_passes_the_parent_pid():
    command = launcher.backend_command("py", host="127.0.0.1", port=1, parent_pid=4321, extra_args=("--x",))
    assert command[-3:] == ["--parent-pid", "4321", "--x"]
    assert "--parent-pid" not in launcher.backend_command("py", host="127.0.0.1", port=1)
