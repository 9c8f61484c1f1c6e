"""The numpy pose-map drawer against controlnet_aux 0.0.10's own DWPose drawing code.

controlnet_aux is a test-only reference (see tests/requirements-compat.txt): only its
``dwpose/util.py`` is loaded, by file path, so its package ``__init__`` (which imports torch) never
runs. Its draw_bodypose/draw_handpose/draw_facepose get the ``candidate``/``subset``/hands/faces
arrays built the way DWposeDetector builds them, and the maps must agree: at most 1 % of the drawn
pixels may differ, a safety margin only (measured: 0 differing pixels with NumPy 1.26, Blender's;
a handful in 150 random maps when controlnet_aux runs under NumPy 2, see the integral test).
"""
from __future__ import annotations

import numpy as np
import pytest

from posebridge.draw import raster
from posebridge.draw.pose_map import HAND_EDGE_COLORS, PoseStyle, draw_pose_map, draw_sequence_frame
from posebridge.pose.keypoints import KeypointSequence
from posebridge.pose.layouts import OPENPOSE_BODY, OPENPOSE_FULL

from controlnet_reference import assert_matches, load_dwpose_util, mismatch, reference_map  # noqa: F401

_N = len(OPENPOSE_FULL)
SIZES = [(512, 512), (768, 512), (512, 896), (333, 211)]


@pytest.fixture(scope="module")
def cv2():
    return pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def dwpose_util(cv2):
    return load_dwpose_util()


# --- synthetic people --------------------------------------------------------------------------

def _set(points, name, xy):
    points[OPENPOSE_FULL.index(name)] = (xy[0], xy[1], 1.0)


def _hand(points, side, wrist, direction, size, rng):
    """21 hand points fanning out from the wrist along ``direction`` (a unit vector)."""
    part = OPENPOSE_FULL.part("hand_left" if side == "l" else "hand_right")
    points[part.start] = (*wrist, 1.0)
    base_angle = np.arctan2(direction[1], direction[0])
    mirror = 1.0 if side == "l" else -1.0
    for f, finger in enumerate(("thumb", "index", "middle", "ring", "pinky")):
        angle = base_angle + np.deg2rad((-45 + 22 * f) * mirror + rng.normal(0, 4))
        bend = np.deg2rad(rng.uniform(0, 25)) * mirror
        pos = np.asarray(wrist, float)
        for n in range(1, 5):
            step = size * ((0.35 if finger == "thumb" else 0.45) if n == 1 else 0.15)
            pos = pos + step * np.array([np.cos(angle), np.sin(angle)])
            angle += bend
            _set(points, f"{side}_hand_{finger}_{n}", pos)


def _face(points, center, width):
    """iBUG-68 landmarks (plus pupils) laid out roughly like a frontal face."""
    cx, cy = center
    out = [(cx - 0.5 * width * np.cos(t), cy - 0.15 * width + 0.55 * width * np.sin(t))
           for t in np.linspace(np.pi, 0, 17)]  # jaw, ear to ear under the chin
    for side in (-1, 1):  # eyebrows
        for t in np.linspace(0, 1, 5):
            u = t if side > 0 else 1 - t
            out.append((cx + side * width * (0.08 + 0.28 * u), cy - 0.3 * width - 0.05 * width * np.sin(np.pi * u)))
    out += [(cx, cy - 0.2 * width + 0.08 * width * t) for t in range(4)]  # nose bridge
    out += [(cx + 0.1 * width * t, cy + 0.1 * width) for t in np.linspace(-1, 1, 5)]  # nostrils
    eyes = []
    for side in (-1, 1):  # eyes, six points each
        ex, ey = cx + side * 0.2 * width, cy - 0.15 * width
        eyes.append((ex, ey))
        out += [(ex - 0.08 * width * np.cos(t), ey - 0.035 * width * np.sin(t))
                for t in np.linspace(0, 2 * np.pi, 6, endpoint=False)]
    out += [(cx - 0.2 * width * np.cos(t), cy + 0.28 * width - 0.07 * width * np.sin(t))
            for t in np.linspace(0, 2 * np.pi, 12, endpoint=False)]  # outer lips
    out += [(cx - 0.14 * width * np.cos(t), cy + 0.28 * width - 0.03 * width * np.sin(t))
            for t in np.linspace(0, 2 * np.pi, 8, endpoint=False)]  # inner lips
    out += eyes[::-1]  # pupils: right then left
    part = OPENPOSE_FULL.part("face")
    points[part.start:part.stop, :2] = np.asarray(out)
    points[part.start:part.stop, 2] = 1.0


