"""DeepMimic humanoid motion files -> the same ``train.bvh.Bvh`` as Hahne's CMU release.

Some public repositories carry CMU clips only as motion retargeted to DeepMimic's ``humanoid3d``
character (a JSON ``{"Frames": [[duration, root xyz, root wxyz, chest wxyz, neck wxyz,
right hip wxyz, right knee angle, right ankle wxyz, right shoulder wxyz, right elbow angle,
left hip ..., left elbow angle], ...]}``, metres, Y up, the character facing +X with its right
on +Z). The skeleton (joint offsets) is in the character file's ``Skeleton.Joints``. Spherical
joints are unit quaternions (w, x, y, z) relative to the parent, revolute ones (knees, elbows)
an angle in radians about the parent's Z axis; the root is in world space.

The conversion keeps the motion exactly and only renames and re-expresses it: every joint
becomes a BVH joint with MotionBuilder names (``Hips``, ``Spine``, ``Neck``, ``LeftUpLeg``,
``LeftArm``, ...), in CMU length units, in CMU's rest frame (facing +Z, the person's left on
+X: a quarter turn about Y), with ``Zrotation Yrotation Xrotation`` channels. The character has
no head joint, so ``Head`` (the face's anchor in ``skeleton.coco18``) is placed where CMU's sits
relative to the shoulders (14 cm above their midpoint, 3 cm ahead), turning with the neck.
Frame 0 of the written clip is the rest pose, as in Hahne's files (``make_dataset`` skips it).
"""
from __future__ import annotations

import json

import numpy as np

from .asf_amc import _zyx_angles
from .bvh import Bvh
from .skeleton import CMU_UNIT_M

# DeepMimic joint -> (MotionBuilder name, DOFs in a frame row: 4 quaternion, 1 revolute, 0 fixed).
# Rows list the joints in this order after the duration, root position and root rotation.
_JOINTS = (
    ("root", "Hips", 4), ("chest", "Spine", 4), ("neck", "Neck", 4),
    ("right_hip", "RightUpLeg", 4), ("right_knee", "RightLeg", 1), ("right_ankle", "RightFoot", 4),
    ("right_shoulder", "RightArm", 4), ("right_elbow", "RightForeArm", 1), ("right_wrist", "RightHand", 0),
    ("left_hip", "LeftUpLeg", 4), ("left_knee", "LeftLeg", 1), ("left_ankle", "LeftFoot", 4),
    ("left_shoulder", "LeftArm", 4), ("left_elbow", "LeftForeArm", 1), ("left_wrist", "LeftHand", 0),
)
ROW_LENGTH = 1 + 3 + sum(dofs for _, _, dofs in _JOINTS)  # 44 for humanoid3d
# Humanoid axes (x forward, y up, z right) -> CMU's (x left, y up, z forward): a -90 degree turn about Y.
_TO_CMU = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
# CMU's Head joint relative to the shoulders' midpoint (subject 35 at rest), metres, CMU axes.
_HEAD_ABOVE_SHOULDERS_M = np.array([0.0, 0.142, 0.03])
_ZYX = ["Zrotation", "Yrotation", "Xrotation"]
# Where humanoid3d's build is far from CMU's (subjects 35 and 131 in Hahne's files, metres): the
# forearm (0.26 against 0.20) and the shoulders' midpoint above the hips' (0.48 against 0.39).
# The lifter reads depth from how short a limb looks against its usual length, so training clips
# of one fixed, differently built figure blur that cue; ``cmu_build`` gives the figure CMU's.
CMU_FOREARM_M = 0.20
CMU_TORSO_M = 0.39


def read_motion(path) -> np.ndarray:
    """(frames, 44) rows of a DeepMimic motion file; the first column is each frame's duration."""
    with open(path, encoding="utf-8") as handle:
        rows = np.asarray(json.load(handle)["Frames"], dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != ROW_LENGTH:
        raise ValueError(f"{path}: expected rows of {ROW_LENGTH} numbers (humanoid3d), got shape {rows.shape}")
    return rows


def read_skeleton(path) -> dict[str, tuple[str, np.ndarray]]:
    """DeepMimic joint name -> (parent name or '', offset from the parent in metres) from a character file."""
    with open(path, encoding="utf-8") as handle:
        joints = json.load(handle)["Skeleton"]["Joints"]
    by_id = {j["ID"]: j for j in joints}
    return {
        j["Name"]: (by_id[j["Parent"]]["Name"] if j["Parent"] >= 0 else "",
                    np.array([j["AttachX"], j["AttachY"], j["AttachZ"]], dtype=np.float64))
        for j in joints
    }


def cmu_build(skeleton) -> dict[str, tuple[str, np.ndarray]]:
    """The skeleton with CMU's forearm length and torso height (``CMU_FOREARM_M``,
    ``CMU_TORSO_M``); every other bone, and every joint's rotation, as the figure has them."""
    out = dict(skeleton)
    for side in ("left", "right"):
        parent, offset = skeleton[side + "_wrist"]
        out[side + "_wrist"] = (parent, offset * CMU_FOREARM_M / np.linalg.norm(offset))
    shoulders_y = skeleton["chest"][1][1] + 0.5 * (skeleton["left_shoulder"][1][1] + skeleton["right_shoulder"][1][1])
    squash = np.array([1.0, CMU_TORSO_M / shoulders_y, 1.0])  # heights only: widths and depths stay
    for name in ("chest", "neck", "left_shoulder", "right_shoulder"):
        parent, offset = skeleton[name]
        out[name] = (parent, offset * squash)
    return out


def _quaternion_matrices(q: np.ndarray) -> np.ndarray:
    """(frames, 4) unit quaternions (w, x, y, z) -> (frames, 3, 3)."""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], axis=-1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], axis=-1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1),
    ], axis=-2)


