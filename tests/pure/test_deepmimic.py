"""train/deepmimic.py: a DeepMimic humanoid3d clip becomes a CMU-style Bvh that moves exactly as
DeepMimic's own forward kinematics say, faces CMU's way, and reads back from a written file."""
import json

import numpy as np
import pytest

from train import deepmimic
from train.asf_amc import write_bvh
from train.bvh import forward_kinematics, read_bvh
from train.skeleton import CMU_UNIT_M, COCO18, coco18

# humanoid3d's joints (ID, name, parent, offset in metres): x forward, y up, z the character's right.
_JOINTS = [
    (0, "root", -1, (0, 0, 0)), (1, "chest", 0, (0, 0.236, 0)), (2, "neck", 1, (0, 0.224, 0)),
    (3, "right_hip", 0, (0, 0, 0.085)), (4, "right_knee", 3, (0, -0.42, 0)), (5, "right_ankle", 4, (0, -0.41, 0)),
    (6, "right_shoulder", 1, (-0.024, 0.24, 0.18)), (7, "right_elbow", 6, (0, -0.27, 0)),
    (8, "right_wrist", 7, (0, -0.26, 0)),
    (9, "left_hip", 0, (0, 0, -0.085)), (10, "left_knee", 9, (0, -0.42, 0)), (11, "left_ankle", 10, (0, -0.41, 0)),
    (12, "left_shoulder", 1, (-0.024, 0.24, -0.18)), (13, "left_elbow", 12, (0, -0.27, 0)),
    (14, "left_wrist", 13, (0, -0.26, 0)),
]
_IDENTITY = [1.0, 0.0, 0.0, 0.0]


def _row(root=(0.0, 0.9, 0.0), root_q=_IDENTITY, knee=0.0, elbow=0.0, chest_q=_IDENTITY):
    side = [*_IDENTITY, knee, *_IDENTITY, *_IDENTITY, elbow]  # hip, knee, ankle, shoulder, elbow
    return [1 / 30, *root, *root_q, *chest_q, *_IDENTITY] + side + side  # duration, root, chest, neck, right, left


@pytest.fixture
def character(tmp_path):
    path = tmp_path / "humanoid3d.txt"
    joints = [{"ID": i, "Name": n, "Parent": p, "AttachX": o[0], "AttachY": o[1], "AttachZ": o[2]}
              for i, n, p, o in _JOINTS]
    path.write_text(json.dumps({"Skeleton": {"Joints": joints}}))
    return deepmimic.read_skeleton(path)


def _half_turn_quaternion(axis, degrees):
    half = np.radians(degrees) / 2
    return [np.cos(half), *(np.sin(half) * np.asarray(axis, dtype=float))]


def _points(bvh):
    return coco18(bvh) * CMU_UNIT_M


def test_rest_pose_faces_like_cmu(character):
    rows = np.array([_row()])
    pts = _points(deepmimic.to_bvh(rows, character))[1]
    left, right = pts[COCO18.index("l_shoulder")], pts[COCO18.index("r_shoulder")]
    assert left[0] > 0.15 and right[0] < -0.15  # the person's left on +X
    nose, neck = pts[COCO18.index("nose")], pts[COCO18.index("neck")]
    assert nose[2] - neck[2] > 0.05  # the face looks along +Z
    assert nose[1] > neck[1]
    assert np.isclose(pts[COCO18.index("l_hip"), 1], 0.9)


def test_knees_bend_back_and_elbows_forward(character):
    rows = np.array([_row(knee=-np.pi / 2, elbow=np.pi / 2)])
    pts = _points(deepmimic.to_bvh(rows, character))[1]
    for side in "lr":
        knee, ankle = pts[COCO18.index(f"{side}_knee")], pts[COCO18.index(f"{side}_ankle")]
        elbow, wrist = pts[COCO18.index(f"{side}_elbow")], pts[COCO18.index(f"{side}_wrist")]
        assert np.allclose(ankle - knee, [0, 0, -0.41], atol=1e-9)  # shin points backwards
        assert np.allclose(wrist - elbow, [0, 0, 0.26], atol=1e-9)  # forearm points forwards


