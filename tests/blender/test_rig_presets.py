"""Presets detected on rigs built in Blender, and keypoints read from the *evaluated* pose:
constraints, IK, NLA strips and drivers move the keypoints exactly where Blender puts the bones."""
import math

import bpy
import numpy as np
import pytest
from fixtures_rigs import *  # noqa: F401,F403  (rig fixtures)
from mathutils import Euler

import rigs
from posebridge.pose import rigmap_presets
from posebridge.pose.layouts import COCO18, OPENPOSE_FULL
from posebridge.render import joints

IDX = OPENPOSE_FULL.index


def evaluated_head(obj, bone: str, frame) -> np.ndarray:
    """Where Blender itself puts a pose bone's head (world space) at ``frame``."""
    scene = bpy.context.scene
    scene.frame_set(int(frame))
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    return np.array(evaluated.matrix_world @ evaluated.pose.bones[bone].head)


def keypoints(obj, frames):
    return joints.rig_keypoints_3d(obj, None, frames, bpy.context.scene)


def detected(obj):
    return rigmap_presets.detect(joints.bone_names(obj))


# --- detection on real rigs --------------------------------------------------------------------
def test_rigify_metarig_is_detected_and_has_every_point(rigify_metarig):
    found = detected(rigify_metarig)
    assert (found.preset.id, found.prefix) == ("rigify_metarig", "")
    points, present = keypoints(rigify_metarig, [1])
    assert present.all()
    np.testing.assert_allclose(points[0, IDX("l_elbow")], evaluated_head(rigify_metarig, "forearm.L", 1), atol=1e-5)
    # Face bones, not the template: the nose tip is the end of nose.001.
    tip = np.array(rigify_metarig.matrix_world @ rigify_metarig.pose.bones["nose.001"].tail)
    np.testing.assert_allclose(points[0, IDX("nose")], tip, atol=1e-5)
    assert points[0, IDX("l_eye"), 0] > 0 > points[0, IDX("r_eye"), 0]  # person's left is +X


def test_generated_rigify_rig_follows_its_controls(rigify_generated):
    rig = rigify_generated
    found = detected(rig)
    assert (found.preset.id, found.prefix) == ("rigify_generated", "ORG-")
    before, present = keypoints(rig, [1])
    assert present.all()
    # Switch the left arm to FK and raise it: the ORG bones, and so the keypoints, follow.
    rig.pose.bones["upper_arm_parent.L"]["IK_FK"] = 1.0
    control = rig.pose.bones["upper_arm_fk.L"]
    control.rotation_mode = "XYZ"
    control.rotation_euler = (0.0, 0.0, 1.0)
    after, _ = keypoints(rig, [1])
    moved = np.linalg.norm(after[0, IDX("l_wrist")] - before[0, IDX("l_wrist")])
    assert moved > 0.1
    np.testing.assert_allclose(after[0, IDX("l_wrist")], evaluated_head(rig, "ORG-hand.L", 1), atol=1e-5)
    np.testing.assert_allclose(after[0, IDX("r_wrist")], before[0, IDX("r_wrist")], atol=1e-6)


@pytest.mark.parametrize("fixture, prefix", [("mixamo_rig", "mixamorig:"), ("mixamo_rig_bare", ""), ("mixamo_rig_fbx", "mixamorig1:")])
def test_mixamo_rigs_are_detected_with_or_without_prefix(request, fixture, prefix):
    obj = request.getfixturevalue(fixture)
    found = detected(obj)
    assert (found.preset.id, found.prefix) == ("mixamo", prefix)
    points, present = keypoints(obj, [1])
    assert present.all()
    np.testing.assert_allclose(points[0, IDX("l_wrist")], evaluated_head(obj, prefix + "LeftHand", 1), atol=1e-5)
    np.testing.assert_allclose(points[0, IDX("l_hand_index_4")], evaluated_head(obj, prefix + "LeftHandIndex4", 1), atol=1e-5)
    neck = (points[0, IDX("l_shoulder")] + points[0, IDX("r_shoulder")]) / 2
    np.testing.assert_allclose(points[0, IDX("neck")], neck, atol=1e-9)


