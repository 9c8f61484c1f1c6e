"""Plain Workbench renders of chosen frames, for the demo's contact sheet and the benchmark."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import bpy

from ..draw.png import read_png


def render_workbench_frames(scene, frames, folder=None, resolution=None) -> list[Path]:
    """Render ``frames`` with Workbench into ``folder`` (PNG per frame), restoring the scene's
    render settings and current frame afterwards. Returns the written paths in frame order."""
    folder = Path(folder or tempfile.mkdtemp(prefix="posebridge_render_"))
    folder.mkdir(parents=True, exist_ok=True)
    render = scene.render
    saved = (
        render.engine, render.filepath, render.resolution_x, render.resolution_y,
        render.resolution_percentage, render.image_settings.file_format, render.image_settings.color_mode,
        scene.frame_current, scene.frame_subframe,
    )
    # Blender 5.0 splits image and movie outputs: a scene writing video must switch to images first.
    media_type = getattr(render.image_settings, "media_type", None)
    paths = []
    try:
        render.engine = "BLENDER_WORKBENCH"
        if media_type is not None:
            render.image_settings.media_type = "IMAGE"
        render.image_settings.file_format = "PNG"
        render.image_settings.color_mode = "RGB"
        if resolution:
            render.resolution_x, render.resolution_y = resolution
            render.resolution_percentage = 100
        for frame in frames:
            scene.frame_set(frame)
            path = folder / f"render_{frame:04d}.png"
            render.filepath = str(path)
            bpy.ops.render.render(write_still=True, scene=scene.name)
            paths.append(path)
    finally:
        if media_type is not None:
            render.image_settings.media_type = media_type
        (render.engine, render.filepath, render.resolution_x, render.resolution_y,
         render.resolution_percentage, render.image_settings.file_format,
         render.image_settings.color_mode, frame_before, subframe_before) = saved
        scene.frame_set(frame_before, subframe=subframe_before)
    return paths


def load_rgb(path: os.PathLike):
    return read_png(path)[..., :3]
