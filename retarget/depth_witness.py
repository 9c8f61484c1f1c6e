"""A second witness to the lift's depth: a detector's own 3-D body (MediaPipe's world landmarks,
an extraction's ``world.json``), checked limb by limb against the lifter's reading.

The lifter reads each limb's depth from the 2-D keypoints' motion alone; MediaPipe reads it from
the picture itself (shading, overlap, a limb narrowing towards the camera). Per limb and frame:
- the two **agree** (the same side of the image plane, or both within ``NEAR`` of it): their
  mean is used;
- they **disagree** and the lifter is sure of towards/away (its probability beyond ``SURE``):
  the lifter decides;
- they disagree and the lifter is unsure: **MediaPipe** decides;
- MediaPipe did not see the limb: the lifter alone.
The import's report says how often each decided.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .lifter import LIMBS, depth_angles

NEAR = np.radians(10.0)  # both this close to the image plane: no side to disagree on
SURE = 0.7  # the lifter's P(towards) beyond 0.7 (or below 0.3): sure of the side
SEEN = 0.5  # the witness's confidence in both ends of a limb
AGREED, LIFTER, WITNESS, LIFTER_ALONE = 0, 1, 2, 3
_LABELS = {AGREED: "both, agreeing", LIFTER: "the lifter (they disagreed, the lifter sure)",
           WITNESS: "{source} (they disagreed, the lifter unsure)",
           LIFTER_ALONE: "the lifter alone ({source} did not see the limb)"}


@dataclass
class Witness:
    source: str  # "mediapipe"
    angle: np.ndarray  # (F, 8) radians out of the image plane, + away from the camera (LIMBS order)
    seen: np.ndarray  # (F, 8) bool


def limb_angles(points: np.ndarray, seen: float = SEEN) -> tuple[np.ndarray, np.ndarray]:
    """(angle (F, 8), seen (F, 8)) of the limbs of COCO-18 world points (F, 18, 4): x, y, z
    camera-aligned (z away), confidence."""
    points = np.asarray(points, dtype=np.float64)
    parent, child = np.array(LIMBS).T
    length = np.linalg.norm(points[:, child, :3] - points[:, parent, :3], axis=-1)
    present = (points[:, parent, 3] >= seen) & (points[:, child, 3] >= seen) & (length > 1e-6)
    return depth_angles(points[..., :2], points[..., 2]), present


def on_times(angle: np.ndarray, seen: np.ndarray, times, instants) -> tuple[np.ndarray, np.ndarray]:
    """The witness's (angle, seen) at ``instants`` (seconds) from its frames at ``times``:
    angles interpolated between the frames that saw the limb, seen where both neighbours did."""
    times, instants = np.asarray(times, dtype=np.float64), np.asarray(instants, dtype=np.float64)
    out_angle = np.zeros((len(instants), angle.shape[1]))
    out_seen = np.zeros((len(instants), angle.shape[1]), bool)
    for limb in range(angle.shape[1]):
        mine = seen[:, limb]
        if mine.sum() < 1:
            continue
        out_angle[:, limb] = np.interp(instants, times[mine], angle[mine, limb])
        out_seen[:, limb] = np.interp(instants, times, mine.astype(np.float64)) > 0.999
    return out_angle, out_seen


def settle(lifter_angle: np.ndarray, towards: np.ndarray, witness: Witness) -> tuple[np.ndarray, np.ndarray]:
    """(angle (F, 8), decided (F, 8): AGREED, LIFTER, WITNESS or LIFTER_ALONE) from the
    lifter's angles and towards-probabilities (F, 8) and the witness (see the module doc)."""
    lifter_angle = np.asarray(lifter_angle, dtype=np.float64)
    mine = witness.angle
    agree = (np.sign(lifter_angle) == np.sign(mine)) | ((np.abs(lifter_angle) < NEAR) & (np.abs(mine) < NEAR))
    sure = np.abs(2.0 * np.asarray(towards) - 1.0) >= 2.0 * SURE - 1.0
    decided = np.where(~witness.seen, LIFTER_ALONE, np.where(agree, AGREED, np.where(sure, LIFTER, WITNESS)))
    angle = np.select(
        [decided == AGREED, decided == WITNESS], [(lifter_angle + mine) / 2.0, mine], default=lifter_angle
    )
    return angle, decided


def decision_note(decided: np.ndarray, source: str) -> str:
    """"depth of the arms and legs read by the lifter and mediapipe: both, agreeing 81%, ..."."""
    decided = np.asarray(decided)
    if decided.size == 0:
        return ""
    shares = [(100.0 * np.mean(decided == code), label.format(source=source)) for code, label in _LABELS.items()]
    listed = ", ".join(f"{label} {share:.0f}%" for share, label in shares if share > 0)
    return f"depth of the arms and legs read by the lifter and {source}: {listed}"
