"""Generate, and what goes with it: start/stop a local backend, export MP4, first-vs-last sheet.

Thin: read the panel and the add-on preferences, call render/generate_job.py and the generate/
package, report. The backend call runs on a thread; the operator only watches it from a timer.
"""
from __future__ import annotations

import os
from pathlib import Path

import bpy
from bpy.props import BoolProperty

from .. import preferences
from ..generate import families
from ..generate.client import BackendError
from ..generate.launcher import BackendLaunchError, start_local_backend
from ..draw.compare_sheet import write_first_last_sheet
from ..render import generate_job, generate_settings, video_export, vse
from ..render.pose_maps import JobError
from .render_pose_maps import pose_settings
from .stepped import SteppedOperator, job_running

TOKEN_ENV = "POSEBRIDGE_TOKEN"
_local = {"backend": None}  # the backend this Blender started, if any


def backend_address(context) -> tuple[str, str | None]:
    """(URL, token) from the add-on preferences; defaults when the add-on runs unregistered
    (a script that loaded it). POSEBRIDGE_TOKEN fills an empty token (farm machines)."""
    prefs = preferences.get(context)
    url = prefs.backend_url if prefs is not None else preferences.DEFAULT_BACKEND_URL
    token = (prefs.token if prefs is not None else "") or os.environ.get(TOKEN_ENV, "")
    return url.strip(), token or None


def output_folder(path: str, what: str) -> Path:
    if not path.strip():
        raise JobError(f"no {what} given")
    if path.startswith("//") and not bpy.data.filepath:
        raise JobError(f"the {what} {path} is relative to the .blend: save the .blend first or "
                       "choose an absolute folder")
    return Path(bpy.path.abspath(path)).resolve()


def request_from_settings(context) -> generate_job.GenerateRequest:
    settings = context.scene.posebridge.generate
    url, token = backend_address(context)
    params = dict(prompt=settings.prompt, negative=settings.negative, seed=settings.seed,
                  steps=settings.steps, guidance=settings.guidance, pose_scale=settings.pose_scale,
                  depth_scale=settings.depth_scale, batch=settings.batch)
    loras = generate_settings.panel_loras(settings.loras)
    if loras and settings.pipeline != "WAN_VACE":  # Wan reads no LoRA: the panel says so
        params["loras"] = loras
    params.update(generate_settings.video_params(
        generate_settings.panel_pipeline(settings.pipeline), settings.context_length,
        settings.context_stride, settings.identity_scale, resolution=settings.wan_resolution,
        vace_control=generate_settings.panel_vace_control(settings.vace_control)))
    request = generate_job.GenerateRequest(
        backend_url=url, token=token, params=params, strip_name=settings.name.strip() or "PoseBridge",
        out_dir=output_folder(settings.output_dir, "output folder"), overwrite=settings.overwrite,
        reference=generate_settings.reference_path(settings.reference), segment=settings.segment or None,
    )
    return generate_settings.as_preview(request) if settings.quality == "PREVIEW" else request


def _described(health: dict) -> str:
    family = {"sdxl": "SDXL", "sd15": "SD1.5"}.get(health.get("family"), "")
    return ", ".join(part for part in (family, health.get("device", "?")) if part)


class POSEBRIDGE_OT_generate(SteppedOperator, bpy.types.Operator):
    """Render the range's pose maps, generate frames on the backend and place them as one image
    strip in the Video Sequence Editor (ESC cancels; finished frames are kept)"""

    bl_idname = "posebridge.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER", "UNDO"}
    status_text = "PoseBridge: generating"

    run_in_background: BoolProperty(options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context, _event):
        self.run_in_background = True
        return self.execute(context)

    def execute(self, context):
        try:
            self._request = request_from_settings(context)
            generate_job.check_settings(self._request)  # at once, not after the pose maps
            if not context.scene.posebridge.depth:  # no depth maps will be rendered
                generate_job.check_depth_control(self._request.params, [])
        except JobError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self._outcome = generate_job.GenerateOutcome()
        steps = generate_job.generate_steps(context.scene, self._request, self._outcome,
                                            pose_settings=pose_settings(context.scene))
        return self.run_steps(context, steps, interactive=self.run_in_background)

    def finish(self, context, cancelled: bool):
        if cancelled or self._outcome.cancelled:
            saved = f"; frames already made stay in {self._request.out_dir}"
            self.report({"WARNING"}, "Generate cancelled" + saved)
            return {"CANCELLED"}
        self.report({"INFO"}, self._outcome.summary())
        return {"FINISHED"}


