"""Extract and Import: a video -> the backend's pose extraction -> today's import -> the video
beside the keys (a VSE movie strip and the camera's background clip).

``extract_steps`` is a step generator like the other jobs (operators/stepped.py). While the
backend works it yields ``Waiting`` (the HTTP work runs on generate/extraction_run.py's thread,
Blender's UI stays free); closing the generator (ESC) cancels the job on the backend (DELETE).
A job cancelled on the backend by someone else ends the generator early, with the outcome saying
cancelled and the scene untouched.
The result zip is unpacked into a NEW folder ``<extract dir>/<video stem>[_N]`` (never over an
earlier one), then ``import_job.import_steps`` runs on its ``keypoints/`` folder with the video's
frame rate, so the keys follow the scene's rate (resampled by time). Nothing in the scene changes
before the import's last step; the strip and the background clip are added right after it, in
the same step, lined up with the keys: the video's frame 0 sits where the key grid's time 0 is.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import bpy

from ..generate.client import BackendClient, BackendError
from ..generate.extraction import (
    EXTRACTORS,
    ExtractionFileError,
    ExtractionInfo,
    keypoints_folder,
    new_result_folder,
    read_extraction,
    remove_folder,
    unpack_result,
)
from ..generate.extraction_run import CANCELLED, DONE, ExtractionRun
from . import vse
from .background_clip import BackgroundClip, add_background_clip
from .camera import resolve_camera
from .generate_job import check_online_access
from .import_job import ImportOptions, ImportSummary, import_steps
from .job_steps import Waiting
from .pose_maps import JobError, find_armature

# The share of the progress bar the backend's extraction takes; the import takes the rest.
EXTRACT_SHARE = 0.7
# How long ESC waits for the run's thread to tell the backend (DELETE); it finishes on its own.
CANCEL_WAIT_S = 0.5
# How long a blocking run sleeps while the backend works.
WAIT_S = 0.05
DEFAULT_FOLDER = "posebridge_extract"


@dataclass
class ExtractRequest:
    """One Extract and Import: the video, the backend, and the import's own options (their
    ``keypoints`` is filled in from the result)."""

    video: Path
    backend_url: str
    out_root: Path  # results go into out_root/<video stem>[_N]
    options: ImportOptions
    token: str | None = None
    extractor: str = "mediapipe"
    every: int = 1
    start: int | None = None  # video frame indices, 0-based, inclusive; None: first/last
    end: int | None = None
    movie_strip: bool = True
    background: bool = True


@dataclass
class ExtractOutcome:
    summary: ImportSummary = field(default_factory=ImportSummary)
    folder: Path | None = None
    info: ExtractionInfo | None = None
    job_id: str | None = None
    strip: str | None = None
    speed_strip: str | None = None
    channel: int | None = None
    background: BackgroundClip | None = None
    cancelled: bool = False
    message: str = ""
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        if self.cancelled:
            return f"Extract and Import cancelled: {self.message}; the rig is unchanged"
        info = self.info
        parts = [f"Extracted {len(info.frames)} frame(s) of {info.video} ({info.extractor}) into {self.folder}",
                 self.summary.text()]
        if self.strip:
            speed = f" played in real time by '{self.speed_strip}'" if self.speed_strip else ""
            parts.append(f"movie strip '{self.strip}' on channel {self.channel}{speed}")
        return "; ".join(parts)

    @property
    def all_notes(self) -> list[str]:
        return self.summary.notes + self.notes


def check_request(scene, request: ExtractRequest) -> None:
    """What can be told wrong before sending anything: JobError naming it."""
    video = Path(request.video)
    if not video.is_file():
        raise JobError(f"no such video file: {video}")
    if request.extractor not in EXTRACTORS:
        raise JobError(f"unknown extractor {request.extractor!r} (known: {', '.join(EXTRACTORS)})")
    if request.every < 1:
        raise JobError(f"every must be 1 or more, got {request.every}")
    if request.start is not None and request.end is not None and request.end < request.start:
        raise JobError(f"the video frames {request.start}-{request.end} are an empty range")
    find_armature(scene, request.options.armature)
    try:
        resolve_camera(scene, request.options.camera)
    except ValueError as error:
        raise JobError(str(error)) from None
    check_online_access(request.backend_url)


def _extract(request: ExtractRequest, outcome: ExtractOutcome):
    """Step generator: the backend's extraction; returns the zip's bytes, or None when the job
    was cancelled on the backend by someone else (the run ends CANCELLED; ``outcome`` says so)."""
    try:
        client = BackendClient(request.backend_url, request.token)
    except BackendError as error:
        raise JobError(str(error)) from None
    run = ExtractionRun(client, request.video, extractor=request.extractor, every=request.every,
                        start=request.start, end=request.end)
    run.start()
    try:
        while not run.finished:
            status = run.snapshot()
            yield Waiting(EXTRACT_SHARE * status.progress, status.message)
    except GeneratorExit:
        run.cancel()  # the run's own thread DELETEs the job; Blender does not wait long
        run.wait(CANCEL_WAIT_S)
        outcome.cancelled, outcome.message = True, "the extraction job on the backend was cancelled"
        raise
    status = run.snapshot()
    outcome.job_id = status.job_id
    if status.state == CANCELLED:
        outcome.cancelled, outcome.message = True, status.message
        return None
    if status.state != DONE:
        raise JobError(status.error or status.message)
    return run.result


def _unpack(request: ExtractRequest, data: bytes, outcome: ExtractOutcome) -> Path:
    stem = Path(request.video).stem
    try:
        folder = new_result_folder(request.out_root, stem)
    except OSError as error:
        raise JobError(f"cannot make a folder in {request.out_root}: {error.strerror or error}") from None
    try:
        unpack_result(data, folder)
        outcome.info = read_extraction(folder)
        keypoints = keypoints_folder(folder)
    except (ExtractionFileError, OSError) as error:
        remove_folder(folder)  # ours, just made: leave no half result behind
        text = str(error) if isinstance(error, ExtractionFileError) else error.strerror or str(error)
        raise JobError(f"the extraction of {Path(request.video).name} cannot be used: {text}") from None
    outcome.folder = folder
    return keypoints


def extract_steps(scene, request: ExtractRequest, outcome: ExtractOutcome):
    """Step generator for one Extract and Import (see the module doc)."""
    check_request(scene, request)
    scene_name = scene.name
    data = yield from _extract(request, outcome)
    if data is None:
        return
    keypoints = _unpack(request, data, outcome)
    info = outcome.info
    if info.note:
        outcome.notes.append(f"{info.extractor}: {info.note}")
    # The UI was free while the backend worked: the scene may have been renamed or deleted.
    scene = bpy.data.scenes.get(scene_name)
    if scene is None:
        raise JobError(f"the scene '{scene_name}' is gone; the extraction is in {outcome.folder}")
    options = replace(request.options, keypoints=str(keypoints), canvas=(info.width, info.height),
                      coordinates="pixels", source_fps=info.fps, source_name=Path(request.video).stem)
    steps = import_steps(scene, options, outcome.summary)
    try:
        for fraction, stage in steps:
            if fraction >= 1.0:  # the action is written: add the video in this same step
                break
            yield EXTRACT_SHARE + (1 - EXTRACT_SHARE) * fraction, stage
    except GeneratorExit:
        outcome.cancelled = True
        outcome.message = f"stopped before the import's last step (the extraction is kept in {outcome.folder})"
        raise
    finally:
        steps.close()
    _add_video(scene, request, outcome)


def _add_video(scene, request: ExtractRequest, outcome: ExtractOutcome) -> None:
    """The movie strip and the background clip, lined up with the keys; a failure here is a note
    (the keys are already in)."""
    info, summary = outcome.info, outcome.summary
    first_key = summary.report.first_frame
    scene_fps = scene.render.fps / scene.render.fps_base
    video_zero = first_key - (summary.grid_start or 0)  # the scene frame of the video's time 0
    video = Path(request.video).resolve()
    if request.movie_strip:
        try:
            movie, speed = vse.place_movie(scene, video.stem, video, video_zero, info.fps, info.frame_count)
            outcome.strip, outcome.channel = movie.name, movie.channel
            outcome.speed_strip = speed.name if speed is not None else None
        except (RuntimeError, ValueError) as error:
            outcome.notes.append(f"no movie strip: {error}")
    if request.background:
        try:
            camera = resolve_camera(scene, request.options.camera)
            shown = round((summary.grid_start or 0) * info.fps / scene_fps)
            outcome.background = add_background_clip(scene, camera, video, first_key, shown, info.fps)
            outcome.notes.append(outcome.background.note)
        except (RuntimeError, ValueError) as error:
            outcome.notes.append(f"no background clip: {error}")
    if info.rotation:
        outcome.notes.append(f"the video is stored rotated by {info.rotation} degrees: the keys follow the "
                             "upright picture; check that the strip and the background show it upright too")


def default_out_root() -> Path:
    """``//posebridge_extract`` (beside the .blend); JobError when the .blend is not saved."""
    if not bpy.data.filepath:
        raise JobError(f"save the .blend first: the extraction goes into //{DEFAULT_FOLDER} beside it "
                       "(or choose an absolute extraction folder)")
    return Path(bpy.path.abspath(f"//{DEFAULT_FOLDER}"))


def run_extract_import(scene, request: ExtractRequest, log=None) -> ExtractOutcome:
    """The whole Extract and Import in this thread (the batch command): the outcome (which may
    say cancelled: someone cancelled the job on the backend), JobError when it fails.
    ``log(line)`` gets each new progress line."""
    outcome = ExtractOutcome()
    shown = None
    for step in extract_steps(scene, request, outcome):
        line = f"{int(step[0] * 100):3d}% {step[1]}"
        if log is not None and line != shown:
            shown = line
            log(line)
        if isinstance(step, Waiting):
            time.sleep(WAIT_S)
    return outcome
