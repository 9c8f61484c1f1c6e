"""Backend tier: tiny random-weight models built once per session, loaded like real ones.

Runs only in the "backend" venv (torch, diffusers): tools/test.sh passes --ignore=tests/backend to
the bpy runs. Everything torch-related is imported inside the fixtures.
"""
import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """The tiny SD1.5-architecture model set written by backend.tiny_model.make_tiny_model."""
    from posebridge.backend.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def load_tiny(tiny_model, **options):
    """The tiny model from its local folders (pose and depth ControlNets), on the CPU."""
    from posebridge.backend.models import load_models

    return load_models(
        str(tiny_model.base), str(tiny_model.openpose), str(tiny_model.depth),
        device="cpu", local_files_only=True, **options,
    )


@pytest.fixture(scope="session")
def pipe(tiny_model):
    """The tiny model without adapters: the frames pipeline only."""
    return load_tiny(tiny_model)


@pytest.fixture(scope="session")
def video_models(tiny_model):
    """The tiny set with its motion adapter and IP-Adapter (both pipelines, identity)."""
    return load_tiny(
        tiny_model, motion_adapter=str(tiny_model.motion_adapter), ip_adapter=str(tiny_model.ip_adapter)
    )


@pytest.fixture(scope="session")
def tiny_wan(tmp_path_factory):
    from posebridge.backend.tiny_wan import make_tiny_wan

    return make_tiny_wan(tmp_path_factory.mktemp("tiny-wan"))


@pytest.fixture(scope="session")
def wan_models(tiny_model, tiny_wan):
    """The tiny SD1.5 set (pose ControlNet only, no IP-Adapter) with the tiny Wan VACE."""
    from posebridge.backend.models import load_models

    return load_models(str(tiny_model.base), str(tiny_model.openpose), None, device="cpu",
                       local_files_only=True, wan_model=str(tiny_wan))