class POSEBRIDGE_OT_start_backend(bpy.types.Operator):
    """Start a generation backend on this machine with the Python set in the add-on preferences
    (its own torch and diffusers), and wait until its model is loaded"""

    bl_idname = "posebridge.start_backend"
    bl_label = "Start Local Backend"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, _context):
        backend = _local["backend"]
        return backend is None or not backend.running()

    def _start(self, context):
        """The started backend, or None after reporting why not."""
        prefs = preferences.get(context)
        if prefs is None or not prefs.python.strip():
            self.report({"ERROR"}, "set the backend's Python in the PoseBridge add-on preferences first")
            return None
        _url, token = backend_address(context)
        try:
            backend = start_local_backend(bpy.path.abspath(prefs.python), port=prefs.port,
                                          model=prefs.model.strip() or None, token=token)
        except BackendError as error:
            self.report({"ERROR"}, str(error))
            return None
        _local["backend"] = backend
        prefs.backend_url = backend.url
        return backend

    def execute(self, context):
        """From a script: start and wait until the model is loaded."""
        backend = self._start(context)
        if backend is None:
            return {"CANCELLED"}
        try:
            health = backend.wait_until_ready()
        except BackendError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        families.remember(health)
        self.report({"INFO"}, f"Backend ready at {backend.url} ({_described(health)})")
        return {"FINISHED"}

    def invoke(self, context, _event):
        """From the panel: start, then watch it load from a timer (Blender stays responsive)."""
        backend = self._start(context)
        if backend is None:
            return {"CANCELLED"}
        self._timer = context.window_manager.event_timer_add(0.5, window=context.window)
        context.window_manager.modal_handler_add(self)
        self.report({"INFO"}, f"Starting the backend at {backend.url} (log: {backend.log_path})")
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            health = _local["backend"].poll_ready()
        except (BackendLaunchError, BackendError) as error:
            context.window_manager.event_timer_remove(self._timer)
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if health is None:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        families.remember(health)  # "auto" line widths follow its family from now on
        self.report({"INFO"}, f"Backend ready at {_local['backend'].url} ({_described(health)})")
        return {"FINISHED"}


class POSEBRIDGE_OT_stop_backend(bpy.types.Operator):
    """Stop the backend this Blender started"""

    bl_idname = "posebridge.stop_backend"
    bl_label = "Stop Local Backend"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, _context):
        backend = _local["backend"]
        return backend is not None and backend.running() and not job_running()

    def execute(self, _context):
        stop_local_backend()
        self.report({"INFO"}, "Backend stopped")
        return {"FINISHED"}


def stop_local_backend() -> None:
    backend, _local["backend"] = _local["backend"], None
    if backend is not None:
        backend.stop()
        families.forget()  # "auto" line widths no longer follow a backend that is gone


def _generated_strip(context):
    settings = context.scene.posebridge.generate
    strip = vse.find_strip(context.scene, settings.name.strip() or "PoseBridge")
    if strip is None or strip.type != "IMAGE":
        raise JobError(f"no image strip named '{settings.name}': generate first")
    return strip


class POSEBRIDGE_OT_export_video(bpy.types.Operator):
    """Export the generated strip's frames as an MP4 (H.264) beside the frames"""

    bl_idname = "posebridge.export_video"
    bl_label = "Export MP4"
    bl_options = {"REGISTER"}

    overwrite: BoolProperty(options={"HIDDEN", "SKIP_SAVE"})

    def _target(self, context) -> Path:
        folder = output_folder(context.scene.posebridge.generate.output_dir, "output folder")
        return folder.parent / f"{folder.name}.mp4"

    def invoke(self, context, event):
        try:
            target = self._target(context)
        except JobError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        if target.exists():
            self.overwrite = True
            return context.window_manager.invoke_confirm(
                self, event, title="Replace video?", message=f"{target} already exists.",
                confirm_text="Replace")
        return self.execute(context)

    def execute(self, context):
        try:
            target = self._target(context)
            result = video_export.export_mp4(_generated_strip(context), target, overwrite=self.overwrite)
        except (JobError, FileExistsError, FileNotFoundError, RuntimeError, ValueError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        notes = f" ({'; '.join(result.notes)})" if result.notes else ""
        self.report({"INFO"}, f"Wrote {result.path}: {result.frames} frames, "
                    f"{result.size[0]}x{result.size[1]}, {result.codec}{notes}")
        return {"FINISHED"}


class POSEBRIDGE_OT_compare_sheet(bpy.types.Operator):
    """Write the first-vs-last frame sheet (generated frames over their pose maps) and open it as
    an image, to judge drift over the shot"""

    bl_idname = "posebridge.compare_sheet"
    bl_label = "First vs Last"
    bl_options = {"REGISTER"}

    def execute(self, context):
        try:
            frames_dir = output_folder(context.scene.posebridge.generate.output_dir, "output folder")
            poses_dir = frames_dir / "poses"
            target = frames_dir / "first_vs_last.png"
            first, last = write_first_last_sheet(frames_dir, target,
                                                 poses_dir if poses_dir.is_dir() else None)
        except (JobError, FileNotFoundError, ValueError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        image = bpy.data.images.get(target.name)
        if image is not None and Path(bpy.path.abspath(image.filepath)).resolve() == target:
            image.reload()
        else:
            image = bpy.data.images.load(str(target), check_existing=True)
        self.report({"INFO"}, f"Wrote {target} (frames {first} and {last}); open '{image.name}' in an Image Editor")
        return {"FINISHED"}


CLASSES = (POSEBRIDGE_OT_generate, POSEBRIDGE_OT_start_backend, POSEBRIDGE_OT_stop_backend,
           POSEBRIDGE_OT_export_video, POSEBRIDGE_OT_compare_sheet)
