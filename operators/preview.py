"""Preview the current frame's pose map in the panel, without writing to the output folder."""
from __future__ import annotations

import os

import bpy

from ..draw.png import write_png
from ..render import pose_maps
from .render_pose_maps import plan_from_settings
from .stepped import job_running

_previews = None  # bpy.utils.previews collection, created on first use
PREVIEW_KEY = "pose_map"


def current_preview():
    """The last preview (a bpy.utils.previews entry), None when none was made this session."""
    if _previews is None or PREVIEW_KEY not in _previews:
        return None
    return _previews[PREVIEW_KEY]


def preview_icon_id() -> int:
    """The icon id of the last preview (0 when none); Blender loads the image when drawn."""
    entry = current_preview()
    return entry.icon_id if entry is not None else 0


def preview_path() -> str:
    return os.path.join(bpy.app.tempdir or os.path.expanduser("~"), "posebridge_preview.png")


def _store_preview(image) -> None:
    global _previews
    import bpy.utils.previews

    if _previews is None:
        _previews = bpy.utils.previews.new()
    path = preview_path()
    write_png(path, image)
    if PREVIEW_KEY in _previews:
        del _previews[PREVIEW_KEY]
    _previews.load(PREVIEW_KEY, path, "IMAGE", force_reload=True)


def release_previews() -> None:
    global _previews
    if _previews is not None:
        import bpy.utils.previews

        bpy.utils.previews.remove(_previews)
        _previews = None


class POSEBRIDGE_OT_preview_pose_map(bpy.types.Operator):
    """Draw the current frame's pose map in the panel"""

    bl_idname = "posebridge.preview_pose_map"
    bl_label = "Preview Pose Map"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return not job_running()  # a running job owns the scene's frame

    def execute(self, context):
        scene = context.scene
        try:
            job = plan_from_settings(scene, with_output=False)
            image = pose_maps.preview_map(scene, job, scene.frame_current)
        except pose_maps.JobError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        _store_preview(image)
        people = len(job.characters)
        self.report({"INFO"}, f"Previewed frame {scene.frame_current}: {people} character(s)")
        return {"FINISHED"}
