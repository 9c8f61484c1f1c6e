"""Load the repository as the package ``posebridge``, whatever the checkout folder is called.

Inside Blender the extension is a package with a generated name and uses relative imports only;
the tests give it the stable name ``posebridge`` so they can import ``posebridge.pose...``.
"""
import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def _load_package():
    if "posebridge" in sys.modules:
        return sys.modules["posebridge"]
    spec = importlib.util.spec_from_file_location(
        "posebridge", REPO / "__init__.py", submodule_search_locations=[str(REPO)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["posebridge"] = module
    spec.loader.exec_module(module)
    return module


_load_package()


@pytest.fixture
def shared_data():
    """The real recorded data beside the repository; skips when a clone has no ../shared."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA
