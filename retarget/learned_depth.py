"""The learned depth of the lift: the lifter network reads how far each limb reaches towards
or away from the camera.

The geometric lift (``retarget.lift``) puts each joint on its camera ray at the rig's bone length,
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
from ..pose.layouts import COCO18, Layout
from .depth_witness import Witness, decision_note, settle
from .rotations import kabsch, matrix_to_quat, quat_to_axis_angle, quat_to_matrix

LIFTS = ("learned", "geometric")
# Where the network learns the camera's tilt against the floor: from the scene camera (the
# animator's statement of the shot) or from the image alone (a scene camera not matched to it).
CAMERA_TILTS = ("scene", "image")
REPORT_BELOW = 0.7  # frames whose depth confidence is below this are named in the report
IN_PLANE = np.radians(25.0)  # limbs this near the image plane measure the performer's length
MIN_IN_PLANE = 10  # frames of it needed
TORSO_SAYS = np.radians(10.0)  # how far the rays may turn the network's torso
LENGTH_SAYS = np.radians(15.0)  # how far the limb's image length may move the network's angle


@dataclass
class LearnedDepth:
    # per limb ("r_upper_arm"): (F,) radians out of the image plane, + away from the camera
    angle: dict[str, np.ndarray]
    confidence: np.ndarray  # (F,) how sure the network is of towards/away, 0.5 (coin toss) to 1
    # (F, 18, 3) the network's COCO-18 joints, camera frame (x right, y down, z away), or None
    joints: np.ndarray | None = None
    witness_note: str = ""  # with a second witness (depth_witness): who decided how often

    def limb(self, side: str, kind: str) -> np.ndarray | None:
        return self.angle.get(f"{side}_{kind}")

    def group_rotation(self, names, model: np.ndarray, to_camera: np.ndarray) -> np.ndarray | None:
        """(F, 3, 3) the rotation (armature space) that turns a rigid group of the rig's points
        ``model`` ((K, 3) or (F, K, 3); their layout ``names``) closest onto the network's, both
        about their centres: the torso's (or the head's) lean and turn in depth as the network
        reads them, whatever the rig's build. None without the network's joints or with fewer
        than three of the points."""
        if self.joints is None:
            return None
        found = [(k, COCO18.points.index(n)) for k, n in enumerate(names) if n in COCO18.points]
        if len(found) < 3:
            return None
        rows, columns = (list(x) for x in zip(*found))
        # camera frame (y down, z away) -> Blender's camera (y up, z towards) -> armature
        seen = self.joints[:, columns] * np.array([1.0, -1.0, -1.0])
        seen = np.einsum("fji,fkj->fki", camera_rotation(to_camera), seen)
        ours = np.asarray(model, dtype=np.float64)[..., rows, :]
        return kabsch(ours - ours.mean(-2, keepdims=True), seen - seen.mean(1, keepdims=True))


def length_scale(reach: np.ndarray, angles: np.ndarray) -> float | None:
    """The performer's limb length over the rig's: the median, over the frames where the
    network puts the limb near the image plane, of the length (``reach``, rig lengths) the limb
    needs at the network's angle to end on its pixel. Near the plane a wrong angle barely
    changes that length. None with too few such frames."""
    near = np.abs(angles) < IN_PLANE
    if near.sum() < MIN_IN_PLANE:
        return None
    return float(np.median(reach[near]))


def within_reach(rotation: np.ndarray, learned: np.ndarray, reach: float = TORSO_SAYS) -> np.ndarray:
    """``rotation`` (F, 3, 3) turned towards ``learned`` until it is at most ``reach`` radians
    from it: the rays may move the network's torso only that far."""
    relative = quat_to_axis_angle(matrix_to_quat(np.swapaxes(learned, -1, -2) @ rotation))  # (angle, axis)
    angle = np.minimum(relative[:, 0], reach)
    part = np.concatenate([np.cos(angle / 2.0)[:, None], np.sin(angle / 2.0)[:, None] * relative[:, 1:]], -1)
    return learned @ quat_to_matrix(part)


