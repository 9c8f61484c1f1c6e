"""Fixtures that build rigs in an empty scene (builders in ``rigs``). Use them from a test module
with ``from fixtures_rigs import *`` (they depend on conftest's ``empty_scene``)."""
import pytest

import rigs

__all__ = [
    "rigify_metarig", "rigify_generated", "mixamo_rig", "mixamo_rig_bare", "mixamo_rig_fbx",
    "animated_mixamo_rig", "cmu_walk",
]


@pytest.fixture
def rigify_metarig(empty_scene):
    return rigs.build_rigify_metarig()


@pytest.fixture
def rigify_generated(empty_scene):
    return rigs.build_rigify_generated()


@pytest.fixture
def mixamo_rig(empty_scene):
    return rigs.build_mixamo_rig("mixamo", prefix=True)


@pytest.fixture
def mixamo_rig_bare(empty_scene):
    return rigs.build_mixamo_rig("mixamo_bare", prefix=False)


@pytest.fixture
def mixamo_rig_fbx(empty_scene):
    """As an FBX import stores it: Y-up centimetre data, rotated object, odd bone rolls."""
    return rigs.build_mixamo_rig("mixamo_fbx", prefix="mixamorig1:", fbx_axes=True, roll_degrees=63.0)


@pytest.fixture
def animated_mixamo_rig(empty_scene):
    return rigs.build_animated_mixamo_rig("mixamo_walk", seconds=2.0)


@pytest.fixture
def cmu_walk(empty_scene, shared_data):
    return rigs.import_cmu_bvh(shared_data / "cmu" / "07_01.bvh", "cmu_07_01")
