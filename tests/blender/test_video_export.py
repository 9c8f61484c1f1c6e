"""MP4 export of the generated frames: a real H.264 file read back by Blender, the user's scene
untouched, no temporary scene or folder left behind, no silent overwrite."""
import numpy as np
import pytest

import bpy

from posebridge.draw.png import write_png
from posebridge.render import video_export, vse
from posebridge.render.video_export import FrameFiles, export_mp4

FRAMES = 8


def _frames(folder, count=FRAMES, size=(64, 64)):
    """Frames whose left half is orange and right half is a per-frame blue."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    height, width = size
    for i in range(count):
        image = np.empty((height, width, 3), np.uint8)
        image[:, : width // 2] = (230, 120, 30)
        image[:, width // 2:] = (20, 40, 60 + 20 * i)
        names.append(f"frame_{i + 1:04d}.png")
        write_png(folder / names[-1], image)
    return names


def _render_settings(scene):
    render, ffmpeg = scene.render, scene.render.ffmpeg
    return {
        "filepath": render.filepath,
        "size": (render.resolution_x, render.resolution_y, render.resolution_percentage),
        "fps": (render.fps, render.fps_base),
        "range": (scene.frame_start, scene.frame_end, scene.frame_current),
        "format": (getattr(render.image_settings, "media_type", None), render.image_settings.file_format),
        "ffmpeg": (ffmpeg.format, ffmpeg.codec, ffmpeg.audio_codec),
        "engine": render.engine,
        "sequencer": (render.use_sequencer, render.use_compositing),
        "view": (scene.view_settings.view_transform, scene.view_settings.look),
    }


def _read_back(path):
    """(frame count, (width, height), fps, first frame as (H, W, 3) 0..255) via Blender itself."""
    clip = bpy.data.movieclips.load(str(path))
    image = bpy.data.images.load(str(path))
    try:
        width, height = image.size
        pixels = np.array(image.pixels[:], np.float32).reshape(height, width, 4)[..., :3] * 255
        return clip.frame_duration, tuple(clip.size), clip.fps, pixels
    finally:
        bpy.data.movieclips.remove(clip)
        bpy.data.images.remove(image)


def _is_mp4(path):
    head = path.read_bytes()[:64]
    return head[4:8] == b"ftyp", head


@pytest.fixture
def placed(empty_scene, tmp_path):
    """The user's scene (30 fps, own output settings) with the generated strip placed at 12."""
    scene = empty_scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    scene.render.filepath = "//user_renders/"
    scene.frame_start, scene.frame_end = 1, 250
    names = _frames(tmp_path / "gen")
    strip = vse.place_image_sequence(scene, "PoseBridge", tmp_path / "gen", names, 12)
    return scene, strip


def test_exports_an_h264_mp4_of_every_frame_and_leaves_the_scene_alone(placed, tmp_path):
    scene, strip = placed
    before = _render_settings(scene)
    scenes_before = sorted(s.name for s in bpy.data.scenes)
    out = tmp_path / "videos" / "take1.mp4"

    result = export_mp4(strip, out)

    assert result.path == out and out.is_file()
    assert bpy.app.ffmpeg.supported
    assert result.codec == "H264" and result.notes == [], "these bpy wheels encode H.264"
    ok, head = _is_mp4(out)
    assert ok and b"avc1" in head, head
    assert (result.frames, result.size) == (FRAMES, (64, 64))

    frames, size, fps, first = _read_back(out)
    assert (frames, size) == (FRAMES, (64, 64))
    assert fps == pytest.approx(30.0), "the source scene's frame rate"
    # Standard view transform: the video keeps the PNG's colours (AgX/Filmic would shift them).
    assert np.abs(first[8:56, 4:28].mean(axis=(0, 1)) - (230, 120, 30)).max() < 6
    assert np.abs(first[8:56, 36:60].mean(axis=(0, 1)) - (20, 40, 60)).max() < 6

    assert _render_settings(scene) == before
    assert bpy.context.scene == scene
    assert sorted(s.name for s in bpy.data.scenes) == scenes_before, "temporary scene removed"
    assert sorted(p.name for p in out.parent.iterdir()) == ["take1.mp4"], "no work folder left"
    assert strip.frame_final_start == 12 and len(vse.strips_collection(scene)) == 1


def test_refuses_to_overwrite_unless_asked(placed, tmp_path):
    _, strip = placed
    out = tmp_path / "take.mp4"
    out.write_bytes(b"the user's own video")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_mp4(strip, out)
    assert out.read_bytes() == b"the user's own video"

    export_mp4(strip, out, overwrite=True)
    assert _is_mp4(out)[0]


def test_falls_back_to_another_codec_in_mp4_and_says_so(placed, tmp_path, monkeypatch):
    """Theora cannot go into MP4, so Blender's FFmpeg really fails and the fallback runs."""
    scene, strip = placed
    monkeypatch.setattr(video_export, "CODECS", ("THEORA", "MPEG4"))
    result = export_mp4(strip, tmp_path / "fallback.mp4")

    assert result.codec == "MPEG4"
    assert any("THEORA failed" in n for n in result.notes)
    assert any("MPEG4 in an MP4 container" in n for n in result.notes)
    assert _is_mp4(result.path)[0]
    assert _read_back(result.path)[:2] == (FRAMES, (64, 64))
    assert [s.name for s in bpy.data.scenes] == [scene.name]


def test_a_failed_export_leaves_nothing_behind(placed, tmp_path, monkeypatch):
    scene, strip = placed
    monkeypatch.setattr(video_export, "CODECS", ("THEORA",))
    with pytest.raises(RuntimeError, match="could not write"):
        export_mp4(strip, tmp_path / "out" / "broken.mp4")
    assert [s.name for s in bpy.data.scenes] == [scene.name]
    assert list((tmp_path / "out").iterdir()) == []


def test_frame_files_odd_sizes_and_explicit_fps(empty_scene, tmp_path):
    names = _frames(tmp_path / "odd", count=3, size=(45, 63))
    files = FrameFiles(tmp_path / "odd", names)
    with pytest.raises(ValueError, match="give fps"):
        export_mp4(files, tmp_path / "odd.mp4")

    result = export_mp4(files, tmp_path / "odd.mp4", fps=12)
    assert result.size == (64, 46), "H.264 needs even sizes: one black column and row added"
    frames, size, fps, _ = _read_back(result.path)
    assert (frames, size) == (3, (64, 46)) and fps == pytest.approx(12.0)

    with pytest.raises(FileNotFoundError, match="frame_0099.png"):
        export_mp4(FrameFiles(tmp_path / "odd", names + ["frame_0099.png"]), tmp_path / "x.mp4", fps=12)
    with pytest.raises(TypeError):
        export_mp4("not a strip", tmp_path / "y.mp4", fps=12)


def test_blender_fps_pairs():
    assert video_export._blender_fps(24) == (24, 1.0)
    whole, base = video_export._blender_fps(29.97)
    assert whole == 30 and whole / base == pytest.approx(29.97)
    with pytest.raises(ValueError):
        video_export._blender_fps(0)


def test_a_strip_with_a_blend_relative_directory_exports(empty_scene, tmp_path):
    names = _frames(tmp_path / "gen", count=2)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    scene = bpy.context.scene
    strip = vse.place_image_sequence(scene, "gen", "//gen", names, 1)
    result = export_mp4(strip, "//take.mp4")
    assert result.path == tmp_path / "take.mp4" and _read_back(result.path)[0] == 2
