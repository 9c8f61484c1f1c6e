"""The pose-import job: keypoint file -> one tracked, cleaned person -> a new action on a rig.

Runs in stages (read, track, clean, lift and key) so the operator can show progress and stop
between them; nothing in the scene changes before the last stage, which writes the action in
one go. Bad input raises ``JobError`` naming the problem, with the scene unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..pose.formats.readers import ImportedKeypoints, KeypointFileError, load_keypoints
from ..pose.formats.world_json import WorldLandmarks, read_world
from ..retarget.cleaning import CleanOptions, clean
from ..retarget.filters import CleanReport
from ..retarget.depth_witness import Witness, limb_angles, on_times
from ..retarget.resample import rate_note, resample_by_time
from ..retarget.tracking import TrackResult, track_person
from .camera import render_size, resolve_camera
from .import_pose import ImportPoseError, ImportReport, import_pose
from .pose_maps import JobError, find_armature


@dataclass
class ImportOptions:
    keypoints: str
    armature: str
    camera: str | None = None
    layout: str | None = None  # None: detected from the point count
    coordinates: str = "auto"  # auto | pixels | normalized
    canvas: tuple[int, int] | None = None  # None: from the file, else the scene's render size
    person: object = "auto"  # "auto", an index in the first frame, or an (x, y) pixel
    start_frame: int | None = None  # None: the scene's first frame
    min_confidence: float = 0.1
    max_gap: int = 10
    fix_swaps: bool = True
    smooth: bool = True
    smooth_strength: float = 1.0
    fps: float | None = None  # None: the scene's frame rate
    # The keypoints' own frame rate when they are a video's frames (numbered by video frame):
    # tracked and cleaned at that rate, then resampled by time onto the scene's (retarget.resample).
    source_fps: float | None = None
    source_name: str | None = None  # names the new action; None: the keypoint file or folder's name
    depth_mode: str = "rig_size"  # rig_size | fixed
    ground: bool = False
    lift: str = "learned"  # learned | geometric (retarget.learned_depth.LIFTS)
    camera_tilt: str = "scene"  # scene | image: where the learned lift takes the camera's tilt from


@dataclass
class ImportSummary:
    imported: ImportedKeypoints | None = None
    track: TrackResult | None = None
    cleaning: CleanReport | None = None
    report: ImportReport | None = None
    notes: list[str] = field(default_factory=list)
    # With source_fps: the first key's grid frame (seconds * scene fps of the video's own clock),
    # so the video's frame 0 lies that many scene frames before the first key.
    grid_start: int | None = None

    def text(self) -> str:
        report = self.report
        parts = [
            f"Imported {report.frames} frame(s) onto {report.armature} as action '{report.action}' "
            f"(frames {report.first_frame}-{report.last_frame}, {report.rig_map})"
        ]
        if self.cleaning is not None:
            parts.append(f"{self.cleaning.gaps_filled} gap(s) filled, {self.cleaning.swaps_fixed} "
                         f"left/right swap(s) fixed")
        if self.track is not None and len(self.track.missing_frames):
            parts.append(f"person missing in {len(self.track.missing_frames)} frame(s)")
        if report.previous_action:
            parts.append(f"previous action '{report.previous_action}' kept on the NLA")
        return "; ".join(parts)


def import_steps(scene, options: ImportOptions, summary: ImportSummary) -> Iterator[tuple[float, str]]:
    """Run the import, yielding (fraction done, next stage) between stages.

    Closing the generator before it finishes leaves the scene untouched."""
    armature = find_armature(scene, options.armature)
    try:
        camera = resolve_camera(scene, options.camera)
    except ValueError as error:
        raise JobError(str(error)) from None
    path = Path(options.keypoints)
    if not path.exists():
        raise JobError(f"no such keypoints file or folder: {path}")
    yield 0.0, "reading keypoints"

    try:
        imported = load_keypoints(path, layout=options.layout, coordinates=options.coordinates,
                                  canvas=options.canvas)
    except KeypointFileError as error:
        raise JobError(str(error)) from None
    except ValueError as error:  # bad arguments, e.g. an unknown layout name
        raise JobError(str(error)) from None
    if imported.needs_canvas:
        width, height = render_size(scene)
        reach = imported.sequence.canvas  # the smallest canvas holding every point
        if imported.coordinates == "pixels" and (reach[0] > width or reach[1] > height):
            raise JobError(
                f"the keypoints reach {reach[0]}x{reach[1]} px, beyond the {width}x{height} render "
                f"size used when the file gives no canvas: give the video's size (canvas WxH)"
            )
        imported = imported.with_canvas(width, height, source="the scene's render size")
        summary.notes.append(f"no canvas size in the file: used the scene's render size {width}x{height}")
    summary.imported = imported
    summary.notes.extend(imported.notes)
    yield 0.2, "tracking the person"

    scene_fps = options.fps or scene.render.fps / scene.render.fps_base
    fps = scene_fps
    if options.source_fps:  # video frames, maybe every Nth: the rate the samples come at
        every = _sampling_step(imported.sequence.frame_numbers)
        fps = options.source_fps / every
    try:
        track = track_person(imported.sequence, options.person, fps=fps)
    except ValueError as error:
        raise JobError(f"no person to import: {error}") from None
    summary.track = track
    yield 0.4, "cleaning"

    cleaned, report = clean(track.sequence, CleanOptions(
        min_confidence=options.min_confidence, max_gap=options.max_gap,
        repair_swaps=options.fix_swaps, smooth=options.smooth,
        smooth_strength=options.smooth_strength, fps=fps,
    ))
    summary.cleaning = report
    # A video's extraction may hold the detector's own 3-D body: a second witness to depth.
    world = _world_landmarks(path, summary) if options.lift == "learned" else None
    if options.source_fps:
        times = cleaned.frame_numbers / float(options.source_fps)
        cleaned = resample_by_time(cleaned, times, scene_fps)
        summary.grid_start = int(cleaned.frame_numbers[0])
        summary.notes.insert(0, rate_note(options.source_fps, scene_fps, every))
    witness = None
    if world is not None:
        # Its frames' times (video frames, or key frames when there is no video rate) onto the keys'.
        times, instants = world.frames.astype(np.float64), cleaned.frame_numbers.astype(np.float64)
        if options.source_fps:
            times, instants = times / float(options.source_fps), instants / scene_fps
        witness = Witness(world.source or "the detector", *on_times(*limb_angles(world.points), times, instants))
    yield 0.6, "lifting onto the rig"

    try:
        summary.report = import_pose(
            armature, cleaned, camera, scene, start_frame=options.start_frame,
            depth_mode=options.depth_mode, ground=options.ground,
            source_name=options.source_name or path.stem, lift_mode=options.lift, depth_witness=witness,
            camera_tilt=options.camera_tilt,
        )
    except ImportPoseError as error:
        raise JobError(str(error)) from None
    if summary.report.canvas_note:
        summary.notes.append(summary.report.canvas_note)
    if summary.report.depth_note:
        summary.notes.append(summary.report.depth_note)
    yield 1.0, "done"


def _world_landmarks(path, summary: ImportSummary) -> WorldLandmarks | None:
    """The world.json beside the keypoints (``pose.formats.world_json``), or None. An unreadable
    file is reported, not fatal: the lifter then reads depth alone."""
    try:
        return read_world(path)
    except ValueError as error:
        summary.notes.append(f"3-D landmarks not used: {error}")
        return None


def _sampling_step(frame_numbers) -> int:
    """Every how many video frames a sample was taken (1 for every frame)."""
    steps = np.diff(np.asarray(frame_numbers))
    return max(1, int(round(float(np.median(steps))))) if len(steps) else 1


def run_import(scene, options: ImportOptions) -> ImportSummary:
    summary = ImportSummary()
    for _ in import_steps(scene, options, summary):
        pass
    return summary
