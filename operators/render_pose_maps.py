"""Render Pose Maps: the panel's main button. Thin: reads settings, runs the job, reports."""
from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty

from ..generate import families
from ..render import pose_map_run, pose_maps
from .stepped import SteppedOperator


def pose_settings(scene) -> dict:
    """The Pose Maps panel's settings as plan_job's keyword arguments (all but the folder)."""
    settings = scene.posebridge
    return dict(
        frame_start=None if settings.use_scene_frames else settings.frame_start,
        frame_end=None if settings.use_scene_frames else settings.frame_end,
        resolution=None if settings.use_scene_resolution else (settings.resolution_x, settings.resolution_y),
        camera_name=settings.camera.name if settings.camera else None,
        hands=settings.hands,
        face=settings.face,
        line_widths=settings.line_widths,
        depth=settings.depth,
        depth_mode=settings.depth_mode,
        depth_bits=int(settings.depth_bits),
        depth_subject=settings.depth_subject,
        depth_range=(settings.depth_near, settings.depth_far) if settings.depth_use_range else None,
        occlusion=settings.occlusion,
    )


def plan_from_settings(scene, with_output: bool = True) -> pose_maps.PoseMapJob:
    """The job the panel's settings describe (raises JobError naming a problem)."""
    output_dir = scene.posebridge.output_dir if with_output else None
    return pose_maps.plan_job(scene, output_dir=output_dir, **pose_settings(scene))


class POSEBRIDGE_OT_render_pose_maps(SteppedOperator, bpy.types.Operator):
    """Render OpenPose maps and keypoint JSON for the frame range (ESC cancels)"""

    bl_idname = "posebridge.render_pose_maps"
    bl_label = "Render Pose Maps"
    bl_options = {"REGISTER"}  # writes files only; the scene is left unchanged
    status_text = "PoseBridge: rendering pose maps"

    run_in_background: BoolProperty(options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context, event):
        # Check the settings without creating the output folder: the user may still say no.
        try:
            job = plan_from_settings(context.scene, with_output=False)
        except pose_maps.JobError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.run_in_background = True
        folder = Path(bpy.path.abspath(context.scene.posebridge.output_dir))
        existing = job.existing_outputs(folder)
        if existing:
            return context.window_manager.invoke_confirm(
                self, event, title="Replace pose maps?",
                message=f"{len(existing)} pose/depth map(s) of this range and their keypoint files "
                f"already exist in {folder}.",
                confirm_text="Replace",
            )
        return self.execute(context)

    def execute(self, context):
        try:
            self._job = plan_from_settings(context.scene)
        except pose_maps.JobError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self._report = pose_map_run.JobReport()
        steps = pose_map_run.run_job(context.scene, self._job, self._report)
        return self.run_steps(context, steps, interactive=self.run_in_background)

    def finish(self, context, cancelled: bool):
        # Cancelling keeps the frames already written; the report says how many.
        self._report.cancelled = self._report.cancelled or cancelled
        level = {"WARNING"} if cancelled else {"INFO"}
        summary = self._report.summary(self._job)
        if context.scene.posebridge.line_widths == families.AUTO:  # say what "auto" meant this time
            summary += f"; {families.describe(families.AUTO).removeprefix('Auto: ')}"
        self.report(level, summary)
        return {"CANCELLED"} if cancelled else {"FINISHED"}
