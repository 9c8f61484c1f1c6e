"""Blender tier: runs inside real Blender (the bpy module). Each test starts from an empty scene."""
import pytest

bpy = pytest.importorskip("bpy", reason="bpy (Blender as a Python module) is not installed")


@pytest.fixture
def empty_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene
