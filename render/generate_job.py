"""The Generate job in Blender: pose maps -> backend -> frames on disk -> one VSE strip.

``generate_steps`` is a step generator like the other jobs (operators/stepped.py): the panel's
operator runs it from a timer, the batch command runs it to the end. The HTTP work happens on the
GenerationRun's own thread; this generator only looks at its progress, so Blender's UI never
waits on the network. Closing the generator (ESC) cancels the job on the backend; every frame
already saved stays (AnimateDiff saves a video's frames when the whole video, or segment, is
done), and the next run makes only the missing ones.

Settings that cannot work (a stride longer than the context, a missing reference image, a
pipeline the backend does not have, a Wan segment too short for its lead frames, a depth control
video without depth maps) stop the job before anything is sent, as a SettingsError: the batch
command's usage error.
"""
from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import bpy

from ..generate import controls as control_files
from ..generate import families
from ..generate.client import BackendClient, BackendError
from ..generate.controls import ControlFolderError
from ..generate.job_folder import PARAM_DEFAULTS, PIPELINE_NAMES, effective_pipeline
from ..generate.planning import check_reference, plan_generation
from ..generate.run import GenerationRun
from ..generate.run_state import CANCELLED, DONE
from ..generate.videos import WAN_VACE, CuttingError, cutting
from ..draw.png import png_size
from . import pose_map_run, pose_maps, vse
from .camera import render_size
from .job_steps import Waiting
from .generate_settings import SettingsError, half_size
from .pose_maps import JobError

# The share of the progress bar the pose maps take when Generate renders them first.
POSE_SHARE = 0.1
# How long ESC waits for the run's thread to tell the backend (DELETE); it finishes on its own.
CANCEL_WAIT_S = 0.5


@dataclass
class GenerateRequest:
    """One Generate press (or batch command): where, what, and with which settings."""

    backend_url: str
    out_dir: Path
    params: dict
    strip_name: str
    token: str | None = None
    poses_dir: Path | None = None  # None: render the range's pose maps into out_dir/poses
    depth_dir: Path | None = None  # None: depth_NNNN.png beside the pose maps, when there are any
    overwrite: bool = False
    reference: Path | None = None  # the character's identity reference (a PNG), or none
    segment: int | None = None  # temporal pipelines: frames per job; None: the pipeline's default
    preview: bool = False  # the fast preview: maps at half size (generate_settings.as_preview)


@dataclass
class GenerateOutcome:
    """What a finished (or stopped) Generate did, for the report."""

    frames_total: int = 0
    frames_made: int = 0
    frames_reused: int = 0
    strip: str | None = None
    channel: int | None = None
    held: list[int] = field(default_factory=list)
    cancelled: bool = False
    message: str = ""
    pipeline: str | None = None  # what the backend ran (the one asked for, or its default)
    notes: list[str] = field(default_factory=list)  # what was fitted to the backend, or advice

    def summary(self) -> str:
        if self.cancelled:
            return f"Generate cancelled: {self.message}"
        made_with = f" with {self.pipeline}" if self.pipeline else ""
        text = (f"Generated {self.frames_made} frame(s){made_with}, kept {self.frames_reused} already "
                f"made; strip '{self.strip}' on channel {self.channel}")
        if self.held:
            text += f" ({len(self.held)} frame(s) without a pose map hold the previous frame)"
        if self.notes:
            text += "; " + "; ".join(self.notes)
        return text


def check_settings(request: GenerateRequest) -> None:
    """What can be told wrong before asking the backend: SettingsError naming it."""
    params = request.params
    length = params.get("context_length", PARAM_DEFAULTS["context_length"])
    stride = params.get("context_stride", PARAM_DEFAULTS["context_stride"])
    if stride > length and params.get("pipeline") != WAN_VACE:  # Wan has no context windows
        raise SettingsError(f"the context stride ({stride}) must not exceed the context length "
                            f"({length}): windows that far apart would leave frames out")
    if params.get("pipeline") not in (None, *PIPELINE_NAMES):
        raise SettingsError(f"unknown pipeline {params['pipeline']!r} (choose {', '.join(PIPELINE_NAMES)})")
    if request.segment is not None and request.segment < 1:
        raise SettingsError(f"a segment must be at least 1 frame (got {request.segment})")
    if params.get("pipeline") == WAN_VACE:
        _check_cutting(WAN_VACE, request.segment)
    _check_reference(request.reference)


def _check_cutting(pipeline: str, segment: int | None) -> None:
    try:
        cutting(pipeline, segment)
    except CuttingError as error:
        raise SettingsError(str(error)) from None


def check_depth_control(params: dict, controls) -> None:
    """Wan VACE's depth control videos need depth maps: SettingsError when none are sent."""
    control = params.get("vace_control")
    if control in ("depth", "pose_over_depth") and not any(c.depth is not None for c in controls):
        raise SettingsError(f"the {control.replace('_', ' ')} control video needs depth maps and there are "
                            "none (render them with Depth on, or --depth in the batch command; or "
                            "choose the pose control)")


def _check_reference(reference) -> None:
    try:
        check_reference(reference)
    except ControlFolderError as error:
        raise SettingsError(str(error)) from None


def check_backend_can(params: dict, reference: Path | None, health: dict, url: str) -> str:
    """The pipeline the backend will run; SettingsError when it cannot do what is asked (a
    pipeline it lacks, a reference without an IP-Adapter for the SD1.5 pipelines, a longer
    context than its motion module sees, Auto meaning Wan with a segment too short for it). A
    backend whose /health predates pipelines is left to answer for itself."""
    check_preview(params, health, url)
    pipeline = effective_pipeline(params, health)
    offered = health.get("pipelines")
    if offered is not None and pipeline not in offered:
        hint = ""
        if pipeline == WAN_VACE:  # the backend says why its Wan model is missing, when it knows
            why = (health.get("models") or {}).get("wan_unavailable")
            hint = f" ({why})" if why else " (start it with a Wan model: serve --wan-model)"
        raise SettingsError(f"the backend at {url} has no {pipeline} pipeline{hint} (it runs: "
                            f"{', '.join(offered) or 'none'}); choose another or Auto")
    # Wan VACE takes the reference image itself; the SD1.5 pipelines need an IP-Adapter for it.
    if reference is not None and pipeline != WAN_VACE and health.get("has_ip_adapter") is False:
        raise SettingsError(f"the backend at {url} has no IP-Adapter for the identity reference "
                            "(start it with one, or clear the reference)")
    longest = health.get("max_context_length")
    length = params.get("context_length", PARAM_DEFAULTS["context_length"])
    if pipeline == "animatediff" and longest is not None and length > longest:
        raise SettingsError(f"a context of {length} frames is longer than the backend's motion module "
                            f"sees ({longest} frames)")
    return pipeline


def check_preview(params: dict, health: dict, url: str) -> None:
    """SettingsError when a preview is asked of a backend that has none, saying why."""
    if params.get("preview") and not health.get("preview"):
        why = health.get("preview_unavailable") or "it has no preview LoRA (serve --preview-lora)"
        raise SettingsError(f"the backend at {url} has no fast preview: {why}")


