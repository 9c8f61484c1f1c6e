"""The pose-map job: armatures' evaluated animation -> keypoints -> pose maps + OpenPose JSON.

``plan_job`` checks everything that can be wrong before any file is written and raises
``JobError`` naming the problem; ``sample_keypoints`` gives the characters' keypoints as the
camera sees them. Running the job (files, progress, cancel) is ``pose_map_run``. The scene is
left as it was (frame restored, no settings changed).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np

from ..draw.occlusion import hidden_keypoints
from ..draw.pose_map import SCALINGS, PoseStyle, draw_pose_map
from ..generate import families
from ..pose import layouts
from ..pose.keypoints import KeypointSequence
from ..pose.rigmap import evaluate
from . import rig_presets
from .camera import render_size, resolve_camera
from .depth_maps import DepthOptions
from .occlusion import SurfaceFrames
from .sampling import SCENE_CAMERA, sample_frames


class JobError(ValueError):
    """A problem with the job's inputs, worded for the user."""


@dataclass
class Character:
    armature: bpy.types.Object
    rigmap: object
    preset_label: str


@dataclass
class PoseMapJob:
    output_dir: Path | None
    frames: list[int]
    camera: object  # a camera object, or sampling.SCENE_CAMERA (follows marker camera switches)
    characters: list[Character]
    width: int
    height: int
    hands: bool = True
    face: bool = True
    style: PoseStyle = field(default_factory=PoseStyle)
    depth: DepthOptions | None = None  # None: pose maps only
    occlusion: bool = False  # keypoints something hides from the camera are absent
    left_out: list[str] = field(default_factory=list)  # armatures not rendered, and why

    @property
    def parts(self) -> tuple[str, ...]:
        return ("body",) + (("hand_left", "hand_right") if self.hands else ()) + (("face",) if self.face else ())

    def pose_path(self, frame: int) -> Path:
        return pose_map_path(self.output_dir, frame)

    def depth_path(self, frame: int) -> Path:
        return depth_map_path(self.output_dir, frame)

    def existing_outputs(self, folder: Path | None = None) -> list[Path]:
        """Pose and depth maps of this range already in ``folder`` (default: the job's output
        folder). Depth maps count even when this job makes none: it removes them, so that a
        folder never pairs new pose maps with old depth maps (Generate sends both)."""
        folder = self.output_dir if folder is None else folder
        paths = (path(folder, f) for f in self.frames for path in (pose_map_path, depth_map_path))
        return [p for p in paths if p.exists()]


def pose_map_path(folder: Path, frame: int) -> Path:
    return Path(folder) / f"pose_{frame:04d}.png"


def depth_map_path(folder: Path, frame: int) -> Path:
    return Path(folder) / f"depth_{frame:04d}.png"


def plan_job(
    scene,
    output_dir=None,
    frame_start: int | None = None,
    frame_end: int | None = None,
    resolution: tuple[int, int] | None = None,
    camera_name: str | None = None,
    armature_names: list[str] | None = None,
    hands: bool = True,
    face: bool = True,
    line_widths: str = "controlnet",
    depth: bool = False,
    depth_mode: str = "inverse",
    depth_bits: int = 8,
    depth_subject: str = "scene",
    depth_range: tuple[float, float] | None = None,
    occlusion: bool = False,
) -> PoseMapJob:
    """Check the inputs and resolve them to Blender objects; raises JobError naming a problem."""
    start = scene.frame_start if frame_start is None else int(frame_start)
    end = scene.frame_end if frame_end is None else int(frame_end)
    if end < start:
        raise JobError(f"empty frame range {start}-{end}: the end is before the start")
    try:
        # Checks there is a camera now; unnamed, the scene's camera is followed frame by frame.
        camera = resolve_camera(scene, camera_name)
        if camera_name is None:
            camera = SCENE_CAMERA
    except ValueError as error:
        raise JobError(str(error)) from None
    if resolution is not None:
        width, height = (int(v) for v in resolution)
        if width < 1 or height < 1:
            raise JobError(f"resolution must be positive, got {width}x{height}")
    else:
        width, height = render_size(scene)
        if width < 1 or height < 1:
            raise JobError(f"the scene's render size is {width}x{height}: raise the resolution or its percentage")
    left_out = []
    characters = resolve_characters(scene, armature_names, left_out)
    # No folder is a preview: keypoints and maps in memory only.
    folder = _writable_folder(output_dir) if output_dir is not None else None
    line_widths = families.line_widths_for(line_widths)  # "auto": the backend's, as last seen
    if line_widths not in SCALINGS:
        raise JobError(f"unknown line widths {line_widths!r} (known: {', '.join(SCALINGS)})")
    style = PoseStyle(draw_hands=hands, draw_face=face, scaling=line_widths)
    depth_options = None
    if depth:
        near_far = None if depth_range is None else tuple(float(v) for v in depth_range)
        depth_options = DepthOptions(depth_mode, int(depth_bits), depth_subject, near_far)
        problem = depth_options.check()
        if problem:
            raise JobError(problem)
    return PoseMapJob(folder, list(range(start, end + 1)), camera, characters, width, height, hands, face, style,
                      depth_options, bool(occlusion), left_out)


def find_armature(scene, name: str):
    """The scene's armature called ``name``; JobError naming the problem otherwise."""
    obj = scene.objects.get(name) if name else None
    if obj is None:
        known = ", ".join(o.name for o in scene.objects if o.type == "ARMATURE") or "none"
        raise JobError(f"unknown armature {name!r} (armatures in the scene: {known})")
    if obj.type != "ARMATURE":
        raise JobError(f"{name!r} is a {obj.type.lower()}, not an armature")
    return obj


def not_animated_reason(scene, obj) -> str | None:
    """Why Blender would not evaluate ``obj``'s animation for this scene's view layers (and the
    pose would stay frozen), or None. Hidden with the eye icon is fine; these are not."""
    # Walk the layer collections rather than read view_layer.objects, which Blender refreshes
    # only on its next update (an object linked a moment ago would look absent).
    def in_layer(layer_collection) -> bool:
        if layer_collection.exclude:
            return False
        if obj.name in layer_collection.collection.objects:
            return True
        return any(in_layer(child) for child in layer_collection.children)

    if not any(in_layer(layer.layer_collection) for layer in scene.view_layers):
        return "its collection is excluded from the view layer"
    parents = {child.name: parent for parent in bpy.data.collections for child in parent.children}
    collections = list(obj.users_collection)
    while collections:
        collection = collections.pop()
        if getattr(collection, "hide_viewport", False):
            return f"its collection '{collection.name}' is disabled in viewports"
        if collection.name in parents:
            collections.append(parents[collection.name])
    if obj.hide_viewport:
        return "it is disabled in viewports"
    return None


def resolve_characters(scene, armature_names: list[str] | None, left_out: list | None = None) -> list[Character]:
    """The armatures to render, each with its rig map.

    Named armatures must exist, be armatures, be named once, be evaluated by Blender and have a
    map that fits; without names every armature in the scene that is included, evaluated and
    has a fitting map is a character (one whose map the user chose or made must fit). The
    armatures left out that way are listed in ``left_out`` with the reason, for the report.
    """
    left_out = [] if left_out is None else left_out
    if armature_names:
        repeated = sorted({name for name in armature_names if armature_names.count(name) > 1})
        if repeated:
            raise JobError(f"armature named more than once: {', '.join(repeated)}")
        characters = []
        for name in armature_names:
            obj = find_armature(scene, name)
            reason = not_animated_reason(scene, obj)
            if reason:
                raise JobError(f"armature '{name}' cannot be posed: {reason}")
            try:
                rigmap, label = rig_presets.rigmap_for(obj)
            except rig_presets.NoRigMap as error:
                raise JobError(str(error)) from None
            characters.append(Character(obj, rigmap, label))
        return characters
    armatures = [o for o in scene.objects if o.type == "ARMATURE"]
    if not armatures:
        raise JobError("the scene has no armature")
    characters = []
    for obj in armatures:
        if not rig_presets.is_included(obj):
            continue
        reason = not_animated_reason(scene, obj)
        if reason:
            left_out.append(f"{obj.name} ({reason})")
            continue
        try:
            rigmap, label = rig_presets.rigmap_for(obj)
        except rig_presets.NoRigMap as error:
            # An armature no preset fits (a prop, a vehicle) is simply not a character, but a
            # map the user chose or made for it must work.
            if rig_presets.chosen_preset(obj) == rig_presets.AUTO:
                left_out.append(f"{obj.name} (no rig preset fits)")
                continue
            raise JobError(str(error)) from None
        characters.append(Character(obj, rigmap, label))
    if not characters:
        names = ", ".join(o.name for o in armatures)
        raise JobError(
            f"no armature in the scene can be rendered ({names}): "
            + ("; ".join(left_out) or "none is included") + "; pick a preset or make a custom map"
        )
    return characters


