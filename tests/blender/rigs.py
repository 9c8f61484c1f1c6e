"""Rig builders for Blender tests and demos: plain functions, each returns the armature object
linked to the current scene.

- ``build_rigify_metarig()``: Rigify's human metarig (body, fingers, face bones).
- ``build_rigify_generated()``: the rig Rigify generates from it (ORG-/DEF-/MCH- bones). Both
  come from a child process that runs Rigify once (see below); later calls append copies.
- ``build_mixamo_rig(name, prefix=True)``: Mixamo's skeleton (``mixamorig:`` names or bare), built
  from edit bones at human proportions; ``fbx_axes=True`` stores it as an FBX import does (Y-up
  centimetre armature data, object rotated 90 degrees and scaled 0.01).
- ``import_cmu_bvh(path)``: a CMU BVH clip through Blender's BVH importer.
- ``animate(obj, motion)`` / ``build_animated_mixamo_rig`` / ``build_animated_rigify_metarig``:
  a few seconds of keyframed motion (walk-like swings of arms and legs, a head turn, a finger curl).
"""
from __future__ import annotations

import atexit
import math
import os
import shutil
import subprocess
import sys
import tempfile

import addon_utils
import bpy

# --- Rigify ----------------------------------------------------------------------------------
# Rigify runs in a child Python, which saves the metarig and the rig generated from it to a
# temporary .blend; builders append copies from it. Two reasons: generating takes seconds (done
# once per process), and bpy 4.2 as a module crashes in its exit handlers (SIGSEGV in
# bpy_class_free) once Rigify has been enabled, even after disabling it, which would turn a
# green test run into exit code 139. The child leaves with os._exit to skip those handlers.
_RIGIFY_CHILD = r"""
import os, sys
import bpy
import addon_utils  # importable once bpy has set up its module path
bpy.ops.wm.read_factory_settings(use_empty=True)
addon_utils.enable("rigify", default_set=True)
bpy.ops.object.armature_human_metarig_add()
metarig = bpy.context.active_object
metarig.name = "metarig"
keep = {metarig}
if sys.argv[-1] == "generate":
    bpy.ops.pose.rigify_generate()
    rig = metarig.data.rigify_target_rig
    rig.name = "rig"
    keep.add(rig)
bpy.data.libraries.write(sys.argv[-2], keep, fake_user=True)
sys.stdout.flush()
os._exit(0)
"""
_RIGIFY_FILE: dict[str, str] = {}


def enable_addon(module: str) -> None:
    """Enable a bundled add-on (the BVH importer) if it is not already."""
    # default_set=True: some add-ons need their preferences entry to register. Resetting to
    # factory settings (as the tests do) drops it, so check the preferences, not the module.
    if module not in bpy.context.preferences.addons:
        addon_utils.enable(module, default_set=True)


def _select_only(obj) -> None:
    for other in bpy.context.view_layer.objects:
        other.select_set(False)
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj


def _rigify_file(generate: bool) -> str:
    """The child's .blend: the metarig, and with ``generate`` the generated rig too (slower)."""
    kind = "generate" if generate else "metarig"
    path = _RIGIFY_FILE.get(kind)
    if path is None or not os.path.exists(path):
        folder = tempfile.mkdtemp(prefix="posebridge-rigify-")
        atexit.register(shutil.rmtree, folder, True)
        path = os.path.join(folder, f"rigify_{kind}.blend")
        done = subprocess.run(
            [sys.executable, "-c", _RIGIFY_CHILD, path, kind], capture_output=True, text=True, timeout=600
        )
        if done.returncode != 0 or not os.path.exists(path):
            raise RuntimeError(f"Rigify child failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
        _RIGIFY_FILE[kind] = path
    return path


def _append_object(path: str, source_name: str, name: str):
    with bpy.data.libraries.load(path, link=False) as (source, target):
        target.objects = [source_name]
    obj = target.objects[0]
    obj.use_fake_user = False
    bpy.context.scene.collection.objects.link(obj)
    obj.name = name
    _select_only(obj)
    return obj


def build_rigify_metarig(name: str = "metarig", location=(0.0, 0.0, 0.0)):
    """Rigify's human metarig (``armature_human_metarig_add``): body, fingers and face bones."""
    # Not from the "generate" file: there the metarig points at the generated rig, and
    # appending it would drag the rig along.
    obj = _append_object(_rigify_file(generate=False), "metarig", name)
    obj.location = location
    return obj


def build_rigify_generated(name: str = "rig"):
    """The rig ``rigify_generate`` makes from the human metarig (ORG-/DEF-/MCH- and controls)."""
    return _append_object(_rigify_file(generate=True), "rig", name)


# --- Mixamo ----------------------------------------------------------------------------------
# Joint positions (metres) of a 1.78 m character in Blender's frame: facing -Y, up +Z, the
# character's left at +X; T-pose. Each entry: bone -> (parent, head). A bone's tail is its first
# child's head; end bones get a short tail along their parent's direction.
def _mixamo_joints() -> dict[str, tuple[str | None, tuple[float, float, float]]]:
    j: dict[str, tuple[str | None, tuple[float, float, float]]] = {
        "Hips": (None, (0.0, 0.0, 1.00)),
        "Spine": ("Hips", (0.0, -0.005, 1.10)),
        "Spine1": ("Spine", (0.0, -0.01, 1.22)),
        "Spine2": ("Spine1", (0.0, -0.01, 1.34)),
        "Neck": ("Spine2", (0.0, 0.0, 1.50)),
        "Head": ("Neck", (0.0, -0.01, 1.60)),
        "HeadTop_End": ("Head", (0.0, -0.01, 1.78)),
        "LeftEye": ("Head", (0.031, -0.095, 1.67)),
        "RightEye": ("Head", (-0.031, -0.095, 1.67)),
    }
    for side, s in (("Left", 1.0), ("Right", -1.0)):
        j[f"{side}Shoulder"] = ("Spine2", (s * 0.06, 0.0, 1.45))
        j[f"{side}Arm"] = (f"{side}Shoulder", (s * 0.18, 0.01, 1.45))
        j[f"{side}ForeArm"] = (f"{side}Arm", (s * 0.45, 0.02, 1.45))
        j[f"{side}Hand"] = (f"{side}ForeArm", (s * 0.70, 0.0, 1.45))
        fingers = {
            "Thumb": ((0.72, -0.025, 1.435), (0.75, -0.045, 1.43), (0.775, -0.06, 1.43), (0.80, -0.07, 1.43)),
            "Index": ((0.79, -0.025, 1.45), (0.835, -0.027, 1.45), (0.86, -0.028, 1.45), (0.88, -0.028, 1.45)),
            "Middle": ((0.795, -0.003, 1.45), (0.845, -0.003, 1.45), (0.873, -0.003, 1.45), (0.895, -0.003, 1.45)),
            "Ring": ((0.79, 0.018, 1.45), (0.835, 0.018, 1.45), (0.86, 0.018, 1.45), (0.88, 0.018, 1.45)),
            "Pinky": ((0.78, 0.037, 1.447), (0.815, 0.037, 1.447), (0.835, 0.037, 1.447), (0.852, 0.037, 1.447)),
        }
        for finger, joints in fingers.items():
            parent = f"{side}Hand"
            for n, (x, y, z) in enumerate(joints, start=1):
                bone = f"{side}Hand{finger}{n}"
                j[bone] = (parent, (s * x, y, z))
                parent = bone
        j[f"{side}UpLeg"] = ("Hips", (s * 0.09, 0.0, 0.95))
        j[f"{side}Leg"] = (f"{side}UpLeg", (s * 0.09, 0.0, 0.52))
        j[f"{side}Foot"] = (f"{side}Leg", (s * 0.09, 0.03, 0.09))
        j[f"{side}ToeBase"] = (f"{side}Foot", (s * 0.09, -0.09, 0.02))
        j[f"{side}Toe_End"] = (f"{side}ToeBase", (s * 0.09, -0.16, 0.02))
    return j


# First child that continues a bone (the others branch off it).
_MIXAMO_CONTINUES = {"Hips": "Spine", "Spine2": "Neck", "Head": "HeadTop_End",
                     "LeftHand": "LeftHandMiddle1", "RightHand": "RightHandMiddle1"}
MIXAMO_BONES = tuple(_mixamo_joints())


def build_mixamo_rig(
    name: str = "mixamo",
    prefix: bool | str = True,
    fingers: bool = True,
    eyes: bool = True,
    roll_degrees: float = 0.0,
    fbx_axes: bool = False,
):
    """A Mixamo-named armature. ``prefix`` True gives ``mixamorig:``, a string that prefix,
    False none. ``roll_degrees`` rolls every bone (imports give arbitrary rolls)."""
    pre = "mixamorig:" if prefix is True else (prefix or "")
    joints = _mixamo_joints()
    if not fingers:
        joints = {b: v for b, v in joints.items() if "Hand" not in b or b.endswith("Hand")}
    if not eyes:
        joints = {b: v for b, v in joints.items() if not b.endswith("Eye")}
    children: dict[str, list[str]] = {}
    for bone, (parent, _) in joints.items():
        if parent:
            children.setdefault(parent, []).append(bone)

    def to_data(p):
        # FBX-style armature data: Y up, forward +Z, centimetres.
        x, y, z = p
        return (x * 100.0, z * 100.0, -y * 100.0) if fbx_axes else p

    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    if fbx_axes:
        obj.rotation_euler = (math.radians(90.0), 0.0, 0.0)
        obj.scale = (0.01, 0.01, 0.01)
    _select_only(obj)
    bpy.ops.object.mode_set(mode="EDIT")
    edit = data.edit_bones
    for bone, (parent, head) in joints.items():
        eb = edit.new(pre + bone)
        eb.head = to_data(head)
        nxt = _MIXAMO_CONTINUES.get(bone)
        kids = children.get(bone, [])
        if nxt not in joints:
            nxt = kids[0] if kids else None
        if nxt is not None:
            eb.tail = to_data(joints[nxt][1])
        else:
            # End bone: continue the parent's direction for a fifth of the parent's length.
            ph = joints[parent][1]
            eb.tail = to_data(tuple(h + (h - q) * 0.2 if abs(h - q) > 1e-9 else h for h, q in zip(head, ph)))
            if (eb.tail - eb.head).length < 1e-6:
                eb.tail = to_data((head[0], head[1], head[2] + 0.02))
        eb.roll = math.radians(roll_degrees)
    for bone, (parent, _) in joints.items():
        if parent:
            edit[pre + bone].parent = edit[pre + parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


# --- CMU BVH ---------------------------------------------------------------------------------


def import_cmu_bvh(path, name: str | None = None):
    enable_addon("io_anim_bvh")
    bpy.ops.import_anim.bvh(filepath=str(path))
    obj = bpy.context.active_object
    if name:
        obj.name = name
    return obj


# --- motion ----------------------------------------------------------------------------------
# role -> (local axis, amplitude degrees, phase in cycles): a walk-like cycle.
WALK = {
    "l_thigh": ("X", 25.0, 0.0), "r_thigh": ("X", 25.0, 0.5),
    "l_shin": ("X", 30.0, 0.25), "r_shin": ("X", 30.0, 0.75),
    "l_upper_arm": ("Z", 30.0, 0.5), "r_upper_arm": ("Z", 30.0, 0.0),
    "l_forearm": ("X", 20.0, 0.25), "r_forearm": ("X", 20.0, 0.75),
    "head": ("Z", 15.0, 0.1),
    "l_index": ("X", 30.0, 0.0), "r_index": ("X", 30.0, 0.3),
}
MIXAMO_ROLES = {
    "l_thigh": "LeftUpLeg", "r_thigh": "RightUpLeg", "l_shin": "LeftLeg", "r_shin": "RightLeg",
    "l_upper_arm": "LeftArm", "r_upper_arm": "RightArm", "l_forearm": "LeftForeArm",
    "r_forearm": "RightForeArm", "head": "Head", "l_index": "LeftHandIndex1", "r_index": "RightHandIndex1",
}
RIGIFY_ROLES = {
    "l_thigh": "thigh.L", "r_thigh": "thigh.R", "l_shin": "shin.L", "r_shin": "shin.R",
    "l_upper_arm": "upper_arm.L", "r_upper_arm": "upper_arm.R", "l_forearm": "forearm.L",
    "r_forearm": "forearm.R", "head": "spine.006", "l_index": "f_index.01.L", "r_index": "f_index.01.R",
}


def animate(obj, roles: dict[str, str], motion=WALK, seconds: float = 3.0, cycle_seconds: float = 1.0,
            step: int = 3, prefix: str = ""):
    """Keyframe a sinusoidal motion (Euler rotations) every ``step`` frames for ``seconds``."""
    scene = bpy.context.scene
    fps = scene.render.fps / scene.render.fps_base
    last = scene.frame_start + int(round(seconds * fps))
    scene.frame_end = max(scene.frame_end, last)
    for role, (axis, amplitude, phase) in motion.items():
        bone = obj.pose.bones.get(prefix + roles[role])
        if bone is None:
            continue
        bone.rotation_mode = "XYZ"
        k = "XYZ".index(axis)
        for frame in range(scene.frame_start, last + 1, step):
            t = (frame - scene.frame_start) / fps / cycle_seconds + phase
            rotation = [0.0, 0.0, 0.0]
            rotation[k] = math.radians(amplitude) * math.sin(2.0 * math.pi * t)
            bone.rotation_euler = rotation
            bone.keyframe_insert("rotation_euler", frame=frame)
    return obj


def build_animated_mixamo_rig(name: str = "mixamo", prefix: bool | str = True, seconds: float = 3.0, **kwargs):
    obj = build_mixamo_rig(name, prefix=prefix, **kwargs)
    pre = "mixamorig:" if prefix is True else (prefix or "")
    return animate(obj, MIXAMO_ROLES, seconds=seconds, prefix=pre)


def build_animated_rigify_metarig(name: str = "metarig", seconds: float = 3.0):
    return animate(build_rigify_metarig(name), RIGIFY_ROLES, seconds=seconds)


def add_front_camera(scene, name: str = "FrontCamera", distance: float = 6.0):
    """The scene's camera, ``distance`` m in front of a character standing at the origin facing -Y."""
    cam = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    scene.collection.objects.link(cam)
    cam.location = (0.0, -distance, 0.9)
    cam.rotation_euler = (math.radians(90.0), 0.0, 0.0)
    scene.camera = cam
    return cam


def add_box(scene, name: str, centre, size, collection=None):
    """An axis-aligned box object with its own mesh, linked to ``collection`` (default: the
    scene's), for sets and occluders."""
    sx, sy, sz = (s / 2 for s in size)
    verts = [(x * sx, y * sy, z * sz) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts, [], faces)
    obj = bpy.data.objects.new(name, mesh)
    (collection or scene.collection).objects.link(obj)
    obj.location = centre
    return obj
