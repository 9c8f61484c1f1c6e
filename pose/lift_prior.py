"""The learned depth prior of the lift: the lifter network's towards/away probabilities become
costs on the two readings of each limb, where the network is sure.

The geometric lift (``pose.lift``) puts each joint on its camera ray at the rig's bone length;
a limb then has two readings, towards and away from the camera, settled by a pass over the
frames (continuity, joint limits). The prior only adds a cost to the reading the network
disagrees with, so bone lengths and image directions hold exactly as without it. Where the
network is not sure (probability near 0.5) it adds nothing and today's choice stands.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import lifter
from .layouts import COCO18, Layout

LIFTS = ("learned", "geometric")
SURE = 0.7  # P(towards) beyond 0.7 (or below 0.3) has a say; nearer 0.5 it is a coin toss
WEIGHT = 12.0  # a wrong reading pointing straight at/away from the camera, network certain (bench: 4 was too weak)
REPORT_BELOW = 0.7  # frames whose depth confidence is below this are named in the report


@dataclass
class LimbPrior:
    trust: dict[str, np.ndarray]  # per limb ("r_upper_arm"): (F,) in [-1, 1], + towards camera, 0 no say
    confidence: np.ndarray  # (F,) the network's per-frame confidence, 0.5 (coin toss) to 1


def trust_from(towards: np.ndarray, sure: float = SURE) -> np.ndarray:
    """Signed trust in [-1, 1] from P(towards): 0 until ``sure`` either way, 1 at certainty."""
    margin = np.abs(2.0 * np.asarray(towards) - 1.0)
    low = 2.0 * sure - 1.0
    return np.sign(2.0 * np.asarray(towards) - 1.0) * np.clip((margin - low) / (1.0 - low), 0.0, 1.0)


def prior_cost(prior: LimbPrior | None, side: str, kind: str, to_camera, candidates):
    """Cost (F, 2) of each candidate unit direction (F, 2, 3) of limb ``side``_``kind``
    (armature space; ``to_camera`` (F, 4, 4)), or 0.0 when the prior has no say on it.
    A reading costs in proportion to how far it points the way the network rules out, so
    readings across the line of sight (where the two meet) cost almost nothing either way."""
    trust = None if prior is None else prior.trust.get(f"{side}_{kind}")
    if trust is None:
        return 0.0
    backwards = np.asarray(to_camera)[:, 2, :3]  # camera +z in armature space: towards the camera
    backwards = backwards / np.linalg.norm(backwards, axis=-1, keepdims=True)
    towards = np.einsum("fki,fi->fk", candidates, backwards)
    return WEIGHT * np.maximum(-trust[:, None] * towards, 0.0)


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


def learned_prior(keypoints, layout: Layout, projection, width: int, height: int) -> LimbPrior | None:
    """Run the network once over the clip (pixel keypoints (F, points, 3) in ``layout``, the
    camera's window matrix (4, 4) of the first frame). None for an orthographic camera."""
    camera = pinhole(projection, width, height)
    if camera is None:
        return None
    _, towards, confidence = lifter.load()(body_coco18(keypoints, layout), *camera)
    trust = {name: trust_from(towards[:, i]) for i, name in enumerate(lifter.LIMB_NAMES)}
    return LimbPrior(trust, confidence)


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
