"""The learned depth of the lift: the lifter network reads how far each limb reaches towards
or away from the camera.

The geometric lift (``pose.lift``) puts each joint on its camera ray at the rig's bone length,
so a limb's depth follows from how long it looks against the rig's bone: exact for a rig of the
performer's build, wrong for any other, and with two readings (towards, away) that only
continuity and joint limits settle. The network reads the depth angle of the upper arms,
forearms, thighs and shins from the whole body's motion instead, whatever the rig's build; the
lift then turns each of those limbs to that angle along the video's image direction, so the
rig's bone lengths and the image directions hold as before.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import lifter
from .layouts import COCO18, Layout

LIFTS = ("learned", "geometric")
REPORT_BELOW = 0.7  # frames whose depth confidence is below this are named in the report
IN_PLANE = np.radians(25.0)  # limbs this near the image plane measure the performer's length
MIN_IN_PLANE = 10  # frames of it needed
LENGTH_SAYS = np.radians(15.0)  # how far the limb's image length may move the network's angle


@dataclass
class LearnedDepth:
    # per limb ("r_upper_arm"): (F,) radians out of the image plane, + away from the camera
    angle: dict[str, np.ndarray]
    confidence: np.ndarray  # (F,) how sure the network is of towards/away, 0.5 (coin toss) to 1

    def limb(self, side: str, kind: str) -> np.ndarray | None:
        return self.angle.get(f"{side}_{kind}")


def length_scale(reach: np.ndarray, angles: np.ndarray) -> float | None:
    """The performer's limb length over the rig's: the median, over the frames where the
    network puts the limb near the image plane, of the length (``reach``, rig lengths) the limb
    needs at the network's angle to end on its pixel. Near the plane a wrong angle barely
    changes that length. None with too few such frames."""
    near = np.abs(angles) < IN_PLANE
    if near.sum() < MIN_IN_PLANE:
        return None
    return float(np.median(reach[near]))


def fused_angle(angle: np.ndarray, towards: np.ndarray, away: np.ndarray) -> np.ndarray:
    """A limb's depth angle (F,): the network's ``angle``, moved by at most ``LENGTH_SAYS``
    towards the nearer of the two angles at which a limb of the performer's length ends on its
    pixel (``towards``, ``away``: the geometric readings). Where the network and a reading agree
    that closely the limb ends exactly on its pixel (for the performer's own build, the captured
    pose); where none does (a length read through a wrong distance or performer length; a ray
    out of reach) the network stands."""
    nearer = np.where(np.abs(towards - angle) <= np.abs(away - angle), towards, away)
    return angle + np.clip(nearer - angle, -LENGTH_SAYS, LENGTH_SAYS)


def body_coco18(keypoints, layout: Layout) -> np.ndarray:
    """(F, 18, 3) COCO-18 body points from a clip in ``layout`` (by name; the neck from the
    shoulders when the layout has none; absent points stay zero)."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    out = np.zeros((keypoints.shape[0], len(COCO18), 3))
    for i, name in enumerate(COCO18.points):
        j = layout.find(name)
        if j is not None:
            out[:, i] = keypoints[:, j]
    if layout.find("neck") is None:
        both = (out[:, 2, 2] > 0) & (out[:, 5, 2] > 0)
        out[both, 1, :2] = (out[both, 2, :2] + out[both, 5, :2]) / 2.0
        out[both, 1, 2] = np.minimum(out[both, 2, 2], out[both, 5, 2])
    return out


def pinhole(projection, width: int, height: int) -> tuple[float, tuple[float, float]] | None:
    """Focal length and principal point in pixels from Blender's window matrix (4, 4), as
    ``pose.rays`` maps pixels; None for an orthographic camera (the network needs a pinhole)."""
    p = np.asarray(projection, dtype=np.float64)
    if abs(p[3, 3]) >= 0.5:
        return None
    focal = (p[0, 0] * width / 2.0 + p[1, 1] * height / 2.0) / 2.0
    centre = ((1.0 - p[0, 2]) * width / 2.0 - 0.5, (1.0 + p[1, 2]) * height / 2.0 - 0.5)
    return float(focal), centre


def learned_depth(keypoints, layout: Layout, projection, width: int, height: int) -> LearnedDepth | None:
    """Run the network once over the clip (pixel keypoints (F, points, 3) in ``layout``, the
    camera's window matrix (4, 4) of the first frame). None for an orthographic camera."""
    camera = pinhole(projection, width, height)
    if camera is None:
        return None
    _, _, confidence, angles = lifter.load().read(body_coco18(keypoints, layout), *camera)
    return LearnedDepth({name: angles[:, i] for i, name in enumerate(lifter.LIMB_NAMES)}, confidence)


def confidence_note(confidence, frames, below: float = REPORT_BELOW, most: int = 8) -> str:
    """"learned depth: 37 frames below 0.7 confidence: 12-18, 40-52" (``frames``: the key
    frame numbers), so an animator knows which frames to check."""
    low = np.asarray(confidence) < below
    frames = np.asarray(frames)
    if not low.any():
        return f"learned depth: confidence {below} or more in every frame"
    runs, start = [], None
    for i, flag in enumerate(np.append(low, False)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            a, b = int(frames[start]), int(frames[i - 1])
            runs.append(str(a) if a == b else f"{a}-{b}")
            start = None
    listed = ", ".join(runs[:most]) + (f", ... ({len(runs) - most} more)" if len(runs) > most else "")
    return f"learned depth: {int(low.sum())} frames below {below} confidence: {listed}"
