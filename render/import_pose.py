"""Import a keypoint sequence onto an armature as a new action (Blender glue over ``retarget.lift``).

``import_pose`` reads the rig (rest pose, hierarchy, rig map) and the camera, lifts one person's
keypoints onto the rig (``retarget.lift``: the rig keeps its bone lengths, the motion keeps the
video's limb directions) and writes the result as keyframes of a **new action**:

- the armature's previous action is kept, untouched, on a muted NLA track "[Action Stash]" (what
  Blender's Action Editor does when a new action replaces one), so nothing of the animator's is
  lost and it can be brought back from the NLA editor or the action browser; undoing the
  operator restores the previous state entirely;
- each solved bone is keyed in the rotation mode it already has (quaternion, Euler of any order,
  axis-angle), so the rig's settings, and the old action that relies on them, stay valid; the
  torso bone also gets location keys; nothing is scaled;
- on a control rig (Rigify's generated rig) the ORG- bones the lift solves are keyed through the
  FK controls they follow, and the limbs are switched to FK in the new action
  (``rig_controls``);
- every other bone is put at its rest pose (the lift assumes the bones it does not solve are at
  rest; a stale pose from the old action would bend the result);
- keys go at ``start_frame`` plus the sequence's frame numbers counted from its first (the
  scene's first frame by default), every frame, linear by default.

The armature object's transform is taken as it is when importing; the camera is sampled at every
key frame when it is animated, once when it is not.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import bpy
import numpy as np

from ..pose.keypoints import KeypointSequence
from ..retarget.canvas import fit_into_frame
from ..retarget.learned_depth import CAMERA_TILTS, LIFTS, camera_up, confidence_note, learned_depth, tilt_note
from ..retarget.lift import DEPTH_MODES, LiftOptions, LiftResult, lift
from ..retarget.lift_plan import LiftError, plan_lift
from ..retarget.rays import ArmatureCamera
from ..retarget.rotations import EULER_ORDERS, continuous_euler, continuous_quats, matrix_to_quat, quat_to_axis_angle
from ..retarget.skeleton import RigSkeleton
from . import actions, joints, rig_controls, rig_presets
from .camera import camera_projection, read_camera, render_size, resolve_camera, scene_depsgraph


class ImportPoseError(ValueError):
    """Bad input for an import; the message says what, and nothing was changed."""


@dataclass
class ImportReport:
    armature: str
    action: str
    previous_action: str | None
    frames: int
    first_frame: int
    last_frame: int
    bones: list[str]
    rig_map: str
    filled: int = 0
    canvas_note: str = ""
    length_scale: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    lift: LiftResult | None = None
    depth_note: str = ""  # with the learned lift: which frames its depth choices are unsure of

    def summary(self) -> str:
        text = (
            f"Imported {self.frames} frame(s) ({self.first_frame}-{self.last_frame}) onto "
            f"{self.armature!r} ({self.rig_map}) as action {self.action!r}, {len(self.bones)} bones keyed"
        )
        if self.previous_action:
            text += f"; previous action {self.previous_action!r} kept in the NLA ({actions.STASH_TRACK})"
        if self.filled:
            text += f"; {self.filled} missing point-frame(s) filled"
        longer = {k: v for k, v in self.length_scale.items() if v != 1.0}
        if longer:
            text += "; performer's limbs longer than the rig's: " + ", ".join(
                f"{k} x{v:.2f}" for k, v in sorted(longer.items())
            )
        if self.skipped:
            text += f"; no keypoints for {', '.join(self.skipped)} (left at rest)"
        if self.canvas_note:
            text += f"; {self.canvas_note}"
        return text


def import_pose(
    armature_obj,
    seq: KeypointSequence,
    camera_obj=None,
    scene=None,
    *,
    start_frame: int | None = None,
    person: int = 0,
    depth_mode: str = "rig_size",
    fixed_depth: float | None = None,
    ground: bool = False,
    hands: bool = True,
    head: bool = True,
    interpolation: str = "LINEAR",
    depth_smoothing: float = 2.0,
    source_name: str | None = None,
    rigmap=None,
    lift_mode: str = "learned",
    depth_witness=None,
    camera_tilt: str = "scene",
) -> ImportReport:
    """Lift ``seq``'s person ``person`` onto ``armature_obj`` through ``camera_obj`` (the scene
    camera by default) and key it as a new action; see the module doc. ``depth_mode``
    "rig_size" (distance from the rig's size against the performer's) or "fixed" (the torso
    held at ``fixed_depth`` metres in front of the camera, by default where the rig stands).
    ``depth_smoothing``: frames over which to smooth what the image hardly shows (limb depth
    where a limb lies across the line of sight, the torso's turn in depth and its distance);
    0 turns it off. ``lift_mode`` "learned": the lifter network reads how far the arms and
    legs reach towards or away from the camera (``retarget.learned_depth``); "geometric": the
    rig's bone lengths, continuity and joint limits alone. ``depth_witness``
    (``retarget.depth_witness.Witness``, one row per keypoint frame): a detector's own 3-D reading
    of the limbs, a second witness to the learned depth. ``camera_tilt`` "scene": the network
    is told the camera's tilt against the floor (world up); "image": it reads it from the image
    (a scene camera not matched to the shot). Raises ImportPoseError, changing nothing, when
    the inputs cannot be imported."""
    started = time.perf_counter()
    scene = scene if scene is not None else bpy.context.scene
    _check(armature_obj, seq, person, depth_mode, interpolation)
    if lift_mode not in LIFTS:
        raise ImportPoseError(f"unknown lift {lift_mode!r} (known: {', '.join(LIFTS)})")
    if camera_tilt not in CAMERA_TILTS:
        raise ImportPoseError(f"unknown camera tilt {camera_tilt!r} (known: {', '.join(CAMERA_TILTS)})")
    try:
        camera_obj = camera_obj if camera_obj is not None else resolve_camera(scene)
        if camera_obj.type != "CAMERA":
            raise ValueError(f"object {camera_obj.name!r} is not a camera")
        if rigmap is None:
            rigmap, map_label = rig_presets.rigmap_for(armature_obj)
        else:
            map_label = getattr(rigmap, "name", "custom map")
        skeleton = read_skeleton(armature_obj)
        plan = plan_lift(skeleton, rigmap, seq.layout)
        controls = rig_controls.controls_for(armature_obj, [skeleton.names[b] for b in plan.drivers()])
    except (ValueError, LiftError) as error:
        raise ImportPoseError(str(error)) from None

    first = scene.frame_start if start_frame is None else int(start_frame)
    key_frames = first + (seq.frame_numbers - seq.frame_numbers[0])
    width, height = render_size(scene)
    fitted, fit = fit_into_frame(seq, (width, height))
    keypoints = fitted.data[:, person].astype(np.float64)
    canvas_note = fit.describe(seq.canvas, (width, height)) if fit.letterboxed else ""
    matrix_world = np.array(armature_obj.matrix_world, dtype=np.float64)
    camera = armature_camera(scene, camera_obj, key_frames, (width, height), matrix_world)
    up = np.linalg.inv(matrix_world[:3, :3]) @ np.array([0.0, 0.0, 1.0])
    depth, depth_note = None, ""
    if lift_mode == "learned":
        up_seen = camera_up(camera.to_camera, up) if camera_tilt == "scene" else None
        depth = learned_depth(keypoints, seq.layout, camera.projection[0], width, height, depth_witness, up_seen)
        if depth is None:
            depth_note = "learned depth needs a perspective camera: the geometric lift was used"
        else:
            notes = (confidence_note(depth.confidence, key_frames), tilt_note(up_seen), depth.witness_note)
            depth_note = "; ".join(n for n in notes if n)
    options = LiftOptions(
        depth_mode=depth_mode, fixed_depth=fixed_depth, ground=ground,
        up=tuple(up / np.linalg.norm(up)), hands=hands, head=head, depth_smoothing=depth_smoothing,
        learned_depth=depth,
    )
    try:
        result = lift(plan, keypoints, camera, options)
    except LiftError as error:
        raise ImportPoseError(str(error)) from None

    name = f"{armature_obj.name}|{source_name or 'pose import'}"
    previous, action = write_action(armature_obj, skeleton, result, key_frames, name, interpolation, controls)
    scene.frame_set(scene.frame_current)  # show the new pose
    return ImportReport(
        armature=armature_obj.name,
        action=action.name,
        previous_action=previous.name if previous is not None else None,
        frames=len(key_frames),
        first_frame=int(key_frames[0]),
        last_frame=int(key_frames[-1]),
        bones=[skeleton.names[b] for b in result.bones],
        rig_map=map_label,
        filled=result.stats.filled,
        canvas_note=canvas_note,
        length_scale=dict(result.stats.length_scale),
        skipped=list(result.stats.skipped),
        seconds=time.perf_counter() - started,
        lift=result,
        depth_note=depth_note,
    )


def _check(armature_obj, seq, person, depth_mode, interpolation) -> None:
    if armature_obj is None or armature_obj.type != "ARMATURE":
        kind = "nothing" if armature_obj is None else f"a {armature_obj.type.lower()}"
        raise ImportPoseError(f"the target must be an armature, got {kind}")
    if armature_obj.mode == "EDIT":
        raise ImportPoseError(f"{armature_obj.name!r} is in edit mode; leave it to import a pose")
    if not isinstance(seq, KeypointSequence) or seq.frame_count == 0:
        raise ImportPoseError("the keypoint sequence is empty")
    if not 0 <= person < seq.people_count:
        raise ImportPoseError(f"no person {person} in a sequence of {seq.people_count} people per frame")
    if depth_mode not in DEPTH_MODES:
        raise ImportPoseError(f"unknown depth mode {depth_mode!r} (known: {', '.join(DEPTH_MODES)})")
    if interpolation not in actions.INTERPOLATIONS:
        raise ImportPoseError(
            f"unknown interpolation {interpolation!r} (known: {', '.join(actions.INTERPOLATIONS)})"
        )


def read_skeleton(armature_obj) -> RigSkeleton:
    """The armature's hierarchy and rest pose, in ``pose.bones`` order."""
    rest, names, lengths = joints.read_rest(armature_obj)
    bones = armature_obj.data.bones
    parents = [rig_controls.effective_parent(bones[n]) for n in names]
    return RigSkeleton.from_parent_names(names, parents, rest, lengths)


def _is_static(obj) -> bool:
    """No animation, drivers or constraints on the camera, its data or its parents."""
    while obj is not None:
        for owner in (obj, obj.data):
            data = getattr(owner, "animation_data", None)
            if data is not None and (data.action is not None or len(data.drivers) or len(data.nla_tracks)):
                return False
        if len(obj.constraints):
            return False
        obj = obj.parent
    return True


def armature_camera(scene, camera_obj, frames, size, matrix_world) -> ArmatureCamera:
    """The camera in the armature's space at each key frame (sampled once if it never moves)."""
    width, height = size
    if _is_static(camera_obj):
        pixel_aspect = (scene.render.pixel_aspect_x, scene.render.pixel_aspect_y)
        world_to_camera, projection = read_camera(scene_depsgraph(scene, [camera_obj]), camera_obj, width, height, pixel_aspect)
        return ArmatureCamera(world_to_camera @ matrix_world, projection, width, height)
    sampled = camera_projection(scene, camera_obj, [int(f) for f in frames], (width, height))
    return ArmatureCamera(sampled.world_to_camera @ matrix_world, sampled.projection, width, height)


def write_action(armature_obj, skeleton: RigSkeleton, result: LiftResult, frames, name: str, interpolation: str,
                 controls: dict | None = None):
    """Stash the armature's action, assign a new one, rest the pose, key the solved bones (each
    through its control, ``rig_controls.controls_for``, on a control rig). Returns (previous
    action or None, new action)."""
    pose_bones = armature_obj.pose.bones
    if controls is None:
        controls = rig_controls.controls_for(armature_obj, [skeleton.names[b] for b in result.bones])
    channels = []
    for column, bone in enumerate(result.bones):
        control = controls[skeleton.names[bone]]
        name_b, basis, rotations = control.name, result.basis[:, column], result.rotations[:, column]
        if control.offset is not None:  # the control's basis: the solved one seen from its rest
            basis = np.linalg.inv(control.offset) @ basis @ control.offset
            rotations = continuous_quats(matrix_to_quat(basis[:, :3, :3]))
        pose_bone = pose_bones[name_b]
        path = f'pose.bones["{bpy.utils.escape_identifier(name_b)}"]'
        mode = pose_bone.rotation_mode
        if mode == "QUATERNION":
            values, prop = rotations, "rotation_quaternion"
        elif mode == "AXIS_ANGLE":
            values, prop = quat_to_axis_angle(rotations), "rotation_axis_angle"
        elif mode in EULER_ORDERS:
            values, prop = continuous_euler(basis[:, :3, :3], mode), "rotation_euler"
        else:
            raise ImportPoseError(f"bone {name_b!r} has an unknown rotation mode {mode!r}")
        channels += [actions.Channel(f"{path}.{prop}", i, name_b, values[:, i]) for i in range(values.shape[1])]
        if bone == result.root:
            location = basis[:, :3, 3]
            channels += [actions.Channel(f"{path}.location", i, name_b, location[:, i]) for i in range(3)]
    if any(c.name != n for n, c in controls.items()):  # a control rig: its limbs in FK
        count = len(frames)
        channels += [actions.Channel(p, 0, g, np.full(count, v)) for p, g, v in rig_controls.switch_channels(armature_obj)]

    previous = actions.stash(armature_obj)
    action = actions.new_action(name)
    actions.assign(armature_obj, action)
    _rest_pose(pose_bones)
    actions.write_channels(armature_obj, action, frames, channels, interpolation)
    return previous, action


def _rest_pose(pose_bones) -> None:
    count = len(pose_bones)
    pose_bones.foreach_set("location", np.zeros(count * 3, np.float32))
    pose_bones.foreach_set("rotation_quaternion", np.tile(np.float32([1, 0, 0, 0]), count))
    pose_bones.foreach_set("rotation_euler", np.zeros(count * 3, np.float32))
    pose_bones.foreach_set("rotation_axis_angle", np.tile(np.float32([0, 0, 1, 0]), count))
    pose_bones.foreach_set("scale", np.ones(count * 3, np.float32))
