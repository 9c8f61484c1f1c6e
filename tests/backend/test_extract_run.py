"""An extraction's output folder (backend/extract/run.py, output.py): what Import Pose reads back,
the frame selection, a cancel midway, and maps that are exactly the drawing of the written files.

The real extractor (MediaPipe) runs on a few frames of pose2sim's cam01.mp4; the frame-selection
and cancel tests use DWPose's tiny stand-in graphs (tests/backend/tiny_dwpose.py), which are
fast and place the same points on every frame, on a clip PyAV writes here.
"""
import json

import numpy as np
import pytest

av = pytest.importorskip("av")
pytest.importorskip("onnxruntime")

from posebridge.backend.extract import ExtractionError  # noqa: E402
from posebridge.backend.extract.output import as_written  # noqa: E402
from posebridge.backend.extract.run import ExtractionCancelled, extract_pictures, extract_video  # noqa: E402
from tiny_dwpose import write_tiny_dwpose  # noqa: E402
from posebridge.draw.png import read_png  # noqa: E402
from posebridge.draw.pose_map import draw_sequence_frame  # noqa: E402
from posebridge.pose.formats.readers import load_keypoints  # noqa: E402
from posebridge.pose.formats.sources import read_source  # noqa: E402

from test_extract_video import write_video  # noqa: E402

CAM01_SIZE = (1080, 1920)