def fused_angle(angle: np.ndarray, towards: np.ndarray, away: np.ndarray) -> np.ndarray:
    """A limb's depth angle (F,): the network's ``angle``, moved by at most ``LENGTH_SAYS``
    towards the nearer of the two angles at which a limb of the performer's length ends on its
    pixel (``towards``, ``away``: the geometric readings). Where the network and a reading agree
    that closely the limb ends exactly on its pixel (for the performer's own build, the captured
    pose); where none does (a length read through a wrong distance or performer length; a ray
    out of reach) the network stands."""
    nearer = np.where(np.abs(towards - angle) <= np.abs(away - angle), towards, away)
    return angle + np.clip(nearer - angle, -LENGTH_SAYS, LENGTH_SAYS)


def camera_rotation(to_camera: np.ndarray) -> np.ndarray:
    """(F, 3, 3) the rotation of ``to_camera`` (F, 4, 4; armature -> Blender's camera frame, y up,
    z towards the viewer) without the armature's scale: its rows are the camera's axes in
    armature space."""
    turn = np.asarray(to_camera, dtype=np.float64)[:, :3, :3]
    return turn / np.linalg.norm(turn, axis=-1, keepdims=True)


def camera_up(to_camera: np.ndarray, up) -> np.ndarray:
    """(F, 3) the unit direction ``up`` (armature space) in the network's camera frame (x right,
    y down, z away) through ``to_camera`` (F, 4, 4, as ``camera_rotation`` takes it)."""
    turned = np.einsum("fij,j->fi", camera_rotation(to_camera), np.asarray(up, dtype=np.float64))
    turned = turned / np.maximum(np.linalg.norm(turned, axis=-1, keepdims=True), 1e-12)
    return turned * np.array([1.0, -1.0, -1.0])


def tilt_note(up: np.ndarray | None) -> str:
    """"camera tilt from the scene camera: 12 deg down" (mean over the frames), or that the
    image alone gave it: a scene camera far off the shot's tilt misleads the depth."""
    if up is None:
        return "camera tilt read from the image"
    # Level camera: up is (0, -1, 0); looking down, up leans towards the viewer (z < 0: the
    # head is nearer the camera than the feet).
    pitch = float(np.degrees(np.arcsin(np.clip(-np.mean(up[:, 2]), -1.0, 1.0))))
    way = "down" if pitch >= 0 else "up"
    return f"camera tilt from the scene camera: {abs(pitch):.0f} deg {way} (match it to the shot, or read it from the image)"


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
    ``retarget.rays`` maps pixels; None for an orthographic camera (the network needs a pinhole)."""
    p = np.asarray(projection, dtype=np.float64)
    if abs(p[3, 3]) >= 0.5:
        return None
    focal = (p[0, 0] * width / 2.0 + p[1, 1] * height / 2.0) / 2.0
    centre = ((1.0 - p[0, 2]) * width / 2.0 - 0.5, (1.0 + p[1, 2]) * height / 2.0 - 0.5)
    return float(focal), centre


def learned_depth(keypoints, layout: Layout, projection, width: int, height: int,
                  witness: Witness | None = None, up=None) -> LearnedDepth | None:
    """Run the network once over the clip (pixel keypoints (F, points, 3) in ``layout``, the
    camera's window matrix (4, 4) of the first frame). None for an orthographic camera.
    ``witness``: a detector's own 3-D reading of the limbs on the same frames (MediaPipe's),
    settled against the network's (``depth_witness.settle``). ``up``: the world's up direction
    in the camera frame ((3,) or (F, 3); x right, y down, z away: ``camera_up``), None to let
    the network read the camera's tilt from the image."""
    camera = pinhole(projection, width, height)
    if camera is None:
        return None
    joints, towards, confidence, angles = lifter.load().read(body_coco18(keypoints, layout), *camera, up)
    note = ""
    if witness is not None:
        angles, decided = settle(angles, towards, witness)
        note = decision_note(decided, witness.source)
    return LearnedDepth({name: angles[:, i] for i, name in enumerate(lifter.LIMB_NAMES)}, confidence, joints, note)


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