def test_fbx_style_mixamo_gives_the_same_face_as_a_plain_one(empty_scene):
    """Y-up data, a rotated object and rolled bones change nothing in world space: the face
    template is placed from the rig's own body frame, not from bone rolls or armature axes."""
    plain = rigs.build_mixamo_rig("plain", prefix=True, eyes=False)
    fbx = rigs.build_mixamo_rig("fbx", prefix="mixamorig1:", eyes=False, fbx_axes=True, roll_degrees=63.0)
    a, _ = keypoints(plain, [1])
    b, _ = keypoints(fbx, [1])
    np.testing.assert_allclose(a, b, atol=1e-4)
    head = evaluated_head(plain, "mixamorig:Head", 1)
    nose = a[0, IDX("nose")] - head
    assert nose[1] < -0.05  # in front: the rig faces -Y
    assert a[0, IDX("face_8"), 2] < a[0, IDX("face_30"), 2] < a[0, IDX("face_27"), 2]  # chin < tip < bridge


def test_cmu_bvh_import_is_detected(cmu_walk):
    found = detected(cmu_walk)
    assert (found.preset.id, found.prefix) == ("cmu_bvh", "")
    points, present = keypoints(cmu_walk, [50, 120])
    assert present[:, [IDX(p) for p in COCO18.points]].all()
    assert present[:, IDX("l_hand_wrist")].all() and not present[:, IDX("l_hand_index_1")].any()
    assert present[:, OPENPOSE_FULL.part("face").start:].all()
    for f, frame in enumerate((50, 120)):
        for point, bone in (("l_knee", "LeftLeg"), ("r_ankle", "RightFoot"), ("l_shoulder", "LeftArm")):
            np.testing.assert_allclose(points[f, IDX(point)], evaluated_head(cmu_walk, bone, frame), atol=1e-4)
    assert not np.allclose(points[0], points[1])


def test_the_other_cmu_clip_is_detected_too(empty_scene, shared_data):
    obj = rigs.import_cmu_bvh(shared_data / "cmu" / "141_05.bvh")
    assert detected(obj).preset.id == "cmu_bvh"


# --- evaluated pose: constraints, IK, NLA, drivers ---------------------------------------------
def test_copy_rotation_constraint_moves_the_keypoint(mixamo_rig):
    before, _ = keypoints(mixamo_rig, [1])
    target = bpy.data.objects.new("target", None)
    bpy.context.scene.collection.objects.link(target)
    target.rotation_euler = Euler((0.0, 0.0, math.radians(70.0)))
    constraint = mixamo_rig.pose.bones["mixamorig:LeftArm"].constraints.new("COPY_ROTATION")
    constraint.target = target
    after, _ = keypoints(mixamo_rig, [1])
    assert np.linalg.norm(after[0, IDX("l_wrist")] - before[0, IDX("l_wrist")]) > 0.1
    np.testing.assert_allclose(after[0, IDX("l_wrist")], evaluated_head(mixamo_rig, "mixamorig:LeftHand", 1), atol=1e-5)


def test_ik_constraint_reaches_for_its_target(mixamo_rig):
    target = bpy.data.objects.new("ik_target", None)
    bpy.context.scene.collection.objects.link(target)
    target.location = (0.45, -0.2, 1.2)  # within the left arm's reach
    ik = mixamo_rig.pose.bones["mixamorig:LeftForeArm"].constraints.new("IK")
    ik.target = target
    ik.chain_count = 2
    points, _ = keypoints(mixamo_rig, [1])
    np.testing.assert_allclose(points[0, IDX("l_wrist")], evaluated_head(mixamo_rig, "mixamorig:LeftHand", 1), atol=1e-5)
    assert np.linalg.norm(points[0, IDX("l_wrist")] - np.array(target.location)) < 0.01


