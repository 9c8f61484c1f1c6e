"""CMU BVH joints -> the project's COCO-18 body points, in world space per frame.

The same conventions as ``pose/rigmap_presets.py`` (so training 2-D looks like what Render /
Import see): shoulder = upper-arm head, elbow = forearm head, wrist = hand head, hip = thigh
head, knee = shin head, ankle = foot head, neck = midpoint of the two shoulders.

Two CMU BVH namings exist: Bruce Hahne's MotionBuilder release (LeftUpLeg, LeftArm, ...) and
his 3ds Max release (LeftHip, LeftShoulder, ...); both are accepted.

CMU captured no face. Nose, eyes and ears are placed at fixed offsets in the Head joint's own
frame (the CMU rest pose faces +Z with +Y up and the person's left on +X); the offsets are a
typical adult head in metres, turned into CMU units. They move with the head's rotation, which
is what a detector's face points show; the lifter is judged on limbs and torso only.
"""
from __future__ import annotations

import numpy as np

from .bvh import Bvh, forward_kinematics

CMU_UNIT_M = 0.056444  # one CMU length unit in metres (the scale Blender import uses here)

COCO18 = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
)
# Left/right partner of every COCO-18 point (for mirroring and detector swaps).
MIRROR = tuple(COCO18.index(n.replace("l_", "#").replace("r_", "l_").replace("#", "r_")) for n in COCO18)

# COCO point -> candidate joint names (MotionBuilder release first, 3ds Max release second).
_JOINTS = {
    "l_shoulder": ("LeftArm", "LeftShoulder"), "r_shoulder": ("RightArm", "RightShoulder"),
    "l_elbow": ("LeftForeArm", "LeftElbow"), "r_elbow": ("RightForeArm", "RightElbow"),
    "l_wrist": ("LeftHand", "LeftWrist"), "r_wrist": ("RightHand", "RightWrist"),
    "l_hip": ("LeftUpLeg", "LeftHip"), "r_hip": ("RightUpLeg", "RightHip"),
    "l_knee": ("LeftLeg", "LeftKnee"), "r_knee": ("RightLeg", "RightKnee"),
    "l_ankle": ("LeftFoot", "LeftAnkle"), "r_ankle": ("RightFoot", "RightAnkle"),
}
# Face points in the Head joint's frame, metres: (x = person's left, y = up, z = forward).
_FACE_M = {
    "nose": (0.0, 0.055, 0.105),
    "l_eye": (0.032, 0.090, 0.085), "r_eye": (-0.032, 0.090, 0.085),
    "l_ear": (0.075, 0.070, 0.000), "r_ear": (-0.075, 0.070, 0.000),
}


def _find(bvh: Bvh, candidates) -> int:
    for name in candidates:
        if name in bvh.names:
            return bvh.names.index(name)
    raise KeyError(f"none of {candidates} in the BVH")


def coco18_from_positions(bvh: Bvh, positions: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """(frames, 18, 3) COCO-18 points from forward-kinematics output, file units."""
    out = np.zeros(positions.shape[:1] + (18, 3))
    for point, candidates in _JOINTS.items():
        out[:, COCO18.index(point)] = positions[:, _find(bvh, candidates)]
    out[:, 1] = 0.5 * (out[:, 2] + out[:, 5])
    head = _find(bvh, ("Head",))
    for point, offset_m in _FACE_M.items():
        local = np.asarray(offset_m) / CMU_UNIT_M
        out[:, COCO18.index(point)] = positions[:, head] + rotations[:, head] @ local
    return out


def coco18(bvh: Bvh, motion=None, offsets=None) -> np.ndarray:
    positions, rotations = forward_kinematics(bvh, motion, offsets)
    return coco18_from_positions(bvh, positions, rotations)
