"""Which keypoints the scene's geometry hides from the camera (pure numpy, no Blender).

A joint sits inside the body: the sight line from the camera to an elbow always meets the arm's
own skin first. So a keypoint counts as hidden only when the first surface on its sight line is
nearer than the keypoint by more than the flesh around that joint (its *radius*): then something
else is in front, another object or another part of the body (the torso before a far arm), as a
detector looking at the image would find.

Radii are fractions of the character's torso length (neck to mid-hip in 3-D, about 0.5 m on an
adult), so they follow the character's size and scale; each is roughly how deep the joint lies
under the skin (hips deep, fingers and face shallow). The first surface is read from a z-buffer of
the rendered scene at the keypoint's pixel (the one whose centre is nearest): that is the ray
through the keypoint itself, up to half a pixel. A minimum over a few pixels would hide points
that merely lie beside an occluder's edge, a maximum would keep points just behind one; the
single pixel is unbiased either way, and is what a ray cast through the point would say.
"""
from __future__ import annotations

import numpy as np

from .depth_raster import is_orthographic
from ..pose.layouts import Layout

# Joint depth under the skin in torso lengths (x 0.5 m: cm below), on the generous side: a limb
# seen nearly end-on meets the sight line far from its joint, and stylised bodies are often
# chunkier than real ones (the demo's forearm is 8 cm thick at the wrist). Too generous would
# keep a far arm behind the torso, which is 15 cm and more in front of it.
_BODY_RADII = {
    "nose": 0.08, "r_eye": 0.06, "l_eye": 0.06, "r_ear": 0.1, "l_ear": 0.1,  # 3-5 cm
    "neck": 0.24,  # between the shoulders, behind the collarbones (12 cm)
    "r_shoulder": 0.2, "l_shoulder": 0.2,  # 10 cm
    "r_elbow": 0.14, "l_elbow": 0.14, "r_wrist": 0.1, "l_wrist": 0.1,  # 7, 5 cm
    "r_hip": 0.28, "l_hip": 0.28,  # the hip joint lies deep in the pelvis (14 cm)
    "r_knee": 0.16, "l_knee": 0.16,  # 8 cm
    # The foot reaches forward from the ankle: seen from the front and above, its instep lies
    # in front of the joint (9 cm).
    "r_ankle": 0.18, "l_ankle": 0.18,
}
# Hand points by their name without the side prefix: wrist, then per finger joints 1..4 from
# the palm out (1 = the knuckle inside the palm, 4 = the tip).
_HAND_RADII = {"hand_wrist": 0.1, 1: 0.06, 2: 0.05, 3: 0.04, 4: 0.04}
FACE_RADIUS = 0.06  # face landmarks and pupils lie on the skin (3 cm)
OTHER_RADIUS = 0.05
# Without a neck and a hip the scale comes from the extent of the points: a standing adult's
# keypoints span about 3.6 torso lengths (1.75 m tall, 0.5 m wide, 0.3 m deep).
EXTENT_PER_TORSO = 3.6


def flesh_fractions(layout: Layout) -> np.ndarray:
    """(points,) each keypoint's radius in torso lengths."""
    out = np.full(len(layout), OTHER_RADIUS)
    for i, name in enumerate(layout.points):
        bare = name[2:] if name.startswith(("l_hand_", "r_hand_")) else name
        if name in _BODY_RADII:
            out[i] = _BODY_RADII[name]
        elif bare == "hand_wrist":
            out[i] = _HAND_RADII["hand_wrist"]
        elif bare.startswith("hand_") and bare[-1:].isdigit():
            out[i] = _HAND_RADII.get(int(bare[-1]), OTHER_RADIUS)
        elif name.startswith("face_") or name.endswith("_pupil"):
            out[i] = FACE_RADIUS
    return out