def test_nla_strip_animation_is_what_is_read(animated_mixamo_rig):
    obj = animated_mixamo_rig
    data = obj.animation_data
    action = data.action
    track = data.nla_tracks.new()
    track.strips.new("walk", int(action.frame_range[0]), action)
    data.action = None  # only the NLA strip animates now
    frames = [1, 7, 13]  # 0, 1/4 and 1/2 of the walk cycle
    points, _ = keypoints(obj, frames)
    for i, frame in enumerate(frames):
        np.testing.assert_allclose(points[i, IDX("l_knee")], evaluated_head(obj, "mixamorig:LeftLeg", frame), atol=1e-5)
        np.testing.assert_allclose(points[i, IDX("l_ankle")], evaluated_head(obj, "mixamorig:LeftFoot", frame), atol=1e-5)
    assert np.linalg.norm(points[0, IDX("l_ankle")] - points[2, IDX("l_ankle")]) > 0.1


def test_driver_moves_the_keypoint(mixamo_rig):
    bone = mixamo_rig.pose.bones["mixamorig:RightArm"]
    bone.rotation_mode = "XYZ"
    fcurve = bone.driver_add("rotation_euler", 0)
    fcurve.driver.type = "SCRIPTED"
    fcurve.driver.expression = "frame * 0.05"  # a simple expression: no Python auto-run needed
    frames = [1, 12]
    points, _ = keypoints(mixamo_rig, frames)
    for i, frame in enumerate(frames):
        np.testing.assert_allclose(points[i, IDX("r_wrist")], evaluated_head(mixamo_rig, "mixamorig:RightHand", frame), atol=1e-5)
    assert np.linalg.norm(points[0, IDX("r_wrist")] - points[1, IDX("r_wrist")]) > 0.1


def test_reading_restores_the_scene_frame(animated_mixamo_rig):
    scene = bpy.context.scene
    scene.frame_set(7, subframe=0.25)
    matrices, names, lengths = joints.read_bone_matrices(animated_mixamo_rig, [1, 20, 33.5], scene)
    assert matrices.shape == (3, len(animated_mixamo_rig.pose.bones), 4, 4)
    assert names == [b.name for b in animated_mixamo_rig.pose.bones]
    assert scene.frame_current == 7 and scene.frame_subframe == pytest.approx(0.25)
    # The evaluated pose is back at frame 7 too, not left at the last frame read.
    evaluated = animated_mixamo_rig.evaluated_get(bpy.context.evaluated_depsgraph_get())
    world = np.array(animated_mixamo_rig.matrix_world)
    at_7 = world @ np.array(evaluated.pose.bones[0].matrix)
    np.testing.assert_allclose(joints.read_bone_matrices(animated_mixamo_rig, [7.25], scene)[0][0, 0], at_7, atol=1e-5)


def test_matrices_match_blender_per_bone(animated_mixamo_rig):
    obj = animated_mixamo_rig
    matrices, names, lengths = joints.read_bone_matrices(obj, [13], bpy.context.scene)
    bpy.context.scene.frame_set(13)
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    for i in (0, 5, len(names) - 1):
        want = np.array(obj.matrix_world @ evaluated.pose.bones[names[i]].matrix)
        np.testing.assert_allclose(matrices[0, i], want, atol=1e-5)
        assert lengths[i] == pytest.approx(obj.data.bones[names[i]].length, rel=1e-6)


def test_no_preset_for_an_unknown_rig_is_an_error(empty_scene):
    data = bpy.data.armatures.new("plain")
    obj = bpy.data.objects.new("plain", data)
    bpy.context.scene.collection.objects.link(obj)
    assert detected(obj) is None
    with pytest.raises(ValueError, match="no rig preset"):
        joints.rig_keypoints_3d(obj, None, [1], bpy.context.scene)
