"""The built-in demo shot: a Rigify human metarig with a simple body, a few seconds of motion
(walk-in-place, a wave, a head turn, curling fingers) and a camera. Used by ``cli.py demo``, the
benchmarks and the tests, so everyone looks at the same shot.
"""
from __future__ import annotations

import math

import addon_utils
import bpy
from mathutils import Matrix, Quaternion, Vector

FPS = 24
KEY_STEP = 4  # frames between keys; Bezier interpolation smooths between them

# Bones that get a visible limb in the plain render (face and finger bones are too small).
_BODY_BONES = (
    "spine", "spine.001", "spine.002", "spine.003", "spine.004", "spine.005",
    "upper_arm.L", "forearm.L", "hand.L", "upper_arm.R", "forearm.R", "hand.R",
    "thigh.L", "shin.L", "foot.L", "thigh.R", "shin.R", "foot.R",
)


def _motion(t: float) -> dict[str, tuple[tuple[float, float, float], float]]:
    """Per bone: (armature-space axis, angle in degrees) at time ``t`` seconds."""
    step = math.sin(2 * math.pi * t)  # one stride per second
    wave = math.sin(2 * math.pi * 1.5 * t)
    X, Y, Z = (1, 0, 0), (0, 1, 0), (0, 0, 1)
    return {
        "upper_arm.L": (Y, 70 + 8 * step),
        "forearm.L": (Z, 20 + 15 * step),
        "upper_arm.R": (Y, -70 + 100 * max(0.0, min(1.0, t))),  # raise the right arm, then wave
        "forearm.R": (Y, 35 + 30 * wave),
        "hand.R": (Y, 15 * wave),
        "thigh.L": (X, 25 * step),
        "shin.L": (X, -30 * max(0.0, -step)),
        "thigh.R": (X, -25 * step),
        "shin.R": (X, -30 * max(0.0, step)),
        "spine.001": (Z, 8 * step),
        "spine.004": (Z, 25 * math.sin(2 * math.pi * 0.5 * t)),  # the neck turns the head
        "spine.005": (X, 10 * math.sin(2 * math.pi * 0.5 * t + 1)),
    }


def _finger_curl(t: float) -> float:
    return 35 + 35 * math.sin(2 * math.pi * 0.75 * t)


def _local_rotation(bone, axis, degrees: float) -> Quaternion:
    """A pose rotation turning ``bone`` about an armature-space axis (in its parent's frame)."""
    rest = bone.matrix_local.to_3x3()
    local_axis = (rest.inverted() @ Vector(axis)).normalized()
    return Quaternion(local_axis, math.radians(degrees))


def _add_metarig(scene):
    addon_utils.enable("rigify", default_set=True)  # False logs a KeyError from Rigify
    bpy.ops.object.armature_human_metarig_add()
    armature = bpy.context.object
    armature.name = "DemoCharacter"
    return armature


def _animate(armature, frame_count: int) -> None:
    bones = armature.data.bones
    pose_bones = armature.pose.bones
    fingers = [b for b in bones if b.name.startswith("f_") and b.name[-4:-2] in ("01", "02", "03")]
    for frame in range(1, frame_count + 1, KEY_STEP):
        t = (frame - 1) / FPS
        for name, (axis, degrees) in _motion(t).items():
            pose_bones[name].rotation_quaternion = _local_rotation(bones[name], axis, degrees)
            pose_bones[name].keyframe_insert("rotation_quaternion", frame=frame, group=name)
        curl = _finger_curl(t)
        for bone in fingers:
            # Mirrored rolls make local X the bending axis on both hands.
            pose_bones[bone.name].rotation_quaternion = Quaternion((1, 0, 0), math.radians(curl))
            pose_bones[bone.name].keyframe_insert("rotation_quaternion", frame=frame, group=bone.name)


def _limb_mesh():
    """A unit octagonal prism along Z from -1 to 1, shared by every limb."""
    mesh = bpy.data.meshes.new("DemoLimb")
    ring = [(math.cos(a), math.sin(a)) for a in (i * math.pi / 4 for i in range(8))]
    verts = [(x, y, z) for z in (-1.0, 1.0) for x, y in ring]
    faces = [(i, (i + 1) % 8, 8 + (i + 1) % 8, 8 + i) for i in range(8)]
    faces += [tuple(range(7, -1, -1)), tuple(range(8, 16))]
    mesh.from_pydata(verts, [], faces)
    mesh.update()
    return mesh


def _add_body(scene, armature) -> None:
    """Bone-parented limbs, so the plain render shows the character the pose map describes."""
    mesh = _limb_mesh()
    for name in _BODY_BONES:
        bone = armature.data.bones[name]
        limb = bpy.data.objects.new(f"Demo_{name}", mesh)
        scene.collection.objects.link(limb)
        limb.parent = armature
        limb.parent_type = "BONE"
        limb.parent_bone = name
        radius = 0.06 if name.startswith(("spine", "thigh")) else 0.04
        # A bone child sits at the bone's tail, Y along the bone: centre it and turn Z onto Y.
        limb.matrix_parent_inverse = Matrix.Identity(4)
        limb.matrix_basis = (
            Matrix.Translation((0, -bone.length / 2, 0))
            @ Matrix.Rotation(math.radians(-90), 4, "X")
            @ Matrix.Diagonal((radius, radius, bone.length / 2, 1))
        )
    head = armature.data.bones["spine.006"]
    skull = bpy.data.objects.new("Demo_head", mesh)
    scene.collection.objects.link(skull)
    skull.parent, skull.parent_type, skull.parent_bone = armature, "BONE", "spine.006"
    skull.matrix_basis = (
        Matrix.Translation((0, -head.length * 0.45, 0))
        @ Matrix.Rotation(math.radians(-90), 4, "X")
        @ Matrix.Diagonal((0.1, 0.12, head.length * 0.5, 1))
    )


def _add_floor(scene) -> None:
    mesh = bpy.data.meshes.new("DemoFloor")
    mesh.from_pydata([(-3, -3, 0), (3, -3, 0), (3, 3, 0), (-3, 3, 0)], [], [(0, 1, 2, 3)])
    floor = bpy.data.objects.new("DemoFloor", mesh)
    scene.collection.objects.link(floor)


def _add_camera(scene, target=(0.0, 0.0, 1.0)):
    data = bpy.data.cameras.new("DemoCamera")
    data.lens = 40
    camera = bpy.data.objects.new("DemoCamera", data)
    scene.collection.objects.link(camera)
    camera.location = (1.1, -3.2, 1.25)
    direction = Vector(target) - camera.location
    camera.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
    scene.camera = camera
    return camera


def build_demo_shot(scene=None, frame_count: int = 72, resolution=(512, 512)):
    """Fill ``scene`` (default: the current one) with the demo shot; returns (armature, camera)."""
    scene = scene or bpy.context.scene
    if bpy.context.object and bpy.context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    armature = _add_metarig(scene)
    for pose_bone in armature.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
    _animate(armature, frame_count)
    _add_body(scene, armature)
    _add_floor(scene)
    camera = _add_camera(scene)
    scene.frame_start, scene.frame_end = 1, frame_count
    scene.render.fps = FPS
    scene.render.resolution_x, scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    scene.frame_set(1)
    return armature, camera
