"""MediaPipe's 3-D body as a second witness to the lift's depth (``retarget.depth_witness``) and
its file (``pose.formats.world_json``), without Blender."""
import json

import numpy as np
import pytest

from posebridge.pose.formats.world_json import read_world
from posebridge.retarget import depth_witness as dw


def test_limb_angles_read_depth_against_the_picture_plane():
    points = np.zeros((2, 18, 4))
    points[..., :3] = np.random.default_rng(0).normal(0.0, 0.3, (18, 3))  # every limb some length
    points[..., 3] = 1.0
    points[:, 2, :3] = 0.0
    points[:, 3] = (0.3, 0.0, 0.0, 1.0)  # right elbow 0.3 m to the right of the right shoulder
    points[1, 3] = (0.2, 0.0, -0.2, 1.0)  # frame 1: as far towards the camera as across
    points[1, 7, 3] = 0.2  # left wrist barely seen
    angle, seen = dw.limb_angles(points)
    assert angle[0, 0] == pytest.approx(0.0) and angle[1, 0] == pytest.approx(-np.pi / 4)
    assert seen[0].all() and not seen[1, 5] and seen[1, 4]  # left forearm (elbow 6 -> wrist 7) unseen


def test_agreeing_witnesses_are_averaged_and_a_sure_lifter_wins_a_disagreement():
    lifter = np.radians([[30.0, -40.0, 5.0, 30.0, 30.0, 0.0, 0.0, 0.0]])
    towards = np.array([[0.1, 0.9, 0.5, 0.55, 0.2, 0.5, 0.5, 0.5]])
    mine = np.radians([[20.0, 40.0, -5.0, -30.0, 10.0, 0.0, 0.0, 0.0]])
    seen = np.array([[True, True, True, True, False, True, True, True]])
    angle, decided = dw.settle(lifter, towards, dw.Witness("mediapipe", mine, seen))
    assert list(decided[0, :5]) == [dw.AGREED, dw.LIFTER, dw.AGREED, dw.WITNESS, dw.LIFTER_ALONE]
    np.testing.assert_allclose(np.degrees(angle[0, :5]), [25.0, -40.0, 0.0, -30.0, 30.0], atol=1e-9)
    note = dw.decision_note(decided, "mediapipe")
    assert note.startswith("depth of the arms and legs read by the lifter and mediapipe: both, agreeing 62%")  # 5 of 8
    assert "mediapipe (they disagreed, the lifter unsure) 12%" in note


def test_the_witness_follows_the_scene_grid():
    times = np.array([0.0, 0.1, 0.2, 0.3])
    angle = np.array([[0.0], [0.2], [0.4], [0.6]])
    seen = np.array([[True], [True], [False], [True]])
    out, out_seen = dw.on_times(angle, seen, times, [0.05, 0.15, 0.3])
    np.testing.assert_allclose(out[:, 0], [0.1, 0.3, 0.6])  # over the unseen frame: between its neighbours
    assert list(out_seen[:, 0]) == [True, False, True]


def test_world_json_is_read_from_the_extraction_folder_and_bad_files_are_named(tmp_path):
    assert read_world(tmp_path / "keypoints") is None  # an ordinary keypoint folder: no witness
    rows = np.zeros((18, 4))
    rows[:, 3] = 0.9
    document = {"format": "posebridge-world", "version": 1, "source": "mediapipe", "layout": "coco18",
                "axes": "...", "frames": [4, 6], "points": [rows.tolist(), None]}
    (tmp_path / "world.json").write_text(json.dumps(document))
    world = read_world(tmp_path / "keypoints")
    assert world.source == "mediapipe" and list(world.frames) == [4, 6]
    assert world.points.shape == (2, 18, 4) and world.points[0, 0, 3] == pytest.approx(0.9) and not world.points[1].any()
    document["points"] = [rows[:5].tolist(), None]
    (tmp_path / "world.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="frame 4 must hold 18"):
        read_world(tmp_path)
    (tmp_path / "world.json").write_text("{")
    with pytest.raises(ValueError, match="not readable JSON"):
        read_world(tmp_path / "world.json")
