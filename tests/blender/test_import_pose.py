"""Keypoints -> rig in real Blender: keypoints rendered from an animated rig (the pose-map
renderer's own sampling), imported onto another armature, rendered again.

(a) same rig: every limb joint back on its pixel; (b) other proportions and other presets: the
image directions of the limbs kept, the rig's bone lengths kept in rest and in pose; (c) a new
action, bulk-written, the user's action untouched and stashed; (d) a CMU mocap clip onto a
Rigify metarig. Figures are printed (``-s``) for the notes.
"""

import bpy
import numpy as np
import pytest
from mathutils import Vector

import rigs
from posebridge.pose.keypoints import KeypointSequence
from posebridge.pose.layouts import OPENPOSE_FULL
from posebridge.render import actions, pose_maps
from posebridge.retarget.canvas import fit_into_frame
from posebridge.render.import_pose import ImportPoseError, import_pose

from limb_metrics import direction_errors

IDX = OPENPOSE_FULL.index
LIMB_JOINTS = [IDX(f"{s}_{j}") for s in "lr" for j in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")]
SIZE = (512, 512)
FRAMES = list(range(1, 74))  # the builders' three seconds of walk at 24 fps


def add_camera(scene, location, target, lens=40.0):
    data = bpy.data.cameras.new("PoseCam")
    data.lens = lens
    camera = bpy.data.objects.new("PoseCam", data)
    scene.collection.objects.link(camera)
    camera.location = location
    camera.rotation_euler = (Vector(target) - camera.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = camera
    scene.render.resolution_x, scene.render.resolution_y = SIZE
    scene.render.resolution_percentage = 100
    return camera


def keypoints(scene, name, frames, hands=True):
    job = pose_maps.plan_job(scene, None, resolution=SIZE, armature_names=[name], hands=hands, face=hands)
    return pose_maps.sample_keypoints(scene, job, frames)


def joint_errors(a: KeypointSequence, b: KeypointSequence) -> np.ndarray:
    pa, pb = a.data[:, 0], b.data[:, 0]
    seen = (pa[:, LIMB_JOINTS, 2] > 0) & (pb[:, LIMB_JOINTS, 2] > 0)
    return np.linalg.norm(pa[:, LIMB_JOINTS, :2] - pb[:, LIMB_JOINTS, :2], axis=-1)[seen]


def scale_limbs(obj, factors):
    """Change bone lengths in edit mode (not the pose): each named chain bone's tail moves along
    the bone, and everything below it moves with it."""
    rigs._select_only(obj)
    bpy.ops.object.mode_set(mode="EDIT")
    edit = obj.data.edit_bones
    heads = {b.name: b.head.copy() for b in edit}
    tails = {b.name: b.tail.copy() for b in edit}
    for side in ("L", "R"):
        for base, factor in factors.items():  # parents first
            bone = edit[base.format(side=side)]
            tail = heads[bone.name] + (tails[bone.name] - heads[bone.name]) * factor
            delta = tail - tails[bone.name]
            tails[bone.name] = tail
            for child in bone.children_recursive:
                heads[child.name] += delta
                tails[child.name] += delta
    # A connected bone's head is its parent's tail: setting one sets the other, so set heads
    # only where they are free.
    for bone in edit:
        if not bone.use_connect:
            bone.head = heads[bone.name]
        bone.tail = tails[bone.name]
    bpy.ops.object.mode_set(mode="OBJECT")


def rest_lengths(obj) -> dict:
    return {b.name: b.length for b in obj.data.bones}


def posed_lengths(obj, frames) -> np.ndarray:
    """Head-to-tail distances of every evaluated pose bone at ``frames`` (frames, bones)."""
    scene = bpy.context.scene
    out = []
    for frame in frames:
        scene.frame_set(frame)
        evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
        out.append([(b.tail - b.head).length for b in evaluated.pose.bones])
    return np.array(out)


@pytest.fixture
def walk_shot(empty_scene):
    """An animated Rigify metarig seen by a camera from the front right, and its keypoints."""
    rigs.build_animated_rigify_metarig("performer")
    camera = add_camera(empty_scene, (1.1, -3.2, 1.25), (0.0, 0.0, 1.0))
    return empty_scene, camera, keypoints(empty_scene, "performer", FRAMES)


# --- (a) the same rig ---------------------------------------------------------------------------
def test_same_rig_round_trip_puts_every_joint_back_on_its_pixel(walk_shot):
    scene, camera, observed = walk_shot
    target = rigs.build_rigify_metarig("character")
    exact = import_pose(target, observed, camera, scene, depth_smoothing=0, lift_mode="geometric")
    unsmoothed = joint_errors(observed, keypoints(scene, "character", FRAMES))
    report = import_pose(target, observed, camera, scene, lift_mode="geometric")  # default smoothing
    errors = joint_errors(observed, keypoints(scene, "character", FRAMES))
    import_pose(target, observed, camera, scene)  # the defaults: the learned lift
    learned = direction_errors(observed, keypoints(scene, "character", FRAMES))
    print(f"\n(a) same-rig round trip: mean {errors.mean():.5f} px, max {errors.max():.5f} px "
          f"over {len(FRAMES)} frames (without depth smoothing: mean {unsmoothed.mean():.5f} px, "
          f"max {unsmoothed.max():.5f} px); import {report.seconds:.3f} s; learned lift: image "
          f"directions mean {learned.mean():.5f} deg, max {learned.max():.5f} deg")
    # The learned lift reads depth from the network, so a joint lands on its pixel only as far
    # as the network's depth is right; the image direction of every limb is the video's.
    assert learned.mean() <= 2.0
    assert unsmoothed.max() < 0.01 and exact.frames == report.frames
    assert errors.size > 0.9 * len(FRAMES) * len(LIMB_JOINTS)
    assert errors.mean() <= 2.0
    assert errors.max() <= 4.0
    assert report.frames == len(FRAMES) and (report.first_frame, report.last_frame) == (1, FRAMES[-1])
    assert {"spine", "upper_arm.L", "forearm.R", "thigh.L", "shin.R", "hand.L", "spine.006"} <= set(report.bones)


# --- (b) other proportions, other presets ---------------------------------------------------------
def test_another_proportion_keeps_directions_and_bone_lengths(walk_shot):
    scene, camera, observed = walk_shot
    target = rigs.build_rigify_metarig("long_legs")
    scale_limbs(target, {"upper_arm.{side}": 0.8, "forearm.{side}": 0.8, "thigh.{side}": 1.25, "shin.{side}": 1.25})
    lengths = rest_lengths(target)
    assert lengths["thigh.L"] == pytest.approx(1.25 * rest_lengths(rigs.build_rigify_metarig("plain"))["thigh.L"])
    report = import_pose(target, observed, camera, scene)
    errors = direction_errors(observed, keypoints(scene, "long_legs", FRAMES))
    print(f"\n(b) arms 0.8x, legs 1.25x: limb direction error mean {errors.mean():.5f} deg, "
          f"max {errors.max():.5f} deg; length scales {report.length_scale}")
    assert errors.mean() <= 2.0
    # Bones never scaled: rest lengths unchanged, posed head-tail distances equal them.
    assert rest_lengths(target) == lengths
    posed = posed_lengths(target, FRAMES[::9])
    np.testing.assert_allclose(posed, np.broadcast_to(list(lengths.values()), posed.shape), rtol=1e-4, atol=1e-6)
    for bone in target.pose.bones:
        assert tuple(bone.scale) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("build", [
    lambda: rigs.build_mixamo_rig("character", prefix=True),
    # As an FBX import stores it: Y-up centimetre data, a rotated and scaled object, rolled bones.
    lambda: rigs.build_mixamo_rig("character", prefix="mixamorig1:", fbx_axes=True, roll_degrees=63.0),
], ids=["mixamo", "mixamo_fbx"])
def test_other_presets_follow_the_same_directions(walk_shot, build):
    scene, camera, observed = walk_shot
    target = build()
    import_pose(target, observed, camera, scene)
    errors = direction_errors(observed, keypoints(scene, "character", FRAMES))
    print(f"\n(b) onto {target.name} ({target.data.bones[0].name}...): direction error mean "
          f"{errors.mean():.5f} deg, max {errors.max():.5f} deg")
    assert errors.mean() <= 2.0


# --- (c) the action -------------------------------------------------------------------------------
def _snapshot(action, obj):
    return {
        (c.data_path, c.array_index): [tuple(k.co) for k in c.keyframe_points]
        for c in actions.fcurves(action, obj)
    }


def test_new_action_is_bulk_written_and_the_users_action_kept(walk_shot):
    scene, camera, observed = walk_shot
    target = rigs.build_rigify_metarig("character")
    rigs.animate(target, rigs.RIGIFY_ROLES, seconds=1.0)  # the animator's own action, Euler bones
    old = target.animation_data.action
    old_name, before = old.name, _snapshot(old, target)
    modes = {b.name: b.rotation_mode for b in target.pose.bones}

    report = import_pose(target, observed, camera, scene, start_frame=10, source_name="walk", depth_smoothing=0,
                         lift_mode="geometric")

    data = target.animation_data
    new = data.action
    assert new is not old and new.name == report.action == "character|walk"
    assert report.previous_action == old_name
    # The old action: untouched, kept on a muted stash track (saved with the file, plays nothing).
    assert bpy.data.actions.get(old_name) is old and _snapshot(old, target) == before
    track = data.nla_tracks[actions.STASH_TRACK]
    assert track.mute and track.strips[0].action is old
    assert {b.name: b.rotation_mode for b in target.pose.bones} == modes
    if actions.LAYERED:
        assert data.action_slot is not None and data.action_slot in list(new.slots)

    curves = {(c.data_path, c.array_index): c for c in actions.fcurves(new, target)}
    expected = 0
    for name in report.bones:
        path = f'pose.bones["{name}"]'
        mode = target.pose.bones[name].rotation_mode
        prop, count = {"QUATERNION": ("rotation_quaternion", 4), "AXIS_ANGLE": ("rotation_axis_angle", 4)}.get(
            mode, ("rotation_euler", 3))
        for index in range(count):
            curve = curves[(f"{path}.{prop}", index)]
            assert len(curve.keyframe_points) == len(FRAMES)
            assert curve.group.name == name
        expected += count
    assert ("thigh.L" in report.bones) and modes["thigh.L"] == "XYZ"  # Euler keys where the rig uses Euler
    assert all(('pose.bones["spine"].location', i) in curves for i in range(3))
    assert len(curves) == expected + 3
    first = curves[('pose.bones["spine"].location', 0)]
    frames = np.empty(2 * len(FRAMES), np.float32)
    first.keyframe_points.foreach_get("co", frames)
    np.testing.assert_array_equal(frames[::2], np.arange(10, 10 + len(FRAMES)))
    assert {k.interpolation for k in first.keyframe_points} == {"LINEAR"}

    # The keys reproduce the pose: frame 10 of the new action is frame 1 of the performance.
    again = keypoints(scene, "character", [10, 40])
    assert np.abs(again.data[:, 0, LIMB_JOINTS, :2] - observed.data[[0, 30], 0][:, LIMB_JOINTS, :2]).max() < 0.01


def test_bad_inputs_are_named_and_change_nothing(walk_shot):
    scene, camera, observed = walk_shot
    target = rigs.build_rigify_metarig("character")
    count = len(bpy.data.actions)
    with pytest.raises(ImportPoseError, match="armature"):
        import_pose(camera, observed, camera, scene)
    with pytest.raises(ImportPoseError, match="no person 3"):
        import_pose(target, observed, camera, scene, person=3)
    blind = KeypointSequence(observed.layout, np.zeros_like(observed.data), observed.canvas, observed.frame_numbers)
    with pytest.raises(ImportPoseError, match="shoulders and hips"):
        import_pose(target, blind, camera, scene)
    prop = bpy.data.objects.new("prop", bpy.data.armatures.new("prop"))
    scene.collection.objects.link(prop)
    with pytest.raises(ImportPoseError, match="no rig preset fits"):
        import_pose(prop, observed, camera, scene)
    assert len(bpy.data.actions) == count and target.animation_data is None


def test_a_rigify_generated_rig_is_keyed_through_its_fk_controls(walk_shot):
    """A Rigify generated rig's ORG- bones follow its controls: the lift, solved on the ORG-
    bones, is keyed on the FK controls, the limbs switched to FK, the user's action kept."""
    scene, camera, observed = walk_shot
    rig = rigs.build_rigify_generated("character")
    rigs.animate(rig, {"l_upper_arm": "upper_arm_fk.L"}, motion={"l_upper_arm": rigs.WALK["l_upper_arm"]}, seconds=1.0)
    old = rig.animation_data.action
    before = _snapshot(old, rig)
    exact = import_pose(rig, observed, camera, scene, depth_smoothing=0, lift_mode="geometric")
    unsmoothed = keypoints(scene, "character", FRAMES)
    report = import_pose(rig, observed, camera, scene, lift_mode="geometric")  # default smoothing
    again = keypoints(scene, "character", FRAMES)
    errors, directions = joint_errors(observed, again), direction_errors(observed, again)
    print(f"\n(b) onto a Rigify generated rig: mean {errors.mean():.5f} px, max {errors.max():.5f} px, "
          f"direction error mean {directions.mean():.5f} deg (without depth smoothing: max "
          f"{joint_errors(observed, unsmoothed).max():.5f} px); import {report.seconds:.3f} s")
    assert joint_errors(observed, unsmoothed).max() < 0.01
    assert errors.size > 0.9 * len(FRAMES) * len(LIMB_JOINTS)
    assert errors.mean() <= 2.0 and directions.mean() <= 2.0
    assert {"ORG-upper_arm.L", "ORG-shin.R", "ORG-f_index.02.L", "ORG-spine.006"} <= set(exact.bones)
    curves = {c.data_path for c in actions.fcurves(rig.animation_data.action, rig)}
    for control in ("upper_arm_fk.L", "forearm_fk.R", "thigh_fk.L", "shin_fk.R", "hand_fk.L", "torso", "head", "f_index.02.L"):
        mode = rig.pose.bones[control].rotation_mode  # upper_arm_fk.L: Euler, as the animator set it
        prop = "rotation_quaternion" if mode == "QUATERNION" else "rotation_euler"
        assert f'pose.bones["{control}"].{prop}' in curves
    assert not any('"ORG-' in path for path in curves)
    assert all(rig.pose.bones[b]["IK_FK"] == 1.0 for b in ("upper_arm_parent.L", "thigh_parent.R"))
    # The animator's action: untouched, stashed.
    assert report.previous_action is not None and _snapshot(old, rig) == before
    assert rig.animation_data.nla_tracks[actions.STASH_TRACK].strips[0].action is old


def test_a_larger_canvas_gives_the_same_pose(walk_shot):
    scene, camera, observed = walk_shot
    doubled = observed.data.copy()
    doubled[..., :2] = (doubled[..., :2] + 0.5) * 2.0 - 0.5
    big = KeypointSequence(observed.layout, doubled, (1024, 1024), observed.frame_numbers)
    target = rigs.build_rigify_metarig("character")
    report = import_pose(target, big, camera, scene, depth_smoothing=0, lift_mode="geometric")
    assert report.canvas_note == ""
    assert joint_errors(observed, keypoints(scene, "character", FRAMES)).max() < 0.01
    # Another shape is fitted inside, centred, and said so.
    tall = np.zeros((1, 1, len(observed.layout), 3), np.float32)
    tall[0, 0, :3] = [[0.0, 0.0, 1.0], [999.0, 1919.0, 1.0], [5.0, 5.0, 0.0]]
    fitted, fit = fit_into_frame(KeypointSequence(observed.layout, tall, (1000, 1920), [0]), SIZE)
    assert "fitted inside" in fit.describe((1000, 1920), SIZE)
    points = fitted.data[:, 0]
    np.testing.assert_allclose(points[0, 0, :2], [256 - 0.5 * 1000 * 512 / 1920 + 0.5 * 512 / 1920 - 0.5, 0.5 * 512 / 1920 - 0.5])
    assert points[0, 1, 1] == pytest.approx(511.5 - 0.5 * 512 / 1920, abs=1e-4)
    assert tuple(points[0, 2]) == (0.0, 0.0, 0.0)


def test_fixed_depth_keeps_the_rig_where_it_stands(walk_shot):
    """Depth held: the character stays at its distance from the camera (here 1 m further back
    than the performer, so it looks smaller) and still moves its limbs the video's way."""
    scene, camera, observed = walk_shot
    target = rigs.build_rigify_metarig("character", location=(0.0, 1.0, 0.0))
    bones = target.data.bones
    torso = np.mean([target.matrix_world @ bones[b].head_local for b in ("upper_arm.L", "upper_arm.R", "thigh.L", "thigh.R")], axis=0)
    distance = -(np.array(camera.matrix_world.inverted()) @ np.append(torso, 1.0))[2]
    report = import_pose(target, observed, camera, scene, depth_mode="fixed")
    np.testing.assert_allclose(report.lift.stats.torso_distance, distance, rtol=1e-6)
    assert direction_errors(observed, keypoints(scene, "character", FRAMES)).mean() <= 2.0


def test_feet_stay_on_the_ground(walk_shot):
    scene, camera, observed = walk_shot
    target = rigs.build_rigify_metarig("character")
    rest_low = min(min(b.head_local.z, b.tail_local.z) for b in target.data.bones if b.name.startswith(("foot", "toe", "heel")))
    import_pose(target, observed, camera, scene, ground=True)
    for frame in FRAMES[::12]:
        scene.frame_set(frame)
        evaluated = target.evaluated_get(bpy.context.evaluated_depsgraph_get())
        low = min(min(b.head.z, b.tail.z) for b in evaluated.pose.bones if b.name.startswith(("foot", "toe", "heel")))
        assert low == pytest.approx(rest_low, abs=1e-4)


# --- (d) motion capture onto another skeleton -------------------------------------------------------
def test_cmu_mocap_onto_a_rigify_metarig(empty_scene, shared_data):
    rigs.enable_addon("io_anim_bvh")
    # CMU's length unit is about 0.0564 m: import at human size.
    bpy.ops.import_anim.bvh(filepath=str(shared_data / "cmu" / "07_01.bvh"), global_scale=0.056444)
    bpy.context.active_object.name = "cmu"
    camera = add_camera(empty_scene, (5.0, -3.0, 1.4), (0.0, 0.0, 0.9), lens=35.0)
    frames = list(range(2, 318))  # frame 1 is the converter's T-pose
    observed = keypoints(empty_scene, "cmu", frames, hands=False)
    assert (observed.data[:, 0, LIMB_JOINTS, 2] > 0).all(), "the walk stays in view"
    target = rigs.build_rigify_metarig("character")
    report = import_pose(target, observed, camera, empty_scene, start_frame=frames[0])
    errors = direction_errors(observed, keypoints(empty_scene, "character", frames, hands=False))
    print(f"\n(d) CMU 07_01 onto a Rigify metarig: direction error mean {errors.mean():.5f} deg, "
          f"max {errors.max():.5f} deg over {len(frames)} frames; length scales {report.length_scale}")
    assert errors.mean() <= 2.0


def test_custom_mapped_rig_follows_the_same_directions(walk_shot):
    """A rig mapped by the user's custom map (saved on the object) is a target like a preset."""
    import posebridge
    from posebridge.pose import rigmap_presets
    from posebridge.render import rig_presets

    scene, camera, observed = walk_shot
    posebridge.register()
    try:
        target = rigs.build_mixamo_rig("character", prefix=False)
        settings = target.posebridge
        detected = rigmap_presets.detect([b.name for b in target.data.bones])
        for keypoint, bone, anchor in rig_presets.simple_entries(detected.rigmap):
            entry = settings.custom_map.add()
            entry.keypoint, entry.bone, entry.anchor = keypoint, bone, anchor
        settings.custom_head_bone = "Head"
        settings.preset = "CUSTOM"
        report = import_pose(target, observed, camera, scene)
        assert report.rig_map == "custom map"
        errors = direction_errors(observed, keypoints(scene, "character", FRAMES))
        assert errors.mean() <= 2.0
    finally:
        posebridge.unregister()


def test_onto_a_cmu_skeleton(walk_shot, shared_data):
    """The CMU BVH preset as the target: the metarig's walk onto the mocap skeleton."""
    scene, camera, observed = walk_shot
    rigs.enable_addon("io_anim_bvh")
    bpy.ops.import_anim.bvh(filepath=str(shared_data / "cmu" / "07_01.bvh"), global_scale=0.056444)
    target = bpy.context.active_object
    target.name = "cmu"
    report = import_pose(target, observed, camera, scene)
    assert report.rig_map == "CMU mocap (BVH import)"
    errors = direction_errors(observed, keypoints(scene, "cmu", FRAMES, hands=False))
    assert errors.mean() <= 2.0
