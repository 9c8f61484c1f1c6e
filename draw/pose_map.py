"""OpenPose pose maps drawn exactly like ControlNet's DWPose preprocessor (controlnet_aux 0.0.10).

``draw_pose_map`` reproduces ``DWposeDetector``'s ``draw_pose``: body limbs as filled ellipses in
OpenPose's 17-limb order and 18 colours, the whole canvas then dimmed to 60 %, joint dots, then
every person's left hand, every person's right hand (DWPose stacks them that way), then faces.
The quirks are kept on purpose, because the ControlNet models learnt them:

* limb ellipses use int() of the centre, int(length / 2) for the long axis and int() of the angle;
* hand and face points are drawn only when their int() pixel coordinates are both >= 1 (DWPose's
  ``> eps`` test on integers), so points on the top or left border row/column vanish;
* body joints and limbs have no such test (a present joint at x < 1 is still drawn);
* hand bone colours are HSV hues converted to bytes the way OpenCV does (rounded, not truncated);
* DWPose hands the drawers coordinates divided by the canvas size in float32 and the drawers
  multiply back (limbs in float32, points in float64); doing the same keeps every int()
  truncation identical, even for integral coordinates.

OPENPOSE_FULL's face has 70 points: iBUG-68 plus two pupils. DWPose draws only the 68 landmarks,
so the pupils are kept in the data (and JSON) but not drawn.

Absent points (confidence <= ``min_confidence``, or non-finite coordinates) are never drawn, and
neither is anything that needs them. The drawing itself is :mod:`.raster`, OpenCV-exact numpy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from . import raster
from .paint import paint, paint_indexed
from ..pose.keypoints import KeypointSequence
from ..pose.layouts import COCO18, HAND21, OPENPOSE_FULL

# OpenPose's limb colours, RGB as they land in the output image; limb i and joint i share colour i.
COLORS = np.array(
    [
        [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0],
        [0, 255, 0], [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255],
        [0, 0, 255], [85, 0, 255], [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85],
    ],
    np.uint8,
)
# Limbs end up at 60 %: ControlNet multiplies the canvas by 0.6 and truncates to uint8 after them.
LIMB_COLORS = (COLORS * 0.6).astype(np.uint8)
HAND_POINT_COLOR = np.array([0, 0, 255], np.uint8)
FACE_POINT_COLOR = np.array([255, 255, 255], np.uint8)

_BODY = OPENPOSE_FULL.part("body")
_LEFT = OPENPOSE_FULL.part("hand_left")
_RIGHT = OPENPOSE_FULL.part("hand_right")
_FACE = OPENPOSE_FULL.part("face")
LIMBS = np.array(COCO18.edges[:17]) + _BODY.start  # the last two (ear-shoulder) are never drawn
HAND_EDGES = np.array(HAND21.edges)
FACE_DRAWN = 68  # iBUG-68; the two pupils are not drawn

# Coordinates are clamped to +-32768 px so the 16.16 fixed-point maths stays inside int64; only
# absurd inputs (a point tens of thousands of pixels off the canvas) are affected.
_COORD_LIMIT = 32768.0


def _hand_edge_colors(count: int) -> np.ndarray:
    """HSV hue ramp at full saturation and value, as matplotlib's hsv_to_rgb computes it in float64,
    scaled to 255 and rounded half-to-even like OpenCV's conversion of a float colour to bytes."""
    out = np.zeros((count, 3))
    for ie in range(count):
        h6 = ie / float(count) * 6.0
        sector = int(h6)
        f = h6 - sector
        q = 1.0 - f
        t = 1.0 - (1.0 - f)
        out[ie] = [(1.0, t, 0.0), (q, 1.0, 0.0), (0.0, 1.0, t),
                   (0.0, q, 1.0), (t, 0.0, 1.0), (1.0, 0.0, q)][sector % 6]
    return np.rint(out * 255).astype(np.uint8)


HAND_EDGE_COLORS = _hand_edge_colors(len(HAND_EDGES))

