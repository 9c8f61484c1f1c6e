"""Render Pose Maps: the panel's main button. Thin: reads settings, runs the job, reports."""
from __future__ import annotations

import time

import bpy
from bpy.props import BoolProperty

from ..render import pose_maps

# How long one timer tick may work before handing control back to Blender's UI.
TICK_BUDGET_S = 0.05


def plan_from_settings(scene, with_output: bool = True) -> pose_maps.PoseMapJob:
    """The job the panel's settings describe (raises JobError naming a problem)."""
    settings = scene.posebridge
    return pose_maps.plan_job(
        scene,
        output_dir=settings.output_dir if with_output else None,
        frame_start=None if settings.use_scene_frames else settings.frame_start,
        frame_end=None if settings.use_scene_frames else settings.frame_end,
        resolution=None if settings.use_scene_resolution else (settings.resolution_x, settings.resolution_y),
        camera_name=settings.camera.name if settings.camera else None,
        hands=settings.hands,
        face=settings.face,
        line_widths=settings.line_widths,
    )


class POSEBRIDGE_OT_render_pose_maps(bpy.types.Operator):
    """Render OpenPose maps and keypoint JSON for the frame range (ESC cancels)"""

    bl_idname = "posebridge.render_pose_maps"
    bl_label = "Render Pose Maps"
    bl_options = {"REGISTER"}  # writes files only; the scene is left unchanged

    run_in_background: BoolProperty(options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context, event):
        try:
            job = plan_from_settings(context.scene)
        except pose_maps.JobError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.run_in_background = True
        existing = job.existing_outputs()
        if existing:
            return context.window_manager.invoke_confirm(
                self, event, title="Replace pose maps?",
                message=f"{len(existing)} pose map(s) of this range already exist in {job.output_dir}.",
                confirm_text="Replace",
            )
        return self.execute(context)

    def execute(self, context):
        try:
            self._job = plan_from_settings(context.scene)
        except pose_maps.JobError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self._report = pose_maps.JobReport()
        if not self.run_in_background or context.window is None:
            for _ in pose_maps.run_job(context.scene, self._job, self._report):
                pass
            return self._finish(context)
        self._steps = pose_maps.run_job(context.scene, self._job, self._report)
        window_manager = context.window_manager
        self._timer = window_manager.event_timer_add(0.01, window=context.window)
        window_manager.progress_begin(0, 100)
        window_manager.modal_handler_add(self)
        context.workspace.status_text_set("PoseBridge: rendering pose maps (ESC to cancel)")
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC":
            self._steps.close()  # keeps the frames already written
            return self._end_modal(context)
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        deadline = time.perf_counter() + TICK_BUDGET_S
        try:
            while time.perf_counter() < deadline:
                fraction = next(self._steps)
                context.window_manager.progress_update(int(fraction * 100))
        except StopIteration:
            return self._end_modal(context)
        except Exception as error:  # a failure mid-job: report it, keep what was written
            self.report({"ERROR"}, f"Pose maps failed: {error}")
            self._steps.close()
            self._cleanup(context)
            return {"CANCELLED"}
        return {"RUNNING_MODAL"}

    def _cleanup(self, context):
        context.window_manager.event_timer_remove(self._timer)
        context.window_manager.progress_end()
        context.workspace.status_text_set(None)

    def _end_modal(self, context):
        self._cleanup(context)
        return self._finish(context)

    def _finish(self, context):
        level = {"WARNING"} if self._report.cancelled else {"INFO"}
        self.report(level, self._report.summary(self._job))
        return {"CANCELLED"} if self._report.cancelled else {"FINISHED"}
