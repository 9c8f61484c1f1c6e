"""Load the repository as the package ``posebridge``, whatever the checkout folder is called.

Inside Blender the extension is a package with a generated name and uses relative imports only;
the tests give it the stable name ``posebridge`` so they can import ``posebridge.pose...``.
"""
import atexit
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


# cli.py loads the repository as ``posebridge``; the tests use the very same loader.
sys.path.insert(0, str(REPO))
from cli import load_extension  # noqa: E402

load_extension()

try:
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # a venv set up before hypothesis was a test requirement
    pass
else:
    # In CI the property-based tests draw the same examples every run, so a red run is a
    # change's doing, not chance's; on a developer's machine they explore new ones.
    _hypothesis_settings.register_profile("ci", derandomize=True, database=None)
    if os.environ.get("CI"):
        _hypothesis_settings.load_profile("ci")


@pytest.fixture
def shared_data():
    """The real recorded data beside the repository; skips when a clone has no ../shared."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


# bpy 4.2 as a module crashes in its exit handlers once Rigify has been enabled (the demo shot
# and the Rigify fixtures enable it), which would turn a green run into exit code 139. After
# pytest has finished, leave with its own exit status and skip those handlers.
_SESSION = {}


def pytest_sessionfinish(session, exitstatus):
    _SESSION["status"] = int(exitstatus)


@atexit.register
def _exit_without_bpy_handlers():
    if "status" in _SESSION and "bpy" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_SESSION["status"])


def _backend_process():
    """tests/backend_process.py (tests/ is on sys.path only in some tiers)."""
    tests_dir = str(Path(__file__).resolve().parent)
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)
    import backend_process

    return backend_process


@pytest.fixture(scope="session")
def backend_server(tmp_path_factory):
    """One real backend process for the session (tests/backend_process.py): tiny model, CPU,
    loopback, token backend_process.TEST_TOKEN. Skips when no backend venv Python is found."""
    backend_process = _backend_process()
    if backend_process.backend_python() is None:
        pytest.skip("no backend Python (set POSEBRIDGE_BACKEND_PYTHON or create the backend venv)")
    server = backend_process.start_backend(
        tmp_path_factory.mktemp("backend-server"), token=backend_process.TEST_TOKEN
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ray_backend_server(tmp_path_factory):
    """A scaled-out backend for the session: ``serve --ray --replicas 2`` on a local Ray cluster
    (two CPU replicas, tiny model, token backend_process.TEST_TOKEN). Its replicas note their
    process ids in ``server.unit_pids`` (backend/scale/replica_service.UNIT_PIDS_ENV). Skips when
    the backend Python has no Ray."""
    backend_process = _backend_process()
    if not backend_process.has_ray():
        pytest.skip("the backend Python has no ray[serve] (backend/requirements.txt)")
    root = tmp_path_factory.mktemp("ray-backend")
    unit_pids = root / "unit-pids"
    unit_pids.mkdir()
    server = backend_process.start_backend(
        root, token=backend_process.TEST_TOKEN, extra_args=("--ray", "--replicas", "2"),
        env={"POSEBRIDGE_BACKEND_TEST_UNIT_PIDS": str(unit_pids)}, timeout=backend_process.RAY_START_TIMEOUT)
    server.unit_pids = unit_pids
    server.model_dir = backend_process.make_tiny_model(root)
    yield server
    server.stop(timeout=60)


SMALL_REQUEST_MB = 0.1  # below cam01.mp4 (0.37 MB) and a few noise frames


@pytest.fixture(scope="session")
def small_request_backend(tmp_path_factory, backend_server):
    """A second backend process like ``backend_server`` but with ``--max-request-mb``
    SMALL_REQUEST_MB: it answers 413 to any real upload (skips where ``backend_server`` does)."""
    import backend_process

    server = backend_process.start_backend(
        tmp_path_factory.mktemp("small-request-backend"), token=backend_process.TEST_TOKEN,
        extra_args=("--max-request-mb", str(SMALL_REQUEST_MB)))
    yield server
    server.stop()
