"""Video decoding for extraction (backend/extract/video.py) on videos PyAV writes here: rotation
metadata, variable frame rate, frame selection, bad files; then the real pose2sim clip."""
from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")

from posebridge.backend.extract import ExtractionError  # noqa: E402
from posebridge.backend.extract.video import probe_video, read_frames  # noqa: E402


def frame_picture(i: int, width: int, height: int) -> np.ndarray:
    """A picture that says which frame it is (its grey level) and which way is up (a white
    block in the top-left quarter)."""
    rgb = np.full((height, width, 3), (i * 37) % 200 + 20, np.uint8)
    rgb[: height // 2, : width // 2] = 255
    return rgb


def write_video(path, count=10, width=64, height=48, codec="h264", rate=30, rotation=None,
                pts_ms=None, gop=None):
    """An mp4 of ``count`` frames. ``rotation``: the display matrix's counter-clockwise degrees
    (what a phone writes); ``pts_ms``: each frame's time in milliseconds (variable rate)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if gop:
            stream.codec_context.gop_size = gop
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(frame_picture(i, width, height), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def grey_level(rgb: np.ndarray) -> int:
    """The frame's grey level, read away from the white block."""
    height, width = rgb.shape[:2]
    return int(np.median(rgb[height // 2 + 2:, width // 2 + 2:]))


def which_frame(rgb: np.ndarray, count: int) -> int:
    levels = [(i * 37) % 200 + 20 for i in range(count)]
    return int(np.argmin([abs(level - grey_level(rgb)) for level in levels]))


@pytest.mark.parametrize("codec", ["h264", "mpeg4"])
def test_probe_and_read_every_frame_in_order(tmp_path, codec):
    path = write_video(tmp_path / f"{codec}.mp4", count=12, codec=codec)
    info = probe_video(path)
    assert (info.fps, info.width, info.height, info.frame_count, info.rotation) == (30.0, 64, 48, 12, 0)
    assert info.duration == pytest.approx(12 / 30, abs=1e-3)
    frames = list(read_frames(path))
    assert [f.index for f in frames] == list(range(12))
    assert [which_frame(f.rgb, 12) for f in frames] == list(range(12))
    assert frames[5].time == pytest.approx(5 / 30, abs=1e-3)
    first = frames[0].rgb
    assert first.shape == (48, 64, 3) and first.dtype == np.uint8
    assert first[2, 2].min() > 200 and first[-3, -3].max() < 200  # white block top-left


@pytest.mark.parametrize("rotation, corner", [(90, "bottom_left"), (-90, "top_right"), (180, "bottom_right")])
def test_rotation_metadata_turns_the_picture_upright(tmp_path, rotation, corner):
    # Stored 64x48 with the white block top-left; a display matrix of +90 degrees means "turn it
    # a quarter counter-clockwise to show it" (what FFmpeg's players do), which brings the
    # top-left corner to the bottom-left.
    path = write_video(tmp_path / "phone.mp4", count=3, rotation=rotation)
    info = probe_video(path)
    assert info.rotation == rotation
    quarter = rotation % 180 != 0
    assert (info.width, info.height) == ((48, 64) if quarter else (64, 48))
    rgb = next(read_frames(path)).rgb
    assert rgb.shape == (info.height, info.width, 3) and rgb.flags["C_CONTIGUOUS"]
    h, w = rgb.shape[:2]
    corners = {
        "top_left": rgb[2, 2], "top_right": rgb[2, w - 3],
        "bottom_left": rgb[h - 3, 2], "bottom_right": rgb[h - 3, w - 3],
    }
    assert corners[corner].min() > 200
    assert all(value.max() < 200 for name, value in corners.items() if name != corner)


def test_variable_frame_rate_maps_pictures_to_frame_numbers_by_time(tmp_path):
    # 30 fps with dropped frames (a gap of 100 ms twice) and uneven steps of 33/34 ms.
    pts = [0, 33, 67, 100, 200, 233, 267, 300, 400, 433]
    path = write_video(tmp_path / "vfr.mp4", count=len(pts), pts_ms=pts)
    info = probe_video(path)
    assert info.fps == pytest.approx(30.0, rel=0.01)  # the typical interval, not the mean
    frames = list(read_frames(path))
    assert [f.index for f in frames] == [0, 1, 2, 3, 6, 7, 8, 9, 12, 13]
    assert [which_frame(f.rgb, len(pts)) for f in frames] == list(range(len(pts)))
    assert [round(f.time * 1000) for f in frames] == pts
    assert info.frame_count == 14  # frame numbers 0..13
    # every/start/end count frame numbers, not pictures: gaps stay gaps.
    assert [f.index for f in read_frames(path, every=2, start=1, end=12)] == [1, 3, 7, 9]


def test_every_start_end_are_inclusive_frame_numbers(tmp_path):
    path = write_video(tmp_path / "clip.mp4", count=20)
    assert [f.index for f in read_frames(path, every=3)] == [0, 3, 6, 9, 12, 15, 18]
    assert [f.index for f in read_frames(path, start=5, end=9)] == [5, 6, 7, 8, 9]
    assert [f.index for f in read_frames(path, every=4, start=2, end=14)] == [2, 6, 10, 14]
    assert [f.index for f in read_frames(path, start=17)] == [17, 18, 19]
    assert [f.index for f in read_frames(path, start=25)] == []
    with pytest.raises(ExtractionError):
        list(read_frames(path, every=0))
    with pytest.raises(ExtractionError):
        list(read_frames(path, start=9, end=3))


def test_a_late_start_seeks_and_still_gives_the_right_pictures(tmp_path):
    # 6 s at 30 fps, a key frame every 12: start=150 is past the seek threshold.
    path = write_video(tmp_path / "long.mp4", count=180, codec="mpeg4", gop=12)
    frames = list(read_frames(path, start=150, end=160, every=5))
    assert [f.index for f in frames] == [150, 155, 160]
    # Neighbouring frames differ by 37 grey levels: a picture off by one would show.
    assert all(abs(grey_level(f.rgb) - ((f.index * 37) % 200 + 20)) <= 3 for f in frames)


def test_bad_files_raise_extraction_errors_naming_the_file(tmp_path):
    with pytest.raises(ExtractionError, match="missing.mp4"):
        probe_video(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(ExtractionError, match="junk.mp4"):
        probe_video(junk)
    with pytest.raises(ExtractionError, match="junk.mp4"):
        list(read_frames(junk))
    # A file with sound only: no video stream.
    sound = tmp_path / "sound.mp4"
    with av.open(str(sound), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(ExtractionError, match="sound.mp4 has no video stream"):
        probe_video(sound)


def test_the_real_pose2sim_clip(shared_data):
    path = shared_data / "pose2sim" / "cam01.mp4"
    info = probe_video(path)
    assert (info.fps, info.width, info.height, info.frame_count, info.rotation) == (60.0, 1080, 1920, 100, 0)
    assert info.duration == pytest.approx(100 / 60, abs=1e-3)
    frames = list(read_frames(path, every=10, start=5))
    assert [f.index for f in frames] == list(range(5, 100, 10))
    assert frames[0].rgb.shape == (1920, 1080, 3)
    assert [f.time for f in frames] == pytest.approx([i / 60 for i in range(5, 100, 10)], abs=1e-3)
    assert len(list(read_frames(path))) == 100
