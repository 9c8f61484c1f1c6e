"""Import Pose: a reference clip's keypoints onto a rig as a new action (undoable). When the
source is a video, Extract and Import: the backend extracts the keypoints first
(render/extract_job.py), then the same import runs."""
from __future__ import annotations

from pathlib import Path

import bpy

from ..generate.extraction import is_video
from ..render import extract_job, import_job
from ..render.pose_maps import JobError
from .generate import backend_address, output_folder
from .stepped import SteppedOperator


def options_from_settings(scene) -> import_job.ImportOptions:
    settings = scene.posebridge.importer
    if settings.person == "INDEX":
        person = settings.person_index
    elif settings.person == "PIXEL":
        person = (float(settings.person_x), float(settings.person_y))
    else:
        person = "auto"
    return import_job.ImportOptions(
        keypoints=bpy.path.abspath(settings.keypoints) if settings.keypoints.strip() else "",
        armature=settings.armature.name if settings.armature else "",
        camera=settings.camera.name if settings.camera else None,
        layout=None if settings.layout == "AUTO" else settings.layout,
        coordinates=settings.coordinates,
        canvas=(settings.canvas_x, settings.canvas_y) if settings.use_canvas else None,
        person=person,
        start_frame=None if settings.use_scene_start else settings.start_frame,
        min_confidence=settings.min_confidence,
        fix_swaps=settings.fix_swaps,
        smooth=settings.smooth,
        smooth_strength=settings.smooth_strength,
        depth_mode=settings.depth_mode,
        ground=settings.ground,
        lift=settings.lift,
        camera_tilt=settings.camera_tilt,
    )


def extract_request(context, options: import_job.ImportOptions) -> extract_job.ExtractRequest:
    """The Import Pose panel's video source as an Extract and Import (the Generate panel's
    backend: the add-on preferences, which Start Local Backend also sets)."""
    settings = context.scene.posebridge.importer
    url, token = backend_address(context)
    use_range = settings.use_video_range
    return extract_job.ExtractRequest(
        video=Path(options.keypoints), backend_url=url, token=token,
        out_root=output_folder(settings.extract_dir, "extraction folder"), options=options,
        extractor=settings.extractor, every=settings.video_every,
        start=settings.video_start if use_range else None, end=settings.video_end if use_range else None,
        movie_strip=settings.add_movie_strip, background=settings.add_background,
    )


class POSEBRIDGE_OT_import_pose(SteppedOperator, bpy.types.Operator):
    """Import pose keypoints (OpenPose/DWPose JSON) onto the armature as a new action, or
    extract them from a video on the backend first. The armature keeps its proportions; its
    previous action is kept on the NLA"""

    bl_idname = "posebridge.import_pose"
    bl_label = "Import Pose"
    bl_options = {"REGISTER", "UNDO"}
    status_text = "PoseBridge: importing pose"

    def invoke(self, context, _event):
        return self._start(context, interactive=True)

    def execute(self, context):
        return self._start(context, interactive=False)

    def _start(self, context, interactive: bool):
        options = options_from_settings(context.scene)
        if not options.keypoints:
            self.report({"ERROR"}, "Choose a keypoints file or folder, or a video")
            return {"CANCELLED"}
        self._extract = None
        if is_video(options.keypoints):
            try:
                request = extract_request(context, options)
                extract_job.check_request(context.scene, request)  # at once, before sending
            except JobError as error:
                self.report({"ERROR"}, str(error))
                return {"CANCELLED"}
            self._extract = extract_job.ExtractOutcome()
            self.status_text = "PoseBridge: extracting and importing"
            steps = extract_job.extract_steps(context.scene, request, self._extract)
            return self.run_steps(context, steps, interactive)
        self._summary = import_job.ImportSummary()
        steps = import_job.import_steps(context.scene, options, self._summary)
        return self.run_steps(context, steps, interactive)

    def finish(self, context, cancelled: bool):
        if self._extract is not None:
            return self._finish_extract(cancelled)
        if cancelled:  # the action is written in the last step only: nothing changed
            self.report({"WARNING"}, "Import cancelled; the rig is unchanged")
            return {"CANCELLED"}
        self.report({"INFO"}, self._summary.text())
        for note in self._summary.notes:
            self.report({"INFO"}, note)
        return {"FINISHED"}

    def _finish_extract(self, cancelled: bool):
        outcome = self._extract
        if cancelled or outcome.cancelled:
            if not outcome.message:
                outcome.cancelled, outcome.message = True, "stopped before anything was sent"
            self.report({"WARNING"}, outcome.text())
            return {"CANCELLED"}
        self.report({"INFO"}, outcome.text())
        for note in outcome.all_notes:
            self.report({"INFO"}, note)
        return {"FINISHED"}