def test_matches_deepmimic_kinematics(character):
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(5):
        row = np.array(_row(root=rng.normal(size=3), knee=-rng.uniform(0, 2), elbow=rng.uniform(0, 2)))
        for start in (4, 8, 12, 16, 21, 25, 30, 35, 39):  # every quaternion: random, unnormalised
            row[start : start + 4] = rng.normal(size=4)
        rows.append(row)
    rows = np.array(rows)
    bvh = deepmimic.to_bvh(rows, character)
    positions, _ = forward_kinematics(bvh)
    truth = deepmimic.world_positions(rows, character)
    for name, bvh_name, _ in deepmimic._JOINTS:
        ours = positions[1:, bvh.names.index(bvh_name)] * CMU_UNIT_M
        assert np.allclose(ours, truth[name] @ deepmimic._TO_CMU.T, atol=1e-9), name


def test_root_turn_turns_the_whole_body(character):
    turned = _half_turn_quaternion([0, 1, 0], 90)  # a quarter turn left about up
    pts = _points(deepmimic.to_bvh(np.array([_row(), _row(root_q=turned)]), character))
    face = lambda p: p[COCO18.index("nose")] - p[COCO18.index("neck")]  # noqa: E731
    before, after = face(pts[1]), face(pts[2])
    assert before[2] > 0 and after[0] > 0  # facing +Z, then turned to its left (+X)
    assert np.isclose(np.linalg.norm(before), np.linalg.norm(after))


def test_written_file_reads_back(character, tmp_path):
    rows = np.array([_row(knee=-0.5, elbow=1.0, chest_q=_half_turn_quaternion([1, 0, 0], 20))] * 3)
    bvh = deepmimic.to_bvh(rows, character, fps=30)
    path = tmp_path / "127_03_dm.bvh"
    write_bvh(bvh, path)
    back = read_bvh(path)
    assert sorted(back.names) == sorted(bvh.names) and np.isclose(back.fps, 30, rtol=1e-5)
    assert np.abs(_points(back) - _points(bvh)).max() < 1e-4
    assert np.allclose(back.motion[0, 3:], 0) and len(back.motion) == 4  # frame 0: the rest pose


def test_wrong_layout_is_named(tmp_path):
    path = tmp_path / "motion.txt"
    path.write_text(json.dumps({"Frames": [[1 / 30] + [0.0] * 36]}))
    with pytest.raises(ValueError, match="44 numbers"):
        deepmimic.read_motion(path)


def test_cmu_build_changes_only_the_forearm_and_torso(character):
    rows = np.array([_row(knee=-0.3, elbow=0.4)])
    own, cmu = (_points(deepmimic.to_bvh(rows, build))[1]
                for build in (character, deepmimic.cmu_build(character)))
    length = lambda p, a, b: np.linalg.norm(p[COCO18.index(a)] - p[COCO18.index(b)])  # noqa: E731
    for side in "lr":
        assert np.isclose(length(cmu, f"{side}_elbow", f"{side}_wrist"), deepmimic.CMU_FOREARM_M)
        for bone in [("_shoulder", "_elbow"), ("_hip", "_knee"), ("_knee", "_ankle")]:
            a, b = (side + part for part in bone)
            assert np.isclose(length(cmu, a, b), length(own, a, b))
    hips = 0.5 * (cmu[COCO18.index("l_hip")] + cmu[COCO18.index("r_hip")])
    assert np.isclose(cmu[COCO18.index("neck"), 1] - hips[1], deepmimic.CMU_TORSO_M)
    assert np.isclose(length(cmu, "l_shoulder", "r_shoulder"), length(own, "l_shoulder", "r_shoulder"))
