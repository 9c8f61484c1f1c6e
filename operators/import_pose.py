"""Import Pose: a reference clip's keypoints onto a rig as a new action (undoable)."""
from __future__ import annotations

import bpy

from ..render import import_job
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
        keypoints=bpy.path.abspath(settings.keypoints) if settings.keypoints else "",
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
    )


class POSEBRIDGE_OT_import_pose(SteppedOperator, bpy.types.Operator):
    """Import pose keypoints (OpenPose/DWPose JSON) onto the armature as a new action. The
    armature keeps its proportions; its previous action is kept on the NLA"""

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
            self.report({"ERROR"}, "Choose a keypoints file or folder")
            return {"CANCELLED"}
        self._summary = import_job.ImportSummary()
        steps = import_job.import_steps(context.scene, options, self._summary)
        return self.run_steps(context, steps, interactive)

    def finish(self, context, cancelled: bool):
        if cancelled:  # the action is written in the last step only: nothing changed
            self.report({"WARNING"}, "Import cancelled; the rig is unchanged")
            return {"CANCELLED"}
        self.report({"INFO"}, self._summary.text())
        for note in self._summary.notes:
            self.report({"INFO"}, note)
        return {"FINISHED"}
