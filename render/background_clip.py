"""The reference video behind the rig: the camera's background movie clip.

A new MovieClip and a new background entry on the camera every time (the camera's other
backgrounds are left as they are, only ``show_background_images`` is switched on so the clip is
seen). The clip is placed so that the video frame at the first imported key shows on that key's
scene frame.

Blender plays a movie clip one video frame per scene frame: it cannot be retimed. When the
video's rate is not the scene's, the background matches the keys at their first frame and then
runs at the scene's rate (a 60 fps clip in a 24 fps scene plays 2.5 times slower); the VSE strip
(render/vse.py ``place_movie``) plays in real time. ``note`` says so in the report.
"""
from __future__ import annotations

from dataclasses import dataclass

import bpy

from ..retarget.resample import format_fps


@dataclass(frozen=True)
class BackgroundClip:
    clip: str  # the MovieClip's name
    camera: str  # the camera object's name
    frame_start: int  # the scene frame where the clip's first frame shows
    note: str


def add_background_clip(scene, camera_obj, filepath, first_key_frame: int, video_frame: int,
                        video_fps: float) -> BackgroundClip:
    """Show ``filepath`` behind ``camera_obj``'s view, with video frame ``video_frame`` (0-based)
    on scene frame ``first_key_frame``."""
    clip = bpy.data.movieclips.load(str(filepath), check_existing=False)
    clip.frame_start = int(first_key_frame) - int(video_frame)
    background = camera_obj.data.background_images.new()
    background.source = "MOVIE_CLIP"
    background.clip = clip
    background.use_camera_clip = False
    background.frame_method = "FIT"
    background.show_background_image = True
    camera_obj.data.show_background_images = True
    scene_fps = scene.render.fps / scene.render.fps_base
    note = (f"camera '{camera_obj.name}' shows '{clip.name}' as its background, in step with the keys "
            f"at frame {first_key_frame}")
    if abs(scene_fps - video_fps) >= 1e-3:
        note += (f"; Blender plays a background clip one video frame per scene frame, so this "
                 f"{format_fps(video_fps)} fps video runs {video_fps / scene_fps:.3g}x slower than real time "
                 "there and drifts from the keys after that frame (the VSE strip plays in real time)")
    return BackgroundClip(clip.name, camera_obj.name, clip.frame_start, note)
