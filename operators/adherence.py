"""Check Pose Adherence and Jump to Worst Frame, on the Generate panel.

Thin: the check's HTTP work runs on generate/adherence_run.py's thread; the operator only
watches it from a timer (status-bar progress, ESC cancels and DELETEs the job). The report lands
in the generated folder as adherence.json and adherence.png, which the panel reads back.
"""
from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, IntProperty

from ..generate.adherence import REPORT_PNG, AdherenceSummary, keypoints_folder, read_summary
from ..generate.adherence_run import AdherenceCheck
from ..generate.client import BackendClient, BackendError
from ..generate.controls import OUTPUT_PREFIX, frame_file_name
from ..generate.run_state import CANCELLED, FAILED
from ..render import vse
from ..render.generate_job import check_online_access
from ..render.job_steps import Waiting
from ..render.pose_maps import JobError
from .generate import backend_address, output_folder
from .stepped import SteppedOperator

# How long ESC waits for the check's thread to tell the backend (DELETE); it ends on its own.
CANCEL_WAIT_S = 0.5
POSES_FOLDER = "poses"  # where the panel's Generate renders its pose maps, inside the output folder


def generated_folder(context) -> Path:
    """The Generate panel's output folder (JobError when it cannot be resolved)."""
    return output_folder(context.scene.posebridge.generate.output_dir, "output folder")


def report_summary(context) -> AdherenceSummary | None:
    """The output folder's adherence report, or None (none yet, or no folder to look in)."""
    try:
        return read_summary(generated_folder(context))
    except JobError:
        return None


def scene_frame_of(scene, strip_name: str, folder: Path, frame: int) -> int:
    """Where generated frame ``frame`` shows: its element in the generated strip when that strip
    shows this folder's frames (the user may have moved it), else the frame's own number (the
    strip's placement)."""
    strip = vse.find_strip(scene, strip_name)
    if strip is None or strip.type != "IMAGE":
        return frame
    if Path(bpy.path.abspath(strip.directory)).resolve() != Path(folder).resolve():
        return frame
    name = frame_file_name(OUTPUT_PREFIX, frame)
    for index, element in enumerate(strip.elements):
        if element.filename == name:
            return int(round(strip.frame_start)) + index
    return frame


def adherence_steps(check: AdherenceCheck):
    """Step generator: start the check and wait on it (Waiting: the UI stays free); closing the
    generator (ESC) cancels it on the backend."""
    check.start()
    try:
        while not check.finished:
            status = check.snapshot()
            yield Waiting(status.progress, status.message)
    except GeneratorExit:
        check.cancel()
        check.wait(CANCEL_WAIT_S)
        raise
    status = check.snapshot()
    if status.state == FAILED:
        raise JobError(status.error or status.message)


def _show_image(path: Path):
    image = bpy.data.images.get(path.name)
    if image is not None and Path(bpy.path.abspath(image.filepath)).resolve() == path.resolve():
        image.reload()
        return image
    return bpy.data.images.load(str(path), check_existing=True)


def _redraw(context) -> None:
    """The panel shows the new score at once, not on the next mouse move."""
    if context.screen is not None:
        for area in context.screen.areas:
            area.tag_redraw()


class POSEBRIDGE_OT_check_adherence(SteppedOperator, bpy.types.Operator):
    """Detect the pose in every generated frame on the backend and compare it with the keypoints
    the pose maps were drawn from: writes adherence.json and adherence.png into the output folder
    (ESC cancels; the frames are never touched)"""

    bl_idname = "posebridge.check_adherence"
    bl_label = "Check Pose Adherence"
    bl_options = {"REGISTER"}
    status_text = "PoseBridge: checking pose adherence"

    run_in_background: BoolProperty(options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context, _event):
        self.run_in_background = True
        return self.execute(context)

    def execute(self, context):
        settings = context.scene.posebridge.generate
        try:
            folder = generated_folder(context)
            url, token = backend_address(context)
            check_online_access(url)
            client = BackendClient(url, token)
        except (JobError, BackendError) as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self._check = AdherenceCheck(client, folder, keypoints_folder(folder / POSES_FOLDER),
                                     threshold=settings.adherence_threshold)
        return self.run_steps(context, adherence_steps(self._check), interactive=self.run_in_background)

    def finish(self, context, cancelled: bool):
        status = self._check.snapshot()
        if cancelled or status.state == CANCELLED:
            self.report({"WARNING"}, "Pose adherence check cancelled; the frames are untouched")
            return {"CANCELLED"}
        summary = status.summary
        for note in self._check.notes():
            self.report({"WARNING"}, note)
        picture = summary.report.with_name(REPORT_PNG)
        if picture.is_file():
            image = _show_image(picture)
            shown = f"; open '{image.name}' in an Image Editor for the curve and the worst frames"
        else:
            shown = ""
        _redraw(context)
        self.report({"INFO"}, f"Pose adherence {summary.score:.2f}: worst frame {summary.worst_frame}, "
                    f"{len(summary.flagged_frames)} flagged ({summary.flagged_text()}){shown}")
        return {"FINISHED"}


class POSEBRIDGE_OT_jump_to_worst_frame(bpy.types.Operator):
    """Set the scene to the frame the adherence report found worst (or the frame given), where
    the generated strip shows it"""

    bl_idname = "posebridge.jump_to_worst_frame"
    bl_label = "Jump to Worst Frame"
    bl_options = {"REGISTER", "UNDO"}

    frame: IntProperty(name="Frame", description="A generated frame's number to jump to (the "
                       "worst one when not set)", options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        summary = report_summary(context)
        return summary is not None and summary.worst_frame is not None

    def execute(self, context):
        summary = report_summary(context)
        if summary is None or summary.worst_frame is None:
            self.report({"ERROR"}, "no pose adherence report in the output folder: check first")
            return {"CANCELLED"}
        frame = self.frame if self.properties.is_property_set("frame") else summary.worst_frame
        settings = context.scene.posebridge.generate
        target = scene_frame_of(context.scene, settings.name.strip() or "PoseBridge",
                                summary.report.parent, frame)
        context.scene.frame_set(target)
        self.report({"INFO"}, f"Generated frame {frame} at scene frame {target}")
        return {"FINISHED"}


CLASSES = (POSEBRIDGE_OT_check_adherence, POSEBRIDGE_OT_jump_to_worst_frame)