def plausible_person(rng, width, height, jitter=1.0):
    """A standing or walking person facing the camera, with hands and face, in pixels."""
    h = rng.uniform(0.55, 0.95) * height
    cx = rng.uniform(0.2, 0.8) * width
    top = rng.uniform(-0.05, 0.2) * height
    p = np.zeros((_N, 3), np.float32)
    at = lambda x, y: (cx + x * h, top + y * h)
    swing = rng.uniform(-25, 25)
    for name, xy in (("nose", (0, 0.06)), ("neck", (0, 0.14)), ("r_eye", (-0.02, 0.045)),
                     ("l_eye", (0.02, 0.045)), ("r_ear", (-0.045, 0.055)), ("l_ear", (0.045, 0.055))):
        _set(p, name, at(*xy))
    for side, sx, arm_swing in (("r", -1, swing), ("l", 1, -swing)):
        unit = lambda a: np.array([np.cos(a), np.sin(a)])
        shoulder = np.array(at(sx * 0.11, 0.15))
        a1 = np.deg2rad(90 - sx * 12 + arm_swing)
        elbow = shoulder + 0.16 * h * unit(a1)
        a2 = a1 - sx * np.deg2rad(rng.uniform(0, 50))
        wrist = elbow + 0.15 * h * unit(a2)
        hip = np.array(at(sx * 0.06, 0.5))
        a3 = np.deg2rad(90 + 0.8 * arm_swing)
        knee = hip + 0.24 * h * unit(a3)
        ankle = knee + 0.23 * h * unit(a3 + np.deg2rad(rng.uniform(-5, 20)))
        for name, xy in (("shoulder", shoulder), ("elbow", elbow), ("wrist", wrist),
                         ("hip", hip), ("knee", knee), ("ankle", ankle)):
            _set(p, f"{side}_{name}", xy)
        _hand(p, side, wrist, unit(a2), 0.09 * h, rng)
    _face(p, at(0, 0.05), 0.12 * h)
    p[:, :2] += rng.normal(0, jitter, (_N, 2))
    return p


def random_people(rng, width, height, people, absent=0.2, margin=0.1, edge_points=8):
    """Uniformly random points: some absent, some within a pixel or two of a border."""
    p = np.zeros((people, _N, 3), np.float32)
    p[..., 0] = rng.uniform(-margin * width, (1 + margin) * width, (people, _N))
    p[..., 1] = rng.uniform(-margin * height, (1 + margin) * height, (people, _N))
    p[..., 2] = rng.uniform(0.05, 1.0, (people, _N))
    for n in range(people):
        idx = rng.choice(_N, edge_points, replace=False)
        border = rng.integers(0, 4, edge_points)
        off = rng.uniform(-1.5, 2.5, edge_points)
        p[n, idx, 0] = np.where(border == 0, off, np.where(border == 1, width - 1 + off, p[n, idx, 0]))
        p[n, idx, 1] = np.where(border == 2, off, np.where(border == 3, height - 1 + off, p[n, idx, 1]))
    p[rng.uniform(size=(people, _N)) < absent] = 0.0
    return p


# --- against controlnet_aux ----------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("seed", range(6))
def test_random_poses_match(dwpose_util, seed, size):
    rng = np.random.default_rng(seed)
    width, height = size
    people = random_people(rng, width, height, people=int(rng.integers(1, 4)))
    assert_matches(dwpose_util, people, width, height)


