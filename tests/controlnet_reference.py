"""controlnet_aux 0.0.10's own DWPose drawing code, the reference our pose maps must match.

A test-only dependency (tests/requirements-compat.txt): only ``dwpose/util.py`` is loaded, by
file path, so the package's ``__init__`` (which imports torch) never runs. Shared by the pure
tests (random and synthetic people) and the Blender tests (rig-made poses).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from posebridge.draw.pose_map import PoseStyle, draw_pose_map, draw_pose_map_indexed
from posebridge.pose.layouts import OPENPOSE_FULL

_N = len(OPENPOSE_FULL)


def load_dwpose_util():
    """controlnet_aux's dwpose/util.py as a module; skips the test when it is not installed."""
    pytest.importorskip("cv2")
    pytest.importorskip("matplotlib")  # draw_handpose imports it for its colours
    spec = importlib.util.find_spec("controlnet_aux")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("controlnet_aux is not installed (pip install --no-deps controlnet-aux==0.0.10)")
    path = Path(list(spec.submodule_search_locations)[0]) / "dwpose" / "util.py"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    util_spec = importlib.util.spec_from_file_location("_controlnet_aux_dwpose_util", path)
    module = importlib.util.module_from_spec(util_spec)
    util_spec.loader.exec_module(module)
    return module


def reference_map(util, people: np.ndarray, width: int, height: int, min_confidence=0.0):
    """controlnet_aux's map for OPENPOSE_FULL people, arrays built as DWposeDetector builds them."""
    people = np.asarray(people, np.float32).reshape(-1, _N, 3)
    count = len(people)
    candidate = people[..., :2].copy()  # float32, like the detector's keypoints
    candidate[..., 0] /= float(width)
    candidate[..., 1] /= float(height)
    present = people[..., 2] > min_confidence
    body = candidate[:, :18].copy().reshape(count * 18, 2)
    subset = np.where(present[:, :18], np.arange(count * 18).reshape(count, 18), -1).astype(np.float64)
    candidate[~present] = -1  # DWPose marks every invisible point -1
    hand_l = OPENPOSE_FULL.part("hand_left")
    hand_r = OPENPOSE_FULL.part("hand_right")
    face = OPENPOSE_FULL.part("face")
    hands = np.vstack([candidate[:, hand_l.start:hand_l.stop], candidate[:, hand_r.start:hand_r.stop]])
    faces = candidate[:, face.start:face.start + 68]  # DWPose has no pupils
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas = util.draw_bodypose(canvas, body, subset)
    canvas = util.draw_handpose(canvas, hands)
    return util.draw_facepose(canvas, faces)


def mismatch(ours: np.ndarray, theirs: np.ndarray) -> tuple[int, int]:
    """(pixels differing in any channel, pixels drawn in either map)."""
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype == np.uint8
    drawn = int((ours.any(-1) | theirs.any(-1)).sum())
    return int((ours != theirs).any(-1).sum()), drawn


def assert_matches(util, people, width, height, style=PoseStyle()):
    ours = draw_pose_map(people, width, height, style)
    # The palette form the pose-map job writes is the same picture, exactly.
    indices, colours = draw_pose_map_indexed(people, width, height, style)
    np.testing.assert_array_equal(colours[indices], ours)
    theirs = reference_map(util, people, width, height, style.min_confidence)
    diff, drawn = mismatch(ours, theirs)
    assert drawn > 0
    assert diff <= 0.01 * drawn, f"{diff} of {drawn} drawn pixels differ"
    return diff, drawn
