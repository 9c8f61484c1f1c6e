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


def _depsgraph(scene):
    import bpy

    if scene is None or scene == bpy.context.scene:
        return bpy.context.evaluated_depsgraph_get()
    return scene.view_layers[0].depsgraph


def _split_frame(frame) -> tuple[int, float]:
    whole = int(np.floor(frame))
    return whole, float(frame) - whole


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


def read_bone_matrices(armature_obj, frames, scene=None, depsgraph=None):
    """World-space pose matrices of every bone at every frame.

    Returns ``(matrices (frames, bones, 4, 4) float64, bone_names, lengths (bones,))``. Frames
    may be fractional (subframes). The scene's current frame is restored afterwards, even on
    error.
    """
    import bpy

    scene = scene if scene is not None else bpy.context.scene
    frames = list(frames)
    _, names, lengths = read_rest(armature_obj)  # rest lengths (PoseBone.length is the posed one)
    count = len(names)

    local = np.empty((len(frames), count * 16), np.float32)
    world = np.empty((len(frames), 4, 4), np.float64)
    before = scene.frame_current, scene.frame_subframe
    try:
        for i, frame in enumerate(frames):
            whole, sub = _split_frame(frame)
            scene.frame_set(whole, subframe=sub)
            graph = depsgraph if depsgraph is not None else _depsgraph(scene)
            evaluated = armature_obj.evaluated_get(graph)
            evaluated.pose.bones.foreach_get("matrix", local[i])
            world[i] = np.array(evaluated.matrix_world)
    finally:
        scene.frame_set(before[0], subframe=before[1])
    pose = local.reshape(len(frames), count, 4, 4).transpose(0, 1, 3, 2).astype(np.float64)
    return np.matmul(world[:, None], pose), names, lengths


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