def multiple_of_8(params: dict, width: int, height: int) -> dict:
    """Stable Diffusion needs sizes in multiples of 8: ask for the nearest below when the pose
    maps are not (the strip is fitted to the render size anyway). Wan VACE picks its own size
    from its resolution and gives the frames back at the pose maps' size: nothing to ask."""
    params = dict(params)
    if params.get("pipeline") == WAN_VACE:
        return params
    if width % 8 or height % 8:
        params.setdefault("width", max(8, width // 8 * 8))
        params.setdefault("height", max(8, height // 8 * 8))
    return params


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_online_access(url: str) -> None:
    """A backend on another machine is online access: Blender's "Allow Online Access" (or
    --offline-mode) must permit it. One on this machine (loopback) always may be used."""
    if not is_loopback(url) and not getattr(bpy.app, "online_access", True):
        raise JobError(f"the backend {url} is on another machine and Blender's online access is off "
                       "(Preferences > System > Network > Allow Online Access)")


def _render_pose_maps(scene, poses_dir: Path, pose_settings: dict):
    """Step generator: the range's pose maps into poses_dir (Generate's own folder: always redone,
    so the frames follow the animation as it is now). Returns the job."""
    job = pose_maps.plan_job(scene, output_dir=str(poses_dir), **pose_settings)
    report = pose_map_run.JobReport()
    for fraction in pose_map_run.run_job(scene, job, report):
        yield fraction * POSE_SHARE, "rendering pose maps"
    return job


def fit_to_backend(scene, pose_settings: dict, health: dict, outcome: GenerateOutcome,
                   preview: bool = False) -> dict:
    """Generate's pose-map settings for this backend: an SDXL one gets its maps at the SDXL size
    nearest the render's aspect (when the size follows the scene), and "auto" line widths its
    pose style; a preview, half that size. What changed is noted for the report."""
    settings = dict(pose_settings)
    size = families.map_size_for(health, render_size(scene), settings.get("resolution"))
    if size != settings.get("resolution"):
        settings["resolution"] = size
        outcome.notes.append(f"pose maps at {size[0]}x{size[1]}, SDXL's size for this aspect")
    if preview:
        settings["resolution"] = half_size(*(settings.get("resolution") or render_size(scene)))
        outcome.notes.append("preview at {}x{}".format(*settings["resolution"]))
    if settings.get("line_widths") == families.AUTO:
        widths = families.line_widths_for(families.AUTO, health)
        settings["line_widths"] = widths
        if widths != families.DEFAULT_POSE_STYLE:
            outcome.notes.append(f"{families.STYLE_NAMES.get(widths, widths)} line widths, as the backend's "
                                 f"{families.family_of(health) or 'model'} ControlNet reads them")
    return settings


def _controls(request: GenerateRequest, frames=None):
    depth_dir = request.depth_dir
    if depth_dir is None and control_files.numbered_pngs(request.poses_dir, control_files.DEPTH_PREFIX):
        depth_dir = request.poses_dir
    try:
        return control_files.control_frames(request.poses_dir, depth_dir, frames=frames)
    except ControlFolderError as error:
        raise JobError(str(error)) from None


def _in_background(work, fraction: float, stage: str):
    """Step generator: run ``work()`` on a thread (it talks to the network), yielding Waiting
    until it ends; returns its result or raises its error here."""
    outcome = {}

    def target():
        try:
            outcome["value"] = work()
        except BaseException as error:  # handed to the generator's thread below
            outcome["error"] = error

    thread = threading.Thread(target=target, name="posebridge-plan", daemon=True)
    thread.start()
    while thread.is_alive():
        yield Waiting(fraction, stage)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def generate_steps(scene, request: GenerateRequest, outcome: GenerateOutcome, pose_settings=None):
    """Step generator for one Generate. pose_settings (plan_job's keyword arguments) renders the
    pose maps first into out_dir/poses; without it request.poses_dir must hold them. While the
    backend works it yields Waiting: Blender's data is not touched until the strip is placed."""
    check_online_access(request.backend_url)
    check_settings(request)
    out_dir = Path(request.out_dir)
    scene_name = scene.name
    frames = None
    share = 0.0
    client = BackendClient(request.backend_url, request.token)
    if pose_settings is not None:
        # The backend first: its family decides the maps' size and (set to auto) line widths.
        try:
            health = yield from _in_background(client.health, 0.0, f"asking the backend at {request.backend_url}")
        except BackendError as error:
            raise JobError(str(error)) from None
        families.remember(health)
        check_preview(request.params, health, request.backend_url)  # before the maps are rendered
        pose_settings = fit_to_backend(scene, pose_settings, health, outcome, preview=request.preview)
        request.poses_dir = out_dir / "poses"
        job = yield from _render_pose_maps(scene, request.poses_dir, pose_settings)
        frames = job.frames
        share = POSE_SHARE
    elif request.poses_dir is None:
        raise JobError("no pose maps: give a folder of pose_NNNN.png or render them first")
    controls = _controls(request, frames)
    check_depth_control(request.params, controls)
    size = png_size(controls[0].pose)
    if size is None:
        raise JobError(f"{controls[0].pose} is not a PNG image")
    if request.preview and pose_settings is None and "width" not in request.params:  # maps made at full size
        width, height = half_size(*size)
        request.params = {**request.params, "width": width, "height": height}
    request.params = multiple_of_8(request.params, *size)
    outcome.frames_total = len(controls)

    try:
        plan, health = yield from _in_background(
            lambda: plan_generation(client, out_dir, controls, request.params, request.reference,
                                    request.segment),
            share, f"asking the backend at {request.backend_url}")
    except (BackendError, ControlFolderError) as error:
        raise JobError(str(error)) from None
    families.remember(health)
    if pose_settings is None:  # maps made elsewhere: say when they do not suit the backend
        note = families.small_maps_note(health, size)
        if note:
            outcome.notes.append(note)
    outcome.pipeline = check_backend_can(request.params, request.reference, health, request.backend_url)
    if plan.stale and not request.overwrite:
        raise JobError(
            f"{len(plan.stale)} frame(s) in {out_dir} were made with other settings or other pose "
            f"maps ({plan.stale_description()}); allow overwriting to replace them (Overwrite in "
            "the panel, --overwrite in the batch command), or pick another output folder"
        )
    outcome.frames_reused = len(plan.done)

    run = GenerationRun(client, out_dir, controls, request.params, overwrite=request.overwrite,
                        name=request.strip_name, reference=request.reference, segment=request.segment)
    run.start()
    try:
        while not run.finished:
            status = run.snapshot()
            yield Waiting(share + (1.0 - share) * status.progress, status.message)
    except GeneratorExit:
        run.cancel()  # the run's own thread tells the backend; Blender does not wait long
        run.wait(CANCEL_WAIT_S)
        raise
    status = run.snapshot()
    outcome.frames_made = status.frames_written
    if status.state == CANCELLED:
        outcome.cancelled, outcome.message = True, status.message
        return
    if status.state != DONE:
        raise JobError(status.error or status.message)
    # The UI was free while the backend worked: the scene may have been renamed or deleted.
    scene = bpy.data.scenes.get(scene_name)
    if scene is None:
        raise JobError(f"the scene '{scene_name}' is gone; the frames are in {out_dir}")
    _place_strip(scene, request, controls, outcome)


def _place_strip(scene, request: GenerateRequest, controls, outcome: GenerateOutcome) -> None:
    """Every generated frame of the range (this run's and earlier ones) as one image strip."""
    out_dir = Path(request.out_dir)
    present = {
        c.frame: control_files.frame_file_name(control_files.OUTPUT_PREFIX, c.frame)
        for c in controls
        if (out_dir / control_files.frame_file_name(control_files.OUTPUT_PREFIX, c.frame)).is_file()
    }
    if not present:
        raise JobError(f"no generated frames in {out_dir}")
    elements = vse.timeline_elements(present)
    strip = vse.place_image_sequence(scene, request.strip_name, out_dir, elements.filenames,
                                     elements.frame_start)
    outcome.strip, outcome.channel, outcome.held = strip.name, strip.channel, elements.held
