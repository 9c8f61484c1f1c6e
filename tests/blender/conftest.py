"""Blender tier: runs inside real Blender (the bpy module). Each test starts from an empty scene."""
import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")


@pytest.fixture
def empty_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


@pytest.fixture
def registered_scene(empty_scene):
    """The add-on registered (its properties, operators, panels) over a 2-frame demo shot."""
    import posebridge
    from posebridge.render.demo_shot import build_demo_shot

    posebridge.register()
    build_demo_shot(empty_scene, frame_count=2, resolution=(64, 64))
    yield empty_scene
    posebridge.unregister()
