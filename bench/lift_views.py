"""Measures of a lift in 3-D, seen from several cameras (issue 16's benchmark, bench_lift_3d.py,
and its test): where to put the cameras, and how far an imported rig's limbs point from the
capture's. Pure numpy, no Blender.

Conventions: world space is Blender's (Z up). Camera space is Blender's camera frame: x to the
image's right, y up, z towards the viewer (the camera looks down -z), so a limb's z component
is its towards (+) / away (-) part. Pixels are OpenPose's (origin top-left, y down).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from limb_metrics import LIMBS

# Each view: azimuth (degrees about the vertical, 0 = in front of the subject, 90 = on the
# subject's left) and elevation (degrees above the clip's centre).
VIEWS = {
    "front": (0.0, 5.0),
    "side": (90.0, 5.0),
    "back": (180.0, 5.0),
    "three_quarter": (45.0, 5.0),
    "high": (30.0, 45.0),
}
OUT_OF_PLANE_DEG = 20.0  # limbs pointing further than this out of the image plane have a depth sign


@dataclass
class CameraPlacement:
    matrix_world: np.ndarray  # (4, 4): columns x (image right), y (image up), z (back), location
    distance: float  # from the clip's centre
    lens: float  # mm
    sensor: float  # mm, across the image's larger side (Blender's sensor fit AUTO)


def limb_directions(points, present, layout):
    """Unit directions of the limbs (LIMBS: upper arms, forearms, thighs, shins), parent joint to
    child joint: (frames, limbs, 3) from 3-D points (or 2 from pixels), and where both ends are
    present (frames, limbs)."""
    points = np.asarray(points, np.float64)
    present = np.asarray(present, bool)
    starts = [layout.index(a) for a, _ in LIMBS]
    ends = [layout.index(b) for _, b in LIMBS]
    vectors = points[:, ends] - points[:, starts]
    length = np.linalg.norm(vectors, axis=-1)
    valid = present[:, starts] & present[:, ends] & (length > 1e-9)
    return vectors / np.where(valid, length, 1.0)[..., None], valid


def torso_directions(points, present, layout):
    """The torso's lean: unit 3-D direction from the mid-hip to the neck (mid-shoulders),
    (frames, 1, 3), and where all four points are present (frames, 1). The limbs' figures do
    not see it (they are directions, wherever the torso puts the limbs' starts), a side view
    does: a torso tipped forwards or backwards in depth."""
    points = np.asarray(points, np.float64)
    present = np.asarray(present, bool)
    corners = [layout.index(n) for n in ("l_hip", "r_hip", "l_shoulder", "r_shoulder")]
    up = points[:, corners[2:]].mean(1) - points[:, corners[:2]].mean(1)
    length = np.linalg.norm(up, axis=-1)
    valid = present[:, corners].all(axis=1) & (length > 1e-9)
    return (up / np.where(valid, length, 1.0)[:, None])[:, None], valid[:, None]


def image_directions(xy, present, layout):
    """The same limbs' 2-D image directions (pixels, y down) as unit vectors (frames, limbs, 2)."""
    return limb_directions(xy, present, layout)


def subject_forward(points, present, layout, up=(0.0, 0.0, 1.0)):
    """The way the subject faces on average over the clip (a horizontal unit vector): the
    horizontal perpendicular to its right -> left hip and shoulder lines."""
    up = np.asarray(up, np.float64)
    across = np.zeros(3)
    for a, b in (("l_hip", "r_hip"), ("l_shoulder", "r_shoulder")):
        i, j = layout.index(a), layout.index(b)
        seen = present[:, i] & present[:, j]
        across += (points[seen, i] - points[seen, j]).sum(axis=0)
    left = across - up * (across @ up)
    forward = np.cross(left, up)  # the left side at +X faces -Y: X x Z = -Y
    return forward / np.linalg.norm(forward)


def place_camera(points, forward, azimuth, elevation, lens=35.0, sensor=36.0, size=(1280, 720), margin=0.08,
                 nearest=1.0, up=(0.0, 0.0, 1.0)) -> CameraPlacement:
    """A perspective camera looking at the centre of ``points`` (every point of the clip,
    (n, 3) world) from ``azimuth``/``elevation`` degrees relative to the subject's ``forward``,
    as close as it can be with every point inside the frame (``margin`` of each half-width
    kept free) and none nearer than ``nearest``."""
    points = np.asarray(points, np.float64).reshape(-1, 3)
    up = np.asarray(up, np.float64)
    forward = np.asarray(forward, np.float64)
    left = np.cross(up, forward)
    a, e = np.radians(azimuth), np.radians(elevation)
    towards_camera = np.cos(e) * (np.cos(a) * forward + np.sin(a) * left) + np.sin(e) * up
    look = -towards_camera
    right = np.cross(look, up)
    right /= np.linalg.norm(right)
    image_up = np.cross(right, look)
    centre = 0.5 * (points.min(axis=0) + points.max(axis=0))
    rel = points - centre
    width, height = size
    half_x = 0.5 * sensor / lens if width >= height else 0.5 * sensor / lens * width / height
    half_y = half_x * height / width
    x, y, along = rel @ right, rel @ image_up, rel @ look  # depth = distance + along
    keep = 1.0 - margin
    distance = max(
        float(np.max(np.abs(x) / (half_x * keep) - along)),
        float(np.max(np.abs(y) / (half_y * keep) - along)),
        float(np.max(nearest - along)),
    )
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2] = right, image_up, towards_camera
    matrix[:3, 3] = centre + distance * towards_camera
    return CameraPlacement(matrix, distance, lens, sensor)


