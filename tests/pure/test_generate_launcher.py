"""start_local_backend runs the real ``python -m posebridge.backend serve`` command from this
checkout (whose folder is not called ``posebridge``: the symlink path is what runs here)."""
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