SCALINGS = ("controlnet", "xinsir", "proportional")


@dataclass(frozen=True)
class PoseStyle:
    """Sizes and toggles of a pose map. The defaults are exactly ControlNet's (DWPose) maps.

    ``scaling`` picks how sizes follow the canvas: ``"controlnet"`` keeps them fixed (what the SD1.5
    openpose models and most SDXL ones were trained on); ``"xinsir"`` widens only the limb
    ellipses, 1x below 500 px on the longest side, else min(2 + longest // 1000, 7)x: the
    convention of comfyui_controlnet_aux's ``xinsr_stick_scaling`` option, made for xinsir's
    SDXL openpose ControlNet; ``"proportional"`` scales every size by longest side /
    ``reference_size`` (never below 1x), rounded.
    """

    stick_width: int = 4  # limb ellipse half-width (its short axis)
    joint_radius: int = 4
    hand_line_thickness: int = 2
    hand_point_radius: int = 4
    face_point_radius: int = 3
    draw_body: bool = True
    draw_hands: bool = True
    draw_face: bool = True
    min_confidence: float = 0.0  # a point is present when its confidence is above this
    scaling: str = "controlnet"
    reference_size: int = 512

    def __post_init__(self) -> None:
        if self.scaling not in SCALINGS:
            raise ValueError(f"unknown scaling {self.scaling!r} (known: {', '.join(SCALINGS)})")

    def sized_for(self, width: int, height: int) -> "PoseStyle":
        """The same style with the sizes it draws at on a width x height canvas."""
        longest = max(int(width), int(height))
        if self.scaling == "xinsir":
            factor = 1 if longest < 500 else min(2 + longest // 1000, 7)
            return replace(self, scaling="controlnet", stick_width=self.stick_width * factor)
        if self.scaling == "proportional":
            k = max(1.0, longest / float(self.reference_size))
            size = lambda v: max(1, int(round(v * k)))
            return replace(
                self,
                scaling="controlnet",
                stick_width=size(self.stick_width),
                joint_radius=size(self.joint_radius),
                hand_line_thickness=size(self.hand_line_thickness),
                hand_point_radius=size(self.hand_point_radius),
                face_point_radius=size(self.face_point_radius),
            )
        return self


class _Layers:
    """Shapes in drawing order: each gets the next key, its colour goes to the palette."""

    def __init__(self) -> None:
        self.pixels: list[tuple[np.ndarray, np.ndarray]] = []
        self.colors: list[np.ndarray] = [np.zeros((1, 3), np.uint8)]  # key 0 = untouched
        self.next_key = 1

    def add(self, owner_flat, colors: np.ndarray) -> None:
        """``colors`` has one row per shape of the batch (drawn in that order)."""
        owner, flat = owner_flat
        self.pixels.append((flat, owner + self.next_key))
        self.colors.append(colors)
        self.next_key += len(colors)


def _pixel_coords(points: np.ndarray, width: int, height: int, min_confidence: float):
    """Coordinates exactly as DWPose's drawers see them, and which points are present.

    DWposeDetector divides pixel coordinates by W and H in float32. Limbs multiply back as float32
    arrays; joints, hands and faces multiply float32 scalars by a Python int, which NumPy 1 (that
    of ControlNet's maps and of Blender) does in float64. Redoing both, independently of the
    running NumPy, keeps every int() truncation identical, integral coordinates included.
    Returns the float32 limb coordinates and the int (truncated) point coordinates.
    """
    x = points[..., 0].astype(np.float32)
    y = points[..., 1].astype(np.float32)
    present = (points[..., 2] > min_confidence) & np.isfinite(x) & np.isfinite(y)
    x = np.where(present, x, 0)
    y = np.where(present, y, 0)
    w, h = np.float32(width), np.float32(height)
    with np.errstate(invalid="ignore", over="ignore"):
        xn, yn = x / w, y / h
        limb_x = np.clip(xn * w, -_COORD_LIMIT, _COORD_LIMIT)
        limb_y = np.clip(yn * h, -_COORD_LIMIT, _COORD_LIMIT)
        # astype truncates toward zero like int()
        ix = np.clip(xn.astype(np.float64) * width, -_COORD_LIMIT, _COORD_LIMIT).astype(np.int64)
        iy = np.clip(yn.astype(np.float64) * height, -_COORD_LIMIT, _COORD_LIMIT).astype(np.int64)
    return limb_x, limb_y, ix, iy, present


def _body(layers: _Layers, x, y, ix, iy, present, style: PoseStyle, width: int, height: int):
    people = x.shape[0]
    a, b = LIMBS[:, 0], LIMBS[:, 1]
    # Limb-major, person-minor: ControlNet loops limbs outside, people inside.
    xa, xb = x[:, a].T.ravel(), x[:, b].T.ravel()
    ya, yb = y[:, a].T.ravel(), y[:, b].T.ravel()
    ok = (present[:, a] & present[:, b]).T.ravel()
    sel = np.flatnonzero(ok)
    xa, ya, xb, yb = xa[sel], ya[sel], xb[sel], yb[sel]
    cx = ((xa + xb) / np.float32(2)).astype(np.int64)  # np.mean of two float32, then int()
    cy = ((ya + yb) / np.float32(2)).astype(np.int64)
    dx = (xa - xb).astype(np.float64)
    dy = (ya - yb).astype(np.float64)
    half_length = (np.sqrt(dx * dx + dy * dy) / 2).astype(np.int64)
    # math.atan2/math.degrees per limb (a few dozen) so the angle's int() matches Python's maths.
    angle = np.array(
        [int(math.degrees(math.atan2(v, u))) for u, v in zip(dx.tolist(), dy.tolist())], np.int64
    )
    owner, flat = raster.ellipses(
        cx, cy, half_length, np.full(sel.size, style.stick_width), angle, width, height
    )
    layers.add((sel[owner], flat), np.repeat(LIMB_COLORS, people, axis=0))

    joints = slice(_BODY.start, _BODY.stop)
    jx, jy = ix[:, joints].T.ravel(), iy[:, joints].T.ravel()
    sel = np.flatnonzero(present[:, joints].T.ravel())
    owner, flat = raster.circles(jx[sel], jy[sel], style.joint_radius, width, height)
    layers.add((sel[owner], flat), np.repeat(COLORS, people, axis=0))


def _hands(layers: _Layers, ix, iy, present, style: PoseStyle, width: int, height: int):
    # All left hands, then all right hands; each hand's bones then its points.
    parts = [slice(p.start, p.stop) for p in (_LEFT, _RIGHT)]
    hx = np.concatenate([ix[:, s] for s in parts])
    hy = np.concatenate([iy[:, s] for s in parts])
    # DWPose's "> eps" test on int coordinates: a point at int x or y < 1 is not drawn.
    shown = np.concatenate([present[:, s] for s in parts]) & (hx >= 1) & (hy >= 1)
    hands = hx.shape[0]
    per_hand = len(HAND_EDGES) + hx.shape[1]

    a, b = HAND_EDGES[:, 0], HAND_EDGES[:, 1]
    sel = np.flatnonzero((shown[:, a] & shown[:, b]).ravel())
    owner, flat = raster.thick_lines(
        hx[:, a].ravel()[sel], hy[:, a].ravel()[sel], hx[:, b].ravel()[sel], hy[:, b].ravel()[sel],
        style.hand_line_thickness, width, height,
    )
    line = sel[owner]  # hand * 20 + edge
    line_key = (line // len(HAND_EDGES)) * per_hand + line % len(HAND_EDGES)

    sel = np.flatnonzero(shown.ravel())
    owner, flat_p = raster.circles(hx.ravel()[sel], hy.ravel()[sel], style.hand_point_radius, width, height)
    point = sel[owner]  # hand * 21 + point
    point_key = (point // hx.shape[1]) * per_hand + len(HAND_EDGES) + point % hx.shape[1]

    one_hand = np.concatenate([HAND_EDGE_COLORS, np.repeat(HAND_POINT_COLOR[None], hx.shape[1], 0)])
    layers.add(
        (np.concatenate([line_key, point_key]), np.concatenate([flat, flat_p])),
        np.tile(one_hand, (hands, 1)),
    )


def _faces(layers: _Layers, ix, iy, present, style: PoseStyle, width: int, height: int):
    face = slice(_FACE.start, _FACE.start + FACE_DRAWN)
    fx, fy = ix[:, face].ravel(), iy[:, face].ravel()
    sel = np.flatnonzero((present[:, face].ravel()) & (fx >= 1) & (fy >= 1))
    owner, flat = raster.circles(fx[sel], fy[sel], style.face_point_radius, width, height)
    layers.add((sel[owner], flat), np.repeat(FACE_POINT_COLOR[None], fx.size, 0))


def draw_pose_map(
    people_points, width: int, height: int, style: PoseStyle = PoseStyle(), out: np.ndarray | None = None
) -> np.ndarray:
    """Draw one OpenPose map: (H, W, 3) uint8 RGB.

    ``people_points`` is (people, len(OPENPOSE_FULL), 3) [x, y, confidence] in pixels (origin top
    left), or one person's (len(OPENPOSE_FULL), 3). ``out``, a C-contiguous (H, W, 3) uint8 array,
    is overwritten and returned instead of a new image (saves the page faults of a fresh image
    per frame in batch jobs).
    """
    width, height = int(width), int(height)
    layers = _pose_layers(people_points, width, height, style)
    return paint(width, height, layers.pixels, np.concatenate(layers.colors), out)


def draw_pose_map_indexed(
    people_points, width: int, height: int, style: PoseStyle = PoseStyle()
) -> tuple[np.ndarray, np.ndarray]:
    """The same map as ``draw_pose_map``, as (indices (H, W) uint8, colours (n, 3) uint8):
    ``colours[indices]`` is exactly draw_pose_map's image. For a palette PNG (a third of the
    bytes to compress); a map's colours are OpenPose's few dozen, far under 256."""
    width, height = int(width), int(height)
    layers = _pose_layers(people_points, width, height, style)
    return paint_indexed(width, height, layers.pixels, np.concatenate(layers.colors))


def _pose_layers(people_points, width: int, height: int, style: PoseStyle) -> _Layers:
    """Every shape of the map in drawing order, checked inputs."""
    if width <= 0 or height <= 0:
        raise ValueError(f"canvas must be positive, got {width}x{height}")
    points = np.asarray(people_points, np.float32)
    if points.ndim == 2:
        points = points[None]
    if points.ndim != 3 or points.shape[1:] != (len(OPENPOSE_FULL), 3):
        raise ValueError(
            f"people_points must be (people, {len(OPENPOSE_FULL)}, 3) in the {OPENPOSE_FULL.name} "
            f"layout, got {points.shape}"
        )
    style = style.sized_for(width, height)
    layers = _Layers()
    if points.shape[0]:
        x, y, ix, iy, present = _pixel_coords(points, width, height, style.min_confidence)
        if style.draw_body:
            _body(layers, x, y, ix, iy, present, style, width, height)
        if style.draw_hands:
            _hands(layers, ix, iy, present, style, width, height)
        if style.draw_face:
            _faces(layers, ix, iy, present, style, width, height)
    return layers


def draw_sequence_frame(
    seq: KeypointSequence, index: int, style: PoseStyle = PoseStyle(), out: np.ndarray | None = None
) -> np.ndarray:
    """The pose map of frame ``index`` of ``seq`` (converted to OPENPOSE_FULL by point name when
    it has another layout; points it lacks are absent)."""
    frame = seq.frame(index)
    if frame.layout.points != OPENPOSE_FULL.points:
        frame = frame.to_layout(OPENPOSE_FULL)
    width, height = seq.canvas
    return draw_pose_map(frame.data[0], width, height, style, out)