def to_camera(directions, world_to_camera):
    """World directions (..., 3) turned into the camera frame (the rotation of a (4, 4)
    world_to_camera matrix, its scale removed)."""
    rotation = np.asarray(world_to_camera, np.float64)[:3, :3]
    rotation = rotation / np.linalg.norm(rotation, axis=1, keepdims=True)
    out = np.asarray(directions, np.float64) @ rotation.T
    return out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)


def flat_reading(image_dirs):
    """Every limb laid in the image plane at its 2-D image direction: camera-frame unit vectors
    (x right, y up: the image's y flipped, z 0)."""
    image_dirs = np.asarray(image_dirs, np.float64)
    return np.stack([image_dirs[..., 0], -image_dirs[..., 1], np.zeros(image_dirs.shape[:-1])], axis=-1)


def angles(a, b):
    """Angles (degrees) between unit vectors a and b (..., 3)."""
    cross = np.linalg.norm(np.cross(a, b), axis=-1)
    return np.degrees(np.arctan2(cross, np.sum(a * b, axis=-1)))


def out_of_plane(directions):
    """How far (degrees) camera-frame unit directions point out of the image plane."""
    return np.degrees(np.arcsin(np.clip(np.abs(directions[..., 2]), 0.0, 1.0)))


def compare(truth, estimate, valid, signed=True, threshold=OUT_OF_PLANE_DEG) -> dict:
    """3-D limb-direction figures of ``estimate`` against ``truth`` (camera-frame unit
    directions, (frames, limbs, 3)) where ``valid``: mean and p95 angle (degrees), and among
    the limbs whose true direction points more than ``threshold`` degrees out of the image plane
    the share whose towards/away sign differs (None when ``signed`` is False: a reading without
    a depth sign). Also the errors themselves (flat, limb-major order within each frame)."""
    valid = np.asarray(valid, bool)
    errors = angles(truth, estimate)[valid]
    deep = (out_of_plane(truth) > threshold)[valid]
    wrong = None
    if signed and deep.any():
        disagree = (np.sign(truth[..., 2]) != np.sign(estimate[..., 2]))[valid]
        wrong = float(disagree[deep].mean())
    return {
        "mean_deg": float(errors.mean()) if errors.size else float("nan"),
        "p95_deg": float(np.percentile(errors, 95)) if errors.size else float("nan"),
        "max_deg": float(errors.max()) if errors.size else float("nan"),
        "wrong_depth": wrong,
        "limbs": int(errors.size),
        "out_of_plane_limbs": int(deep.sum()),
        "errors": errors,
    }


def image_direction_errors(a, b, valid):
    """Angles (degrees) between two sets of unit 2-D directions where ``valid``."""
    cross = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    return np.degrees(np.abs(np.arctan2(cross, np.sum(a * b, axis=-1))))[valid]