def _z_matrices(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(angle), np.zeros_like(angle)
    return np.stack([np.stack([c, -s, zero], -1), np.stack([s, c, zero], -1), np.stack([zero, zero, one], -1)], -2)


def local_rotations(rows: np.ndarray) -> dict[str, np.ndarray]:
    """DeepMimic joint -> (frames, 3, 3) rotation relative to its parent (the root's: world), humanoid axes."""
    out, col = {}, 4
    for name, _, dofs in _JOINTS:
        if dofs == 4:
            out[name] = _quaternion_matrices(rows[:, col : col + 4])
        elif dofs == 1:
            out[name] = _z_matrices(rows[:, col])
        else:
            out[name] = np.broadcast_to(np.eye(3), (len(rows), 3, 3))
        col += dofs
    return out


def world_positions(rows: np.ndarray, skeleton) -> dict[str, np.ndarray]:
    """DeepMimic's own forward kinematics: joint -> (frames, 3) world position, metres, humanoid axes."""
    local = local_rotations(rows)
    rotation, position = {}, {}
    for name, _, _ in _JOINTS:
        parent, offset = skeleton[name]
        if not parent:
            position[name], rotation[name] = rows[:, 1:4], local[name]
        else:
            position[name] = position[parent] + rotation[parent] @ offset
            rotation[name] = rotation[parent] @ local[name]
    return position


def to_bvh(rows: np.ndarray, skeleton, fps: float = 30.0) -> Bvh:
    """A Hahne-style MotionBuilder ``Bvh`` of the clip (CMU units and axes), rest pose as frame 0."""
    local = local_rotations(rows)
    names, parents, offsets, channels, columns = [], [], [], [], []
    index = {}
    for name, bvh_name, dofs in _JOINTS:
        parent, offset = skeleton[name]
        index[name] = len(names)
        names.append(bvh_name)
        parents.append(index[parent] if parent else -1)
        offsets.append(_TO_CMU @ offset / CMU_UNIT_M)
        if dofs == 0:
            channels.append([])
            continue
        turned = _TO_CMU @ local[name] @ _TO_CMU.T
        angles = _zyx_angles(turned)
        if not parent:
            channels.append(["Xposition", "Yposition", "Zposition"] + _ZYX)
            columns.append(rows[:, 1:4] @ _TO_CMU.T / CMU_UNIT_M)
        else:
            channels.append(list(_ZYX))
        columns.append(angles)
        if name == "neck":  # the Head joint, fixed on the neck, where CMU's head joint sits
            shoulders = 0.5 * (skeleton["left_shoulder"][1] + skeleton["right_shoulder"][1])
            head = _TO_CMU @ (shoulders - offset) + _HEAD_ABOVE_SHOULDERS_M
            names += ["Head", "Head_End"]
            parents += [index[name], len(names) - 2]
            offsets += [head / CMU_UNIT_M, np.array([0.0, 0.1, 0.0]) / CMU_UNIT_M]
            channels += [[], []]
    motion = np.concatenate(columns, axis=1)
    motion = np.concatenate([np.zeros((1, motion.shape[1])), motion])
    motion[0, :3] = motion[1, :3]  # the rest frame stands where the clip starts
    return Bvh(names, np.asarray(parents), np.asarray(offsets), channels, motion, 1.0 / fps)


def main(argv=None) -> None:
    import argparse

    from .asf_amc import write_bvh

    parser = argparse.ArgumentParser(description="DeepMimic humanoid3d motion -> CMU-style BVH")
    parser.add_argument("character", help="the humanoid3d character file (Skeleton.Joints)")
    parser.add_argument("motion", help="the motion file (Frames)")
    parser.add_argument("out", help="the BVH to write, e.g. 127_03_dm.bvh")
    parser.add_argument("--fps", type=float, default=0.0, help="default: from the frames' durations")
    parser.add_argument("--build", choices=("cmu", "own"), default="cmu",
                        help="cmu: CMU's forearm and torso lengths (cmu_build); own: the figure's")
    args = parser.parse_args(argv)
    rows = read_motion(args.motion)
    if not args.fps and len(rows) < 2:
        parser.error(f"{args.motion}: one frame gives no frame rate; pass --fps")
    fps = args.fps or 1.0 / np.median(rows[:-1, 0])
    skeleton = read_skeleton(args.character)
    if args.build == "cmu":
        skeleton = cmu_build(skeleton)
    write_bvh(to_bvh(rows, skeleton, fps=round(fps, 3)), args.out)


if __name__ == "__main__":
    main()
