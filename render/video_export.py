"""Export a generated image sequence as an MP4, leaving the user's scene exactly as it was.

The render happens in a temporary scene that holds only a fresh image strip with the same
files: render size = frame size, frame rate from the source scene, Standard view transform (so
the video shows the PNGs' own colours, not AgX/Filmic applied on top). The temporary scene is
removed afterwards, also on error. Blender writes into a private folder beside the target and
the finished file is moved into place, so a failed export never leaves half a video at the
target path.

H.264 is asked for first; if Blender's FFmpeg cannot encode it, MPEG-4 Part 2 in the same MP4
container is used instead and the result says so.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import bpy

from .vse import strips_collection

# Tried in order: H.264 where the FFmpeg build has it, else MPEG-4 Part 2 (also valid in MP4).
CODECS = ("H264", "MPEG4")
_TEMP_SCENE = "PoseBridge video export"


@dataclass(frozen=True)
class FrameFiles:
    """An image sequence outside any strip: files inside ``directory``, one per video frame."""

    directory: Path
    filenames: Sequence[str]


@dataclass
class ExportResult:
    path: Path
    codec: str  # the FFmpeg codec used: "H264", or a fallback
    frames: int
    size: tuple[int, int]  # (width, height) of the video
    notes: list[str] = field(default_factory=list)  # e.g. why H.264 was not used


def _source_files(source) -> FrameFiles:
    if isinstance(source, FrameFiles):
        return FrameFiles(Path(source.directory), list(source.filenames))
    if getattr(source, "type", None) == "IMAGE" and hasattr(source, "elements"):
        # The strip's path may be relative to the .blend ("//frames/").
        directory = Path(bpy.path.abspath(source.directory))
        return FrameFiles(directory, [element.filename for element in source.elements])
    raise TypeError(f"expected an image strip or FrameFiles, got {type(source).__name__}")


def _blender_fps(fps: float) -> tuple[int, float]:
    """(fps, fps_base) for Blender: 29.97 -> (30, 1.001), 24 -> (24, 1.0)."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    whole = math.ceil(fps - 1e-6)
    return whole, whole / fps


def _source_fps(source, fps) -> tuple[int, float]:
    if fps is not None:
        return _blender_fps(float(fps))
    scene = getattr(source, "id_data", None)
    if not isinstance(scene, bpy.types.Scene):
        raise ValueError("give fps when exporting files that belong to no scene")
    return scene.render.fps, scene.render.fps_base


def _even(n: int) -> int:
    # H.264 in the usual yuv420p needs even sizes; an odd frame gets one black column/row.
    return n + (n % 2)


def _configure(scene, files: FrameFiles, fps: tuple[int, float], codec: str, out_file: Path) -> tuple[int, int]:
    strip = strips_collection(scene).new_image(
        "frames", str(files.directory / files.filenames[0]), 1, 1, fit_method="ORIGINAL"
    )
    for name in files.filenames[1:]:
        strip.elements.append(name)
    strip.colorspace_settings.name = "sRGB"
    strip.transform.filter = "NEAREST"  # unscaled copy: every pixel exactly once, never blurred
    element = strip.elements[0]
    if not element.orig_width or not element.orig_height:
        raise ValueError(f"{files.directory / files.filenames[0]}: Blender cannot read this image")
    size = (_even(element.orig_width), _even(element.orig_height))

    scene.frame_start, scene.frame_end = 1, len(files.filenames)
    render = scene.render
    render.resolution_x, render.resolution_y = size
    render.resolution_percentage = 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    render.fps, render.fps_base = fps
    render.use_sequencer = True
    render.use_compositing = False
    render.engine = "BLENDER_WORKBENCH"  # never used for strips; the cheapest if it were
    view = scene.view_settings
    view.view_transform, view.look = "Standard", "None"
    view.exposure, view.gamma, view.use_curve_mapping = 0.0, 1.0, False
    # Blender 5 splits image and video outputs.
    if hasattr(render.image_settings, "media_type"):
        render.image_settings.media_type = "VIDEO"
    render.image_settings.file_format = "FFMPEG"
    ffmpeg = render.ffmpeg
    ffmpeg.format = "MPEG4"
    ffmpeg.codec = codec
    ffmpeg.audio_codec = "NONE"
    ffmpeg.use_autosplit = False
    if codec == "H264":
        ffmpeg.constant_rate_factor = "HIGH"
        ffmpeg.ffmpeg_preset = "GOOD"
    else:
        ffmpeg.constant_rate_factor = "NONE"  # MPEG-4 Part 2 has no CRF: give it a bit rate
        ffmpeg.video_bitrate = 8000
    render.use_file_extension = False
    render.filepath = str(out_file)
    return size


def _render_once(files: FrameFiles, fps, codec: str, out_file: Path) -> tuple[int, int]:
    """Render ``files`` into ``out_file`` with ``codec`` in a throwaway scene."""
    scene = bpy.data.scenes.new(_TEMP_SCENE)
    try:
        size = _configure(scene, files, fps, codec, out_file)
        bpy.ops.render.render(animation=True, scene=scene.name)
    finally:
        bpy.data.scenes.remove(scene)
    if not out_file.is_file() or out_file.stat().st_size == 0:
        raise RuntimeError(f"Blender wrote no video with codec {codec}")
    return size


def export_mp4(source, filepath, *, fps=None, overwrite: bool = False) -> ExportResult:
    """Write ``source`` (an image strip, e.g. from place_image_sequence, or FrameFiles) to an
    MP4 at ``filepath``: every file once, in element order, at ``fps`` (default: the strip's
    scene frame rate; required for FrameFiles). The strip's trims and transform are ignored:
    the video is the generated frames at their own size.

    Raises FileExistsError when ``filepath`` exists and ``overwrite`` is False.
    """
    files = _source_files(source)
    if not files.filenames:
        raise ValueError("no frames to export")
    missing = [n for n in files.filenames if not (files.directory / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{files.directory}: no such frame file(s): {', '.join(sorted(set(missing))[:5])}")
    rate = _source_fps(source, fps)
    target = Path(bpy.path.abspath(str(filepath))).resolve()
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)

    notes = []
    work = Path(tempfile.mkdtemp(prefix=".posebridge_export_", dir=target.parent))
    try:
        for codec in CODECS:
            out_file = work / f"{codec}.mp4"
            try:
                size = _render_once(files, rate, codec, out_file)
                break
            except RuntimeError as error:
                notes.append(f"{codec} failed ({str(error).strip()})")
        else:
            raise RuntimeError(f"could not write {target}: " + "; ".join(notes))
        if codec != CODECS[0]:
            notes.append(f"wrote {codec} in an MP4 container: {CODECS[0]} could not be encoded")
        if target.exists() and not overwrite:  # appeared while rendering
            raise FileExistsError(f"{target} already exists; pass overwrite=True to replace it")
        os.replace(out_file, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ExportResult(target, codec, len(files.filenames), size, notes)