def body_scale(points, present, layout: Layout) -> np.ndarray:
    """The torso length (..., ) of each skeleton ``points`` (..., P, 3), ``present`` (..., P):
    neck to the middle of the hips (one hip if only one is placed); without those, the extent
    of the present points over EXTENT_PER_TORSO; 0 when nothing is present."""
    points = np.asarray(points, dtype=np.float64)
    present = np.asarray(present, dtype=bool)
    extent_lo = np.where(present[..., None], points, np.inf).min(axis=-2)
    extent_hi = np.where(present[..., None], points, -np.inf).max(axis=-2)
    with np.errstate(invalid="ignore"):
        extent = np.linalg.norm(extent_hi - extent_lo, axis=-1) / EXTENT_PER_TORSO
    scale = np.where(present.any(axis=-1), extent, 0.0)
    neck, hips = layout.find("neck"), [layout.find(h) for h in ("r_hip", "l_hip")]
    hips = [h for h in hips if h is not None]
    if neck is None or not hips:
        return scale
    hip_present = present[..., hips]  # (..., hips)
    count = hip_present.sum(axis=-1)
    hip_sum = np.where(hip_present[..., None], points[..., hips, :], 0.0).sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        torso = np.linalg.norm(points[..., neck, :] - hip_sum / count[..., None], axis=-1)
    usable = present[..., neck] & (count > 0) & (torso > 0)
    return np.where(usable, torso, scale)


def joint_radii(points, present, layout: Layout) -> np.ndarray:
    """(..., P) each keypoint's radius in world units (flesh fraction x its skeleton's torso)."""
    return body_scale(points, present, layout)[..., None] * flesh_fractions(layout)


def occluded(camera_points, xy, zbuffer, radius, orthographic: bool = False) -> np.ndarray:
    """(N,) True where something is in front of the keypoint.

    ``camera_points`` (N, 3) in camera space (the camera looks down -Z); ``xy`` (N, 2) their
    pixels (pose/projection.py: pixel i's centre is x = i); ``zbuffer`` (H, W) the view-axis
    depth (-z) of the nearest surface per pixel, inf where empty; ``radius`` (N,) in world units,
    measured along the sight line (for a perspective camera that line is slanted: its depth
    changes by depth / distance per unit of length). Points off the image or behind the camera
    are False: whether they show is the frame's question, not this one's.
    """
    points = np.asarray(camera_points, dtype=np.float64).reshape(-1, 3)
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    radius = np.broadcast_to(np.asarray(radius, dtype=np.float64), (len(points),))
    height, width = zbuffer.shape
    depth = -points[:, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        column = np.floor(xy[:, 0] + 0.5)
        row = np.floor(xy[:, 1] + 0.5)
        inside = (depth > 0) & (column >= 0) & (column < width) & (row >= 0) & (row < height)
        along = np.ones(len(points)) if orthographic else depth / np.linalg.norm(points, axis=1)
    surface = np.full(len(points), np.inf)
    surface[inside] = zbuffer[row[inside].astype(np.intp), column[inside].astype(np.intp)]
    return inside & (surface < depth - radius * along)


def hidden_keypoints(points, present, keep, xy, world_to_camera, projection, zbuffers,
                     layout: Layout) -> np.ndarray:
    """(F, N, P) True for kept keypoints something hides, in the frames that have a z-buffer.

    ``points`` (F, N, P, 3) world space for F frames and N people; ``present`` (F, N, P) placed
    by the rig map; ``keep`` the subset to test (present and in the frame); ``xy`` (F, N, P, 2)
    their pixels; ``world_to_camera``, ``projection`` (F, 4, 4) per frame; ``zbuffers``
    {frame index: (H, W) nearest-surface depth}.
    """
    points = np.asarray(points, dtype=np.float64)
    keep = np.asarray(keep, dtype=bool)
    hidden = np.zeros(keep.shape, bool)
    # The whole skeleton sets the scale, in frame or not: a radius must not change as the
    # hips leave the picture.
    radii = joint_radii(points, present, layout)
    for frame, zbuffer in zbuffers.items():
        chosen = keep[frame]
        if not chosen.any():
            continue
        world = points[frame][chosen]
        camera = world @ world_to_camera[frame][:3, :3].T + world_to_camera[frame][:3, 3]
        hidden[frame][chosen] = occluded(camera, xy[frame][chosen], zbuffer, radii[frame][chosen],
                                         is_orthographic(projection[frame]))
    return hidden