@pytest.fixture(scope="module")
def tiny_dwpose(tmp_path_factory):
    return write_tiny_dwpose(tmp_path_factory.mktemp("tiny-dwpose"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """24 frames of 320x240 at 24 fps."""
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", count=24, width=320, height=240, rate=24)


def run_tiny(clip, out, tiny_dwpose, **options):
    return extract_video(clip, out, extractor="dwpose", model_dir=tiny_dwpose, **options)


def info_of(folder):
    return json.loads((folder / "extraction.json").read_text())


def keypoint_names(folder):
    return sorted(p.name for p in (folder / "keypoints").iterdir())


def assert_maps_are_drawings_of_the_files(folder, canvas):
    """Each maps/pose_NNNN.png equals draw/pose_map's drawing of keypoints/frame_NNNN_keypoints.json
    as the project's reader reads it back (default style: the pose-map job's)."""
    seq = load_keypoints(folder / "keypoints", canvas=canvas).sequence
    assert seq.canvas == canvas
    for index, frame in enumerate(seq.frame_numbers):
        drawn = draw_sequence_frame(seq, index)
        written = read_png(folder / "maps" / f"pose_{frame:04d}.png")
        assert written.shape == (canvas[1], canvas[0], 3)
        np.testing.assert_array_equal(written, drawn)
        assert written.any()


# --- the real extractor on the real clip ----------------------------------------------------------


def test_mediapipe_output_folder_is_what_import_pose_reads(shared_data, tmp_path):
    pytest.importorskip("mediapipe")
    video = shared_data / "pose2sim" / "cam01.mp4"
    out = tmp_path / "out"
    seen = []
    result = extract_video(video, out, start=10, end=14, every=2, maps=True,
                           on_progress=lambda done, total: seen.append((done, total)))
    assert result.frames == [10, 12, 14] and result.people == [1, 1, 1]
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert sorted(p.name for p in out.iterdir()) == ["extraction.json", "keypoints", "maps", "sequence.json", "world.json"]
    assert keypoint_names(out) == [f"frame_{n:04d}_keypoints.json" for n in (10, 12, 14)]

    info = info_of(out)
    assert info["format"] == "posebridge-extraction" and info["version"] == 1
    assert (info["video"], info["fps"], info["width"], info["height"]) == ("cam01.mp4", 60.0, *CAM01_SIZE)
    assert (info["frame_count"], info["rotation"], info["every"], info["start"], info["end"]) == (100, 0, 2, 10, 14)
    assert info["frames"] == [10, 12, 14] and info["times"] == pytest.approx([10 / 60, 12 / 60, 14 / 60], abs=1e-6)
    assert info["extractor"] == "mediapipe" and info["multi_person"] is False and "one person" in info["note"]
    assert info["complete"] is True and result.info == info

    # The OpenPose folder, read by Import Pose's own reader: COCO-18 body, hands, face 70.
    raw = read_source(out / "keypoints")
    assert raw.frame_numbers == [10, 12, 14] and raw.kind == "openpose folder"
    imported = load_keypoints(out / "keypoints", canvas=CAM01_SIZE)
    assert imported.source_layout == "coco18"
    seq = imported.sequence
    assert list(seq.frame_numbers) == [10, 12, 14] and seq.people_count == 1
    body = seq.part("body")[:, 0]
    assert (body[..., 2] > 0).sum(axis=1).min() >= 12  # the performer, seen whole
    assert 0 < body[..., 0][body[..., 2] > 0].min() and body[..., 0].max() < CAM01_SIZE[0]
    hands = np.concatenate([seq.part("hand_left"), seq.part("hand_right")], axis=2)
    assert (hands[..., 2] > 0).any()  # MediaPipe finds a hand; the face is too small here
    person = json.loads((out / "keypoints" / "frame_0010_keypoints.json").read_text())["people"][0]
    assert [len(person[key]) for key in ("pose_keypoints_2d", "hand_left_keypoints_2d", "face_keypoints_2d")] == [
        18 * 3, 21 * 3, 70 * 3]

    # The ComfyUI file: the same points, the video's canvas.
    comfy = load_keypoints(out / "sequence.json")
    assert comfy.canvas == CAM01_SIZE
    np.testing.assert_array_equal(comfy.sequence.data, seq.data)

    assert_maps_are_drawings_of_the_files(out, CAM01_SIZE)

    # MediaPipe's 3-D body, per frame, for the import's depth.
    world = json.loads((out / "world.json").read_text())
    assert (world["format"], world["source"], world["layout"], world["frames"]) == (
        "posebridge-world", "mediapipe", "coco18", [10, 12, 14])
    points = np.array(world["points"])
    assert points.shape == (3, 18, 4) and "metres" in world["axes"]
    assert np.abs(points[:, 11, :3] - points[:, 8, :3]).max() < 0.5  # hips a body's width apart, about the origin


def test_body_only_writes_empty_hand_and_face_lists(shared_data, tmp_path):
    pytest.importorskip("mediapipe")
    out = tmp_path / "out"
    extract_video(shared_data / "pose2sim" / "cam01.mp4", out, start=0, end=0, parts=("body",))
    person = json.loads((out / "keypoints" / "frame_0000_keypoints.json").read_text())["people"][0]
    assert len(person["pose_keypoints_2d"]) == 18 * 3
    assert person["hand_left_keypoints_2d"] == person["face_keypoints_2d"] == []


# --- frame selection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "every, start, end, frames",
    [
        (1, None, None, list(range(24))),
        (3, 10, 20, [10, 13, 16, 19]),
        (5, None, 12, [0, 5, 10]),
        (4, 17, None, [17, 21]),
        (1, 23, 99, [23]),
    ],
)
def test_every_start_end_pick_the_video_frames(clip, tiny_dwpose, tmp_path, every, start, end, frames):
    out = tmp_path / "out"
    result = run_tiny(clip, out, tiny_dwpose, every=every, start=start, end=end)
    assert result.frames == frames
    assert keypoint_names(out) == [f"frame_{n:04d}_keypoints.json" for n in frames]
    info = info_of(out)
    assert (info["every"], info["start"], info["end"]) == (every, start, end)
    assert info["frames"] == frames and info["times"] == pytest.approx([n / 24 for n in frames], abs=1e-6)
    assert info["extractor"] == "dwpose" and info["multi_person"] is True
    assert len(json.loads((out / "sequence.json").read_text())) == len(frames)


def test_a_bad_range_or_file_is_refused_before_anything_is_written(clip, tiny_dwpose, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ExtractionError, match="start 24 is past the end of clip.mp4: its frames are 0..23"):
        run_tiny(clip, out, tiny_dwpose, start=24)
    with pytest.raises(ExtractionError, match=r"end \(3\) is before start \(5\)"):
        run_tiny(clip, out, tiny_dwpose, start=5, end=3)
    with pytest.raises(ExtractionError, match="every must be 1 or more"):
        run_tiny(clip, out, tiny_dwpose, every=0)
    with pytest.raises(ExtractionError, match="not found"):
        run_tiny(tmp_path / "missing.mp4", out, tiny_dwpose)
    with pytest.raises(ExtractionError, match="unknown extractor 'openpose'"):
        extract_video(clip, out, extractor="openpose")
    assert not out.exists()


# --- cancel and failure ---------------------------------------------------------------------------


def test_cancel_keeps_the_finished_frames_and_describes_them(clip, tiny_dwpose, tmp_path):
    out = tmp_path / "out"
    progress = []
    with pytest.raises(ExtractionCancelled):
        run_tiny(clip, out, tiny_dwpose, every=2, maps=True, on_progress=lambda d, t: progress.append((d, t)),
                 cancelled=lambda: len(progress) >= 3)
    assert progress == [(1, 12), (2, 12), (3, 12)]
    assert keypoint_names(out) == [f"frame_{n:04d}_keypoints.json" for n in (0, 2, 4)]
    assert sorted(p.name for p in (out / "maps").iterdir()) == ["pose_0000.png", "pose_0002.png", "pose_0004.png"]
    info = info_of(out)
    assert info["frames"] == [0, 2, 4] and info["complete"] is False
    assert len(json.loads((out / "sequence.json").read_text())) == 3
    assert not [p for p in out.rglob(".*")]  # no temporary file left behind
    assert_maps_are_drawings_of_the_files(out, (320, 240))


def test_a_failure_midway_keeps_what_was_done(clip, tiny_dwpose, tmp_path):
    from posebridge.backend.extract import make_extractor
    from posebridge.backend.extract.base import Extractor

    class BreaksOnThirdPicture(Extractor):
        """The real tiny DWPose extractor, but its third picture raises."""

        def __init__(self):
            self.inner = make_extractor("dwpose", model_dir=tiny_dwpose)
            self.info, self.calls = self.inner.info, 0

        def detect(self, rgb):
            self.calls += 1
            if self.calls == 3:
                raise ExtractionError("the detector broke")
            return self.inner.detect(rgb)

    out = tmp_path / "out"
    with pytest.raises(ExtractionError, match="the detector broke"):
        extract_video(clip, out, extractor=BreaksOnThirdPicture())
    assert info_of(out)["frames"] == [0, 1] and info_of(out)["complete"] is False
    assert keypoint_names(out) == ["frame_0000_keypoints.json", "frame_0001_keypoints.json"]


# --- pictures -------------------------------------------------------------------------------------


def test_pictures_arrays_or_files_give_the_same_folder(clip, tiny_dwpose, tmp_path):
    from PIL import Image

    from posebridge.backend.extract.video import read_frames

    frames = [(f.index + 100, f.rgb) for f in read_frames(clip, end=3)]
    files = []
    for number, rgb in frames:
        path = tmp_path / f"picture_{number}.png"
        Image.fromarray(rgb).save(path)
        files.append((number, path))
    a = extract_pictures(frames[::-1], tmp_path / "a", fps=24, extractor="dwpose", model_dir=tiny_dwpose, maps=True)
    b = extract_pictures(files, tmp_path / "b", extractor="dwpose", model_dir=tiny_dwpose, name="shot")
    assert a.frames == b.frames == [100, 101, 102, 103]
    info_a, info_b = info_of(tmp_path / "a"), info_of(tmp_path / "b")
    assert info_a["times"] == pytest.approx([n / 24 for n in a.frames], abs=1e-6) and info_a["fps"] == 24
    assert info_b["times"] is None and info_b["fps"] is None and info_b["video"] == "shot"
    assert (info_a["width"], info_a["height"]) == (320, 240)
    for name in keypoint_names(tmp_path / "a"):
        assert (tmp_path / "a" / "keypoints" / name).read_text() == (tmp_path / "b" / "keypoints" / name).read_text()
    assert_maps_are_drawings_of_the_files(tmp_path / "a", (320, 240))
    with pytest.raises(ExtractionError, match="duplicate frame numbers"):
        extract_pictures(frames + frames[:1], tmp_path / "c", extractor="dwpose", model_dir=tiny_dwpose)
    with pytest.raises(ExtractionError, match="of one size"):
        extract_pictures([(1, frames[0][1]), (2, frames[1][1][:100])], tmp_path / "c",
                         extractor="dwpose", model_dir=tiny_dwpose)


def test_points_are_written_and_drawn_as_the_readers_read_them():
    people = np.zeros((1, 138, 3), np.float32)
    people[0, 0] = (10.126, 20.004, 0.9)  # rounded to 2 decimals
    people[0, 1] = (-0.5, 20.0, 0.9)  # off the left edge: readers take it as absent
    people[0, 2] = (5.0, 5.0, 0.0004)  # confidence rounds to 0
    people[0, 3] = (np.nan, 3.0, 0.9)
    people[0, 4] = (0.0, 0.0, 0.8)  # OpenPose's "absent"
    written = as_written(people)
    np.testing.assert_allclose(written[0, 0], (10.13, 20.0, 0.9), rtol=0, atol=1e-6)
    assert not written[0, 1:].any()
