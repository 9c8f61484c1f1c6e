"""Read an armature's evaluated bone poses from Blender in bulk, and turn them into keypoints.

The pose that counts is the *evaluated* one: constraints, IK, drivers and NLA all apply. Each
frame is set with ``scene.frame_set`` and the evaluated object's pose bones are read with one
``foreach_get`` (a C loop over every bone) instead of per-bone Python work; the world transform
is applied with numpy. Reading every bone is cheaper than picking a subset in Python, so it
reads them all.
"""
from __future__ import annotations

import numpy as np

from ..pose.rigmap import RigMap, bake, detect_preset, evaluate


def bone_names(armature_obj) -> list[str]:
    """Bone names in ``pose.bones`` order, the order of every array this module returns."""
    # A new object has no pose until the depsgraph has evaluated it once.
    bones = armature_obj.pose.bones if armature_obj.pose is not None else armature_obj.data.bones
    return [bone.name for bone in bones]


def read_rest(armature_obj) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Rest matrices (bones, 4, 4) in armature space, bone names, rest lengths (bones,), in
    ``pose.bones`` order (which ``data.bones`` usually, but not by contract, shares)."""
    bones = armature_obj.data.bones
    count = len(bones)
    flat = np.empty(count * 16, np.float32)
    bones.foreach_get("matrix_local", flat)
    lengths = np.empty(count, np.float32)
    bones.foreach_get("length", lengths)
    # foreach_get hands matrices over column by column: transpose to numpy's rows.
    rest = flat.reshape(count, 4, 4).transpose(0, 2, 1).astype(np.float64)
    data_names = [bone.name for bone in bones]
    names = bone_names(armature_obj)
    if names != data_names:
        order = {name: i for i, name in enumerate(data_names)}
        take = [order[name] for name in names]
        rest, lengths = rest[take], lengths[take]
    return rest, names, lengths.astype(np.float64)


def read_bone_matrices(armature_obj, frames, scene=None):
    """World-space pose matrices of every bone at every frame.

    Returns ``(matrices (frames, bones, 4, 4) float64, bone_names, lengths (bones,))``. Frames
    may be fractional (subframes). The scene's current frame is restored afterwards, even on
    error. (One armature's view of ``sampling.sample_frames``.)
    """
    import bpy

    from .sampling import sample_frames

    (rig,), _ = sample_frames(scene if scene is not None else bpy.context.scene, frames, [armature_obj])
    return rig.matrices, rig.bone_names, rig.lengths


def bake_for(armature_obj, rigmap: RigMap) -> RigMap:
    """``rigmap`` with its rig-frame offsets fixed for this armature's rest pose (``rigmap.bake``):
    the face template then faces the way this rig faces whatever its bone rolls, and
    ``evaluate`` needs no rest matrices. Bake again if the rig's rest pose is edited."""
    rest, names, lengths = read_rest(armature_obj)
    return bake(rigmap, names, lengths, rest)


def rig_keypoints_3d(armature_obj, rigmap: RigMap | None, frames, scene=None):
    """Keypoints (frames, points, 3) in world space and ``present`` (frames, points) for the
    OpenPose full layout. ``rigmap`` None detects the preset from the bone names (ValueError
    when none fits)."""
    rest, names, lengths = read_rest(armature_obj)
    if rigmap is None:
        rigmap = detect_preset(names)
        if rigmap is None:
            raise ValueError(f"no rig preset fits armature {armature_obj.name!r}")
    matrices, names, lengths = read_bone_matrices(armature_obj, frames, scene)
    return evaluate(rigmap, names, matrices, lengths, rest_matrices=rest)