@pytest.mark.parametrize("size", SIZES + [(1024, 1024)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("seed", range(6))
def test_plausible_people_match(dwpose_util, seed, size):
    rng = np.random.default_rng(100 + seed)
    width, height = size
    people = np.stack([plausible_person(rng, width, height) for _ in range(int(rng.integers(1, 4)))])
    # Occlusions: a hand or part of the face missing, stale coordinates left behind.
    for person in people:
        if rng.uniform() < 0.5:
            part = OPENPOSE_FULL.part(str(rng.choice(["hand_left", "hand_right"])))
            person[part.start:part.stop, 2] = 0.0
        face = OPENPOSE_FULL.part("face")
        person[face.start:face.stop, 2] *= rng.uniform(size=face.size) > 0.2
    assert_matches(dwpose_util, people, width, height)


@pytest.mark.parametrize("quantum", [1.0, 0.5, 0.25])
def test_integral_and_half_pixel_coordinates_match(dwpose_util, quantum):
    # Integral coordinates put int() truncation right at its edge: the float32 normalisation
    # round trip DWPose does must be reproduced exactly.
    if int(np.__version__.split(".")[0]) >= 2:
        pytest.skip(
            "under NumPy 2 controlnet_aux's own scalar maths changes (NEP 50: float32 scalar * int "
            "stays float32), which moves its int() at integral coordinates; the drawer reproduces "
            "the NumPy 1 behaviour of ControlNet's maps and of Blender's bundled numpy"
        )
    rng = np.random.default_rng(7)
    for width, height in SIZES:
        people = random_people(rng, width, height, people=2)
        people[..., :2] = np.round(people[..., :2] / quantum) * quantum
        assert_matches(dwpose_util, people, width, height)


def test_confidence_threshold_matches(dwpose_util):
    rng = np.random.default_rng(3)
    people = random_people(rng, 512, 512, people=2, absent=0.0)
    assert_matches(dwpose_util, people, 512, 512, PoseStyle(min_confidence=0.3))


def test_border_points_follow_controlnet_quirks(dwpose_util):
    # Hand and face points whose int() coordinates are 0 are dropped; body joints are not.
    rng = np.random.default_rng(11)
    person = plausible_person(rng, 512, 512)
    for name in ("l_hand_wrist", "l_hand_index_4", "face_30", "face_8"):
        person[OPENPOSE_FULL.index(name), 0] = 0.7
    person[OPENPOSE_FULL.index("r_wrist"), :2] = (0.2, 0.9)
    diff, _ = assert_matches(dwpose_util, person, 512, 512)
    assert diff == 0


# --- OpenCV primitives ---------------------------------------------------------------------------

def _mask(owner_flat, width, height):
    image = np.zeros(width * height, np.uint8)
    image[owner_flat[1]] = 1
    return image.reshape(height, width)


def test_ellipse_polygons_equal_ellipse2poly(cv2):
    rng = np.random.default_rng(0)
    for _ in range(500):
        center = tuple(int(v) for v in rng.integers(-100, 700, 2))
        axes = (int(rng.integers(0, 400)), int(rng.integers(0, 20)))
        angle = int(rng.integers(-400, 400))
        vx, vy = raster.ellipse_polygons([center[0]], [center[1]], [axes[0]], [axes[1]], [angle])
        ours = np.stack([vx[0], vy[0]], axis=1)
        ours = ours[np.r_[True, (ours[1:] != ours[:-1]).any(axis=1)]]  # OpenCV drops repeats
        if len(ours) == 1:
            ours = np.repeat(ours, 2, axis=0)
        np.testing.assert_array_equal(ours, cv2.ellipse2Poly(center, axes, angle, 0, 360, 1))


def test_filled_ellipses_equal_opencv(cv2):
    rng = np.random.default_rng(1)
    width, height = 150, 110
    for _ in range(400):
        center = tuple(int(v) for v in rng.integers(-30, 180, 2))
        axes = (int(rng.integers(0, 120)), int(rng.integers(1, 16)))
        angle = int(rng.integers(-360, 360))
        theirs = np.zeros((height, width), np.uint8)
        cv2.fillConvexPoly(theirs, cv2.ellipse2Poly(center, axes, angle, 0, 360, 1), 1)
        ours = _mask(raster.ellipses([center[0]], [center[1]], [axes[0]], [axes[1]], [angle], width, height), width, height)
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("thickness", [1, 2, 3, 6])
def test_lines_equal_opencv(cv2, thickness):
    rng = np.random.default_rng(thickness)
    width, height = 97, 131
    for i in range(400):
        x1, y1, x2, y2 = (int(v) for v in rng.integers(-60, 190, 4))
        if i % 3 == 0:  # short lines, where rounding dominates
            x2, y2 = x1 + int(rng.integers(-3, 4)), y1 + int(rng.integers(-3, 4))
        theirs = np.zeros((height, width), np.uint8)
        cv2.line(theirs, (x1, y1), (x2, y2), 1, thickness)
        ours = _mask(raster.thick_lines([x1], [y1], [x2], [y2], thickness, width, height), width, height)
        np.testing.assert_array_equal(ours, theirs, err_msg=f"{(x1, y1, x2, y2)}")


def test_circles_equal_opencv(cv2):
    rng = np.random.default_rng(5)
    width, height = 64, 48
    for _ in range(400):
        center = tuple(int(v) for v in rng.integers(-12, 76, 2))
        radius = int(rng.integers(0, 15))
        theirs = np.zeros((height, width), np.uint8)
        cv2.circle(theirs, center, radius, 1, -1)
        np.testing.assert_array_equal(
            _mask(raster.circles([center[0]], [center[1]], radius, width, height), width, height), theirs
        )


def test_hand_colours_are_opencvs_conversion_of_matplotlib_hsv(cv2):
    matplotlib_colors = pytest.importorskip("matplotlib.colors")

    for ie, ours in enumerate(HAND_EDGE_COLORS):
        pixel = np.zeros((1, 1, 3), np.uint8)
        cv2.line(pixel, (0, 0), (0, 0), matplotlib_colors.hsv_to_rgb([ie / 20.0, 1.0, 1.0]) * 255, 1)
        np.testing.assert_array_equal(pixel[0, 0], ours, err_msg=f"edge {ie}")


# --- behaviour ---------------------------------------------------------------------------------

def _one_limb(length=120.0, x=100.0, y=200.0):
    person = np.zeros((_N, 3), np.float32)
    person[OPENPOSE_FULL.index("r_hip")] = (x, y, 1)
    person[OPENPOSE_FULL.index("r_knee")] = (x + length, y, 1)
    return person


def _limb_rows(image, x):
    """Rows the (horizontal) limb covers at column x."""
    return int(image[:, x].any(axis=-1).sum())


def test_default_style_is_controlnet_at_every_size():
    person = _one_limb()
    for side in (256, 1024, 2048):
        image = draw_pose_map(person, side, side)
        assert _limb_rows(image, 160) == 2 * 4 + 1  # stick width 4 each side of the axis


def test_wider_sticks_scale_with_canvas():
    person = _one_limb()
    assert PoseStyle(scaling="xinsir").sized_for(480, 480).stick_width == 4
    assert PoseStyle(scaling="xinsir").sized_for(768, 512).stick_width == 8
    assert PoseStyle(scaling="xinsir").sized_for(1024, 1024).stick_width == 12
    assert PoseStyle(scaling="xinsir").sized_for(9000, 100).stick_width == 28
    wide = draw_pose_map(person, 1024, 1024, PoseStyle(scaling="xinsir"))
    assert _limb_rows(wide, 160) == 2 * 12 + 1
    proportional = PoseStyle(scaling="proportional").sized_for(1024, 1024)
    assert (proportional.stick_width, proportional.joint_radius, proportional.face_point_radius) == (8, 8, 6)
    assert _limb_rows(draw_pose_map(person, 1024, 1024, PoseStyle(scaling="proportional")), 160) == 17
    assert PoseStyle(scaling="proportional").sized_for(512, 300) == PoseStyle()  # never shrinks
    with pytest.raises(ValueError):
        PoseStyle(scaling="huge")


def test_absent_points_are_never_drawn():
    rng = np.random.default_rng(2)
    person = plausible_person(rng, 512, 512)
    person[:, 0] += 100  # keep everything present well away from the origin
    person[:, 1] += 60
    gone = rng.uniform(size=_N) < 0.5
    person[gone, 2] = 0.0
    person[gone, :2] = 0.0  # absent points sit at the origin, as KeypointSequence keeps them
    image = draw_pose_map(person, 512, 512)
    assert not image[:40, :40].any()
    # Stale coordinates of absent points draw nothing either.
    stale = person.copy()
    stale[gone, :2] = (5.0, 5.0)
    np.testing.assert_array_equal(draw_pose_map(stale, 512, 512), image)
    # Nobody present: a black map.
    assert not draw_pose_map(np.zeros((3, _N, 3), np.float32), 64, 48).any()
    assert draw_pose_map(np.zeros((0, _N, 3), np.float32), 64, 48).shape == (48, 64, 3)


def test_non_finite_points_count_as_absent():
    person = _one_limb()
    person[OPENPOSE_FULL.index("r_knee"), 0] = np.nan
    person[OPENPOSE_FULL.index("l_hand_wrist")] = (np.inf, 10, 1)
    image = draw_pose_map(person, 320, 240)
    only_hip = np.zeros_like(person)
    only_hip[OPENPOSE_FULL.index("r_hip")] = person[OPENPOSE_FULL.index("r_hip")]
    np.testing.assert_array_equal(image, draw_pose_map(only_hip, 320, 240))


def test_parts_can_be_switched_off_and_pupils_are_not_drawn():
    rng = np.random.default_rng(4)
    person = plausible_person(rng, 512, 512)
    body_only = draw_pose_map(person, 512, 512, PoseStyle(draw_hands=False, draw_face=False))
    no_hands = np.zeros_like(person)
    body = OPENPOSE_FULL.part("body")
    no_hands[body.start:body.stop] = person[body.start:body.stop]
    np.testing.assert_array_equal(body_only, draw_pose_map(no_hands, 512, 512))
    assert not draw_pose_map(person, 512, 512, PoseStyle(draw_body=False, draw_hands=False, draw_face=False)).any()
    moved = person.copy()
    for pupil in ("r_pupil", "l_pupil"):
        moved[OPENPOSE_FULL.index(pupil), :2] = (400, 400)
    np.testing.assert_array_equal(draw_pose_map(moved, 512, 512), draw_pose_map(person, 512, 512))


def test_out_buffer_is_reused():
    rng = np.random.default_rng(6)
    buffer = np.full((300, 200, 3), 77, np.uint8)
    first = draw_pose_map(plausible_person(rng, 200, 300), 200, 300, out=buffer)
    assert first is buffer
    second_person = plausible_person(rng, 200, 300)
    np.testing.assert_array_equal(draw_pose_map(second_person, 200, 300, out=buffer), draw_pose_map(second_person, 200, 300))
    with pytest.raises(ValueError):
        draw_pose_map(second_person, 200, 300, out=np.zeros((300, 200, 4), np.uint8))


def test_draw_sequence_frame_converts_layouts():
    rng = np.random.default_rng(8)
    full = np.stack([plausible_person(rng, 640, 480) for _ in range(2)])[None]
    seq = KeypointSequence(OPENPOSE_FULL, np.concatenate([full, full * 0]), (640, 480), [10, 11])
    np.testing.assert_array_equal(draw_sequence_frame(seq, 0), draw_pose_map(full[0], 640, 480))
    assert not draw_sequence_frame(seq, 1).any()
    body_seq = seq.to_layout(OPENPOSE_BODY)
    np.testing.assert_array_equal(
        draw_sequence_frame(body_seq, 0),
        draw_pose_map(full[0], 640, 480, PoseStyle(draw_hands=False, draw_face=False)),
    )


def test_rejects_wrong_layout():
    with pytest.raises(ValueError):
        draw_pose_map(np.zeros((1, 18, 3)), 64, 64)
    with pytest.raises(ValueError):
        draw_pose_map(np.zeros((1, _N, 3)), 0, 64)
