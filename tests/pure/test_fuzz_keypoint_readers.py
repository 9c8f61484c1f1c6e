"""Property-based tests of the keypoint readers: arbitrary files either import or raise the
project's KeypointFileError with a message; nothing else escapes, nothing hangs.

Inputs: OpenPose frames, ComfyUI POSE_KEYPOINT lists, folders of numbered frame files and single
frames, with every body layout's point count (COCO-17/18, COCO-17 + feet, BODY_25/25B,
DWPose-133), hands and faces, mixed layouts between people and frames, NaN/inf/huge/negative
coordinates, numbers as strings, empty people, wrong types anywhere, truncated files.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posebridge.pose.formats.readers import ImportedKeypoints, KeypointFileError, load_keypoints

from keypoint_strategies import documents, dump, json_anything, openpose_frame

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(result: ImportedKeypoints) -> None:
    data = result.sequence.data
    assert np.isfinite(data).all(), "no NaN or inf reaches the clip"
    present = data[..., 2] > 0
    assert present.any()
    assert (data[..., :2][present] >= 0).all()
    assert (data[..., :2][~present] == 0).all() and (data[..., 2][~present] == 0).all()
    width, height = result.sequence.canvas
    assert width >= 1 and height >= 1


def _load(path: Path) -> None:
    try:
        result = load_keypoints(path)
    except KeypointFileError as error:
        assert str(error).strip(), "the error says what is wrong"
        return
    _check(result)
    if result.needs_canvas:
        _check(result.with_canvas(640, 480))


@FUZZ
@given(document=documents, cut=st.one_of(st.none(), st.floats(0, 1)))
def test_one_file_imports_or_names_the_problem(document, cut):
    text = dump(document)
    if cut is not None:  # a truncated file
        text = text[: int(len(text) * cut)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pose_0001_keypoints.json"
        path.write_text(text)
        _load(path)


@FUZZ
@given(frames=st.lists(st.one_of(openpose_frame(), openpose_frame(), json_anything), min_size=1, max_size=5),
       numbering=st.sampled_from(["openpose", "gaps", "clash", "unnumbered", "mixed"]),
       truncate=st.one_of(st.none(), st.integers(0, 4)))
def test_a_folder_of_frames_imports_or_names_the_problem(frames, numbering, truncate):
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for index, frame in enumerate(frames):
            if numbering == "openpose":
                name = f"clip_{index:012d}_keypoints.json"
            elif numbering == "gaps":
                name = f"pose_{index * 3 + 1:04d}_keypoints.json"
            elif numbering == "clash":
                name = f"pose_{index // 2:04d}_keypoints.json" if index % 2 else f"a_{index // 2}_keypoints.json"
            elif numbering == "unnumbered":
                name = f"frame_{'abcde'[index]}.json"
            else:
                name = f"pose_{index:04d}_keypoints.json" if index % 2 else f"other_{index}.json"
            text = dump(frame)
            if truncate is not None and truncate == index:
                text = text[: len(text) // 2]
            (folder / name).write_text(text)
        _load(folder)


@FUZZ
@given(data=st.binary(max_size=64))
def test_bytes_that_are_not_json_are_named(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "frame.json"
        path.write_bytes(data)
        _load(path)


def test_nan_and_huge_coordinates_never_become_points(tmp_path):
    """A hand-made case of the property: of NaN, inf, 1e308, negative and one good point, only
    the good one is present (COCO-18: the fifth point is the right wrist)."""
    body = [math.nan, 10, 1, math.inf, 10, 1, 1e308, 1e308, 1, -5, 10, 1, 100, 120, 0.9] + [0, 0, 0] * 13
    path = tmp_path / "pose_0001_keypoints.json"
    path.write_text(dump({"people": [{"pose_keypoints_2d": body}]}))
    result = load_keypoints(path, canvas=(640, 480))
    _check(result)
    points = result.sequence.data[0, 0]
    (present,) = np.flatnonzero(points[:, 2] > 0)
    assert result.sequence.layout.points[present] == "r_wrist"
    np.testing.assert_allclose(points[present], [100, 120, 0.9], rtol=1e-6)
