"""Rigs as they come out of other tools: tiny (near zero-length) bones, scaled and mirrored
armature objects, armatures parented to moving objects and to another rig's bone, a rig whose
mesh is deformed by two armatures, drivers that fail. Pose maps either render, with the
character where it is, or the error names the armature."""
from __future__ import annotations


import bpy
import numpy as np
import pytest

import rigs
from posebridge.render import pose_map_run, pose_maps
from posebridge.render.sampling import sample_frames

FRAMES = (1, 12, 24)


def _render(scene, tmp_path, name="mixamo"):
    job = pose_maps.plan_job(scene, output_dir=str(tmp_path), frame_start=FRAMES[0], frame_end=FRAMES[-1],
                             resolution=(160, 120), armature_names=[name])
    report = pose_map_run.render_pose_maps(scene, job, workers=0)
    seq = pose_maps.sample_keypoints(scene, job, list(FRAMES))
    return report, seq


def _tiny_bone(rig):
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    hand = rig.data.edit_bones["mixamorig:LeftHand"]
    hand.tail = hand.head + (hand.tail - hand.head).normalized() * 1e-4  # what a bad export leaves
    bpy.ops.object.mode_set(mode="OBJECT")


def _scaled(rig):
    rig.scale = (0.01, 0.01, 0.01)  # an FBX import in centimetres...
    rig.location.z = 0.0


def _mirrored(rig):
    rig.scale = (-1.0, 1.0, 1.0)


def _parented_to_a_moving_empty(rig):
    empty = bpy.data.objects.new("Carrier", None)
    bpy.context.scene.collection.objects.link(empty)
    rig.parent = empty
    empty.location = (0.0, 0.0, 0.0)
    empty.keyframe_insert("location", frame=1)
    empty.location = (1.0, 0.0, 0.0)
    empty.keyframe_insert("location", frame=24)


def _parented_to_another_rigs_bone(rig):
    carrier = rigs.build_animated_mixamo_rig("carrier", prefix="c:")
    carrier.location.x = -2.0
    bpy.context.view_layer.update()
    where = rig.matrix_world.copy()
    rig.parent = carrier
    rig.parent_type = "BONE"
    rig.parent_bone = "c:Hips"
    bpy.context.view_layer.update()
    rig.matrix_world = where  # kept in place at this frame, then carried by the walking hips


def _mesh_deformed_by_two_armatures(rig):
    other = rigs.build_mixamo_rig("other", prefix="o:")
    other.location.x = 3.0
    bpy.ops.mesh.primitive_cube_add(size=0.3, location=(0.0, 0.0, 1.0))
    body = bpy.context.active_object
    for armature in (rig, other):
        modifier = body.modifiers.new(armature.name, "ARMATURE")
        modifier.object = armature
    body.parent = rig


def _driver_that_errors(rig):
    bone = rig.pose.bones["mixamorig:Spine"]
    curve = bone.driver_add("rotation_euler", 0)
    curve.driver.expression = "no_such_name * 2 +"  # a syntax error and an unknown name


ODDITIES = {
    "tiny bone": _tiny_bone,
    "scaled 0.01": _scaled,
    "mirrored": _mirrored,
    "parented to a moving empty": _parented_to_a_moving_empty,
    "parented to another rig's bone": _parented_to_another_rigs_bone,
    "mesh deformed by two armatures": _mesh_deformed_by_two_armatures,
    "driver that errors": _driver_that_errors,
}


@pytest.mark.parametrize("oddity", list(ODDITIES))
def test_odd_rig_renders_or_is_named(empty_scene, tmp_path, oddity):
    rig = rigs.build_animated_mixamo_rig("mixamo")
    rigs.add_front_camera(empty_scene, "OddCam", distance=8.0)
    ODDITIES[oddity](rig)
    try:
        report, seq = _render(empty_scene, tmp_path)
    except pose_maps.JobError as error:
        assert "mixamo" in str(error), f"the error names the armature: {error}"
        return
    assert report.frames_written == len(range(FRAMES[0], FRAMES[-1] + 1))
    body = seq.part("body")[:, 0]  # (frames, points, 3) of the one character
    assert (body[..., 2] > 0).sum(axis=-1).min() >= 10, "the character is seen in every frame"
    # Where Blender evaluates the thigh's head (parents, constraints, drivers and all), there
    # the left hip keypoint is: the projection of the evaluated bone through the same camera.
    rigs_sampled, camera = sample_frames(empty_scene, list(FRAMES), [rig], empty_scene.camera, 160, 120)
    names = rigs_sampled[0].bone_names
    thigh = rigs_sampled[0].matrices[:, names.index("mixamorig:LeftUpLeg"), :3, 3]
    expected, _ = camera.project(thigh[:, None])
    l_hip = seq.layout.index("l_hip")
    for index, frame in enumerate(FRAMES):
        empty_scene.frame_set(frame)
        graph = bpy.context.evaluated_depsgraph_get()
        evaluated = rig.evaluated_get(graph)
        head = evaluated.matrix_world @ evaluated.pose.bones["mixamorig:LeftUpLeg"].head
        np.testing.assert_allclose(thigh[index], np.array(head), atol=1e-4)
        if body[index, l_hip, 2] > 0:
            np.testing.assert_allclose(body[index, l_hip, :2], expected[index, 0], atol=0.5)


def test_a_mirrored_rig_draws_its_left_on_the_left_of_the_image(empty_scene, tmp_path):
    """Negative scale swaps the sides the viewer sees; the keypoints follow the geometry."""
    rig = rigs.build_animated_mixamo_rig("mixamo")
    rigs.add_front_camera(empty_scene, "OddCam", distance=8.0)
    _, plain = _render(empty_scene, tmp_path / "plain")
    _mirrored(rig)
    _, mirrored = _render(empty_scene, tmp_path / "mirrored")
    left_wrist = plain.layout.index("l_wrist")
    x_plain = plain.data[0, 0, left_wrist, 0]
    x_mirrored = mirrored.data[0, 0, left_wrist, 0]
    assert (x_plain - 80) * (x_mirrored - 80) < 0, "the left wrist crossed the image's middle"
