"""CMU BVH joints -> the project's COCO-18 body points, in world space per frame.

The same conventions as ``pose/rigmap_presets.py`` (so training 2-D looks like what Render /
Import see): shoulder = upper-arm head, elbow = forearm head, wrist = hand head, hip = thigh
head, knee = shin head, ankle = foot head, neck = midpoint of the two shoulders.

Three CMU BVH namings are accepted, all Bruce Hahne's: his MotionBuilder release (LeftUpLeg,
LeftArm, ...) and 3ds Max release (LeftHip, LeftShoulder, ...), both in CMU length units with each
subject's own skeleton, and his Daz-friendly release (lThigh, lShldr, ...), one fixed Daz figure
for every subject, in centimetres. Whatever the file's unit, ``coco18`` answers in CMU units, so
every caller turns it into metres with ``CMU_UNIT_M``. The Daz figure's shoulders are narrow
(upper-arm heads 0.23 m apart); ``coco18`` widens them to ``DAZ_SHOULDER_WIDTH_M``.

CMU captured no face. Nose, eyes and ears are placed at fixed offsets in the Head joint's own
frame (the CMU rest pose faces +Z with +Y up and the person's left on +X); the offsets are a
typical adult head in metres, turned into CMU units. They move with the head's rotation, which
is what a detector's face points show; the lifter is judged on limbs and torso only.
"""
from __future__ import annotations

import numpy as np

from .bvh import Bvh, forward_kinematics

CMU_UNIT_M = 0.056444  # one CMU length unit in metres (the scale Blender import uses here)
DAZ_UNIT_M = 0.01  # Hahne's Daz-friendly release is in centimetres
# Upper-arm heads apart in the Daz figure's rest pose once widened: the CMU subjects here have
# 0.33-0.39 m (35 and 131), anatomy about 0.2 x height; the figure itself has 0.23 m.
DAZ_SHOULDER_WIDTH_M = 0.36

COCO18 = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
)
# Left/right partner of every COCO-18 point (for mirroring and detector swaps).
MIRROR = tuple(COCO18.index(n.replace("l_", "#").replace("r_", "l_").replace("#", "r_")) for n in COCO18)

# COCO point -> candidate joint names (MotionBuilder release first, 3ds Max release second, Daz
# last: the order matters, as the MotionBuilder release's LeftShoulder is the collar bone).
_JOINTS = {
    "l_shoulder": ("LeftArm", "LeftShoulder", "lShldr"), "r_shoulder": ("RightArm", "RightShoulder", "rShldr"),
    "l_elbow": ("LeftForeArm", "LeftElbow", "lForeArm"), "r_elbow": ("RightForeArm", "RightElbow", "rForeArm"),
    "l_wrist": ("LeftHand", "LeftWrist", "lHand"), "r_wrist": ("RightHand", "RightWrist", "rHand"),
    "l_hip": ("LeftUpLeg", "LeftHip", "lThigh"), "r_hip": ("RightUpLeg", "RightHip", "rThigh"),
    "l_knee": ("LeftLeg", "LeftKnee", "lShin"), "r_knee": ("RightLeg", "RightKnee", "rShin"),
    "l_ankle": ("LeftFoot", "LeftAnkle", "lFoot"), "r_ankle": ("RightFoot", "RightAnkle", "rFoot"),
}
# Face points in the Head joint's frame, metres: (x = person's left, y = up, z = forward). The Daz
# figure's head joint has the same rest frame (BVH rest frames are the world's; the figure faces
# +Z with its left on +X) and sits, like CMU's, at the top of the neck: its own eye joints lie
# within 1.5 cm of the eyes placed here.
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


def is_daz(bvh: Bvh) -> bool:
    return "lShldr" in bvh.names


def unit_m(bvh: Bvh) -> float:
    """One length unit of the file, in metres."""
    return DAZ_UNIT_M if is_daz(bvh) else CMU_UNIT_M


def figure_offsets(bvh: Bvh, offsets: np.ndarray) -> np.ndarray:
    """Rest offsets as ``coco18`` uses them: the Daz figure's shoulders widened, others as given.

    Sideways only, by a factor from the file's own offsets, so bone-length variations already
    applied to ``offsets`` (``make_dataset``) carry through."""
    if not is_daz(bvh):
        return offsets
    offsets = offsets.copy()
    for side in "lr":
        collar, shoulder = bvh.index(side + "Collar"), bvh.index(side + "Shldr")
        # chest, neck and spine sit on x = 0, so the collar and shoulder offsets give the half-width
        reach = 0.5 * DAZ_SHOULDER_WIDTH_M / DAZ_UNIT_M - abs(bvh.offsets[collar, 0])
        offsets[shoulder, 0] *= reach / abs(bvh.offsets[shoulder, 0])
    return offsets


def coco18_from_positions(bvh: Bvh, positions: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """(frames, 18, 3) COCO-18 points from forward-kinematics output (file units), in CMU units."""
    out = np.zeros(positions.shape[:1] + (18, 3))
    for point, candidates in _JOINTS.items():
        out[:, COCO18.index(point)] = positions[:, _find(bvh, candidates)]
    out[:, 1] = 0.5 * (out[:, 2] + out[:, 5])
    head = _find(bvh, ("Head", "head"))
    for point, offset_m in _FACE_M.items():
        local = np.asarray(offset_m) / unit_m(bvh)
        out[:, COCO18.index(point)] = positions[:, head] + rotations[:, head] @ local
    return out * (unit_m(bvh) / CMU_UNIT_M)


def coco18(bvh: Bvh, motion=None, offsets=None) -> np.ndarray:
    """(frames, 18, 3) COCO-18 points in CMU units (times ``CMU_UNIT_M`` for metres), Y up."""
    offsets = figure_offsets(bvh, bvh.offsets if offsets is None else offsets)
    positions, rotations = forward_kinematics(bvh, motion, offsets)
    return coco18_from_positions(bvh, positions, rotations)