def _writable_folder(output_dir) -> Path:
    if not str(output_dir).strip():
        raise JobError("no output folder given")
    if str(output_dir).startswith("//") and not bpy.data.filepath:
        raise JobError(f"the output folder {output_dir} is relative to the .blend: save the .blend "
                       "first or choose an absolute folder")
    folder = Path(bpy.path.abspath(str(output_dir))).resolve()
    try:
        (folder / "keypoints").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise JobError(f"cannot create output folder {folder}: {error.strerror}") from None
    if not os.access(folder, os.W_OK) or not os.access(folder / "keypoints", os.W_OK):
        raise JobError(f"output folder {folder} is not writable")
    return folder


def sample_keypoints(scene, job: PoseMapJob, frames: list[int], each_frame=None) -> KeypointSequence:
    """Every character's keypoints at ``frames``, projected into the image; points hidden
    behind the camera, outside the frame or (job.occlusion) behind geometry are absent.
    ``each_frame``: see sample_frames."""
    return _sample(scene, job, frames, each_frame)[0]


def _sample(scene, job: PoseMapJob, frames: list[int], each_frame=None, surfaces: dict | None = None):
    """(keypoints, how many of the written parts' points occlusion hid). With job.occlusion,
    ``surfaces`` is what ``each_frame`` fills with each frame's nearest surfaces (the depth
    pass's raster); without it, a raster of its own is added to the same pass."""
    layout = layouts.OPENPOSE_FULL
    frames = list(frames)
    shape = (len(frames), len(job.characters), len(layout))
    data = np.zeros(shape + (3,), np.float32)
    armatures = [c.armature for c in job.characters]
    if job.occlusion and surfaces is None:
        surfaces = {}
        each_frame = _both(each_frame, SurfaceFrames(armatures, job.width, job.height).collector(surfaces))
    rigs, camera = sample_frames(scene, frames, armatures, job.camera, job.width, job.height, each_frame)
    points, xy = np.zeros(shape + (3,)), np.zeros(shape + (2,))
    present, visible = np.zeros(shape, bool), np.zeros(shape, bool)
    for person, (character, rig) in enumerate(zip(job.characters, rigs)):
        points[:, person], present[:, person] = evaluate(character.rigmap, rig.bone_names, rig.matrices, rig.lengths)
        xy[:, person], visible[:, person] = camera.project(points[:, person])
    keep = present & visible
    hidden = 0
    if job.occlusion:
        occluded = hidden_keypoints(points, present, keep, xy, camera.world_to_camera, camera.projection,
                                    surfaces, layout)
        keep &= ~occluded
        written = np.zeros(len(layout), bool)
        for name in job.parts:
            part = layout.part(name)
            written[part.start:part.stop] = True
        hidden = int(occluded[..., written].sum())
    data[..., :2] = np.where(keep[..., None], xy, 0.0)
    data[..., 2] = keep
    return KeypointSequence(layout, data, (job.width, job.height), frames), hidden


def _both(first, second):
    """One sample_frames hook calling two (either may be None)."""
    if first is None:
        return second

    def both(*args):
        first(*args)
        second(*args)
    return both


def preview_map(scene, job: PoseMapJob, frame: int) -> np.ndarray:
    """One frame's pose map in memory, nothing written (the scene's frame is restored)."""
    seq = sample_keypoints(scene, job, [frame])
    return draw_pose_map(seq.data[0], job.width, job.height, job.style)
