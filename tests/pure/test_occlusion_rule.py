"""Occlusion of keypoints (draw/occlusion.py): the depth-with-tolerance rule, the joint radii and
their scale, and the whole test against a rasterised wall, without Blender."""
import numpy as np
import pytest

from posebridge.draw import occlusion
from posebridge.draw.depth_raster import rasterize_depth
from posebridge.pose.layouts import COCO18, OPENPOSE_FULL
from posebridge.pose.projection import project_points
from camera_matrices import orthographic, perspective  # noqa: E402  (tests/pure helper)


def buffer(depths, width=4, height=3):
    """A z-buffer whose column i holds depths[i] (inf: empty)."""
    return np.tile(np.asarray(depths, np.float32), (height, 1))[:, :width]


def test_hidden_only_when_the_surface_is_nearer_by_more_than_the_radius():
    zbuffer = buffer([2.0, 2.0, np.inf, 2.95])
    points = np.array([[0, 0, -3.0], [0, 0, -3.0], [0, 0, -3.0], [0, 0, -3.0]])
    xy = np.array([[0, 1], [1, 1], [2, 1], [3, 1]], float)
    # Column 0: 1 m in front, radius 0.5 -> hidden; column 1: radius 1.5 covers it; column 2:
    # nothing there; column 3: the keypoint's own skin, 5 cm in front.
    hidden = occlusion.occluded(points, xy, zbuffer, [0.5, 1.5, 0.5, 0.1], orthographic=True)
    assert hidden.tolist() == [True, False, False, False]


def test_the_nearest_pixel_centre_decides():
    zbuffer = buffer([1.0, np.inf, np.inf, np.inf])
    points = np.tile([[0, 0, -3.0]], (4, 1))
    # Pixel 0 spans x -0.5 .. 0.5 (centre 0): 0.49 is in it, 0.5 is in pixel 1.
    xy = np.array([[0.49, 0], [0.5, 0], [-0.5, 2.49], [-0.51, 0]])
    hidden = occlusion.occluded(points, xy, zbuffer, 0.1, orthographic=True)
    assert hidden.tolist() == [True, False, True, False]  # the last is off the image: not ours to say


def test_points_behind_the_camera_or_off_the_image_are_not_judged():
    zbuffer = buffer([0.5] * 4)
    points = np.array([[0, 0, 3.0], [0, 0, -3.0], [0, 0, -3.0], [0, 0, -3.0]])
    xy = np.array([[1, 1], [4, 1], [1, 3], [np.nan, 1]])
    assert not occlusion.occluded(points, xy, zbuffer, 0.1).any()


def test_radius_is_measured_along_the_slanted_sight_line():
    # A point 45 degrees off the axis: 1 m deep, sqrt(2) m away. Its flesh of 0.6 m along the
    # sight line spans 0.42 m of depth, so a surface 0.5 m deep is in front of it; seen by an
    # orthographic camera (sight lines along the axis) the same radius reaches 0.4 m: not hidden.
    zbuffer = buffer([0.5] * 4)
    point, xy = np.array([[1.0, 0, -1.0]]), np.array([[1.0, 1.0]])
    assert occlusion.occluded(point, xy, zbuffer, 0.6, orthographic=False).tolist() == [True]
    assert occlusion.occluded(point, xy, zbuffer, 0.6, orthographic=True).tolist() == [False]


def skeleton(scale=1.0):
    """COCO-18 points of a 0.5 m torso standing at the origin (y up is z here, facing -y)."""
    p = np.zeros((len(COCO18), 3))
    at = {"neck": (0, 0, 1.5), "r_hip": (-0.1, 0, 1.0), "l_hip": (0.1, 0, 1.0),
          "r_shoulder": (-0.2, 0, 1.5), "l_shoulder": (0.2, 0, 1.5), "nose": (0, -0.1, 1.7),
          "r_knee": (-0.1, 0, 0.5), "l_knee": (0.1, 0, 0.5), "r_ankle": (-0.1, 0, 0.08),
          "l_ankle": (0.1, 0, 0.08)}
    for name, xyz in at.items():
        p[COCO18.index(name)] = xyz
    present = np.zeros(len(COCO18), bool)
    present[[COCO18.index(n) for n in at]] = True
    return p * scale, present


def test_scale_is_the_torso_and_radii_follow_the_character_size():
    points, present = skeleton()
    assert occlusion.body_scale(points, present, COCO18) == pytest.approx(0.5)
    small = occlusion.joint_radii(points, present, COCO18)
    big = occlusion.joint_radii(points * 2, present, COCO18)
    assert np.allclose(big, 2 * small)
    # One hip is enough; without neck or hips the points' extent stands in.
    one_hip = present.copy()
    one_hip[COCO18.index("l_hip")] = False
    assert occlusion.body_scale(points, one_hip, COCO18) == pytest.approx(np.hypot(0.5, 0.1))
    no_neck = present.copy()
    no_neck[COCO18.index("neck")] = False
    extent = np.linalg.norm(points[no_neck].max(0) - points[no_neck].min(0))
    assert occlusion.body_scale(points, no_neck, COCO18) == pytest.approx(extent / occlusion.EXTENT_PER_TORSO)
    assert occlusion.body_scale(points, np.zeros_like(present), COCO18) == 0
    # Leading axes (frames, people) are kept.
    stacked = np.stack([points, points * 3])[None]
    assert occlusion.body_scale(stacked, np.stack([present, present])[None], COCO18).shape == (1, 2)


def test_deep_joints_get_larger_radii_than_hands_and_face():
    f = dict(zip(OPENPOSE_FULL.points, occlusion.flesh_fractions(OPENPOSE_FULL)))
    assert f["r_hip"] > f["r_shoulder"] > f["r_elbow"] > f["r_wrist"] > f["r_hand_index_4"]
    assert f["l_hip"] == f["r_hip"] and f["l_knee"] > f["l_wrist"] and f["l_ankle"] > f["l_wrist"]
    assert f["l_hand_wrist"] == f["l_wrist"] and f["r_hand_thumb_1"] > f["r_hand_thumb_4"]
    assert f["face_30"] == f["r_pupil"] == occlusion.FACE_RADIUS < f["neck"]
    assert all(0 < v <= 0.3 for v in f.values())


def wall(x0, x1, z0, z1, y):
    """A wall quad at world y (two triangles), world = camera axes here (see below)."""
    a, b, c, d = (x0, z0, y), (x1, z0, y), (x1, z1, y), (x0, z1, y)
    return np.array([[a, b, c], [a, c, d]], float)


@pytest.mark.parametrize("ortho", [False, True])
def test_a_wall_hides_the_legs_not_the_torso(ortho):
    # The camera looks down -Z from the origin; the character stands 4 m away: world (x, z, y)
    # of the skeleton becomes camera (x, z - 1, -4 - y). A wall 1.5 m in front of it covers the
    # character up to 0.6 m (perspective) or 0.7 m (orthographic) above its feet.
    points, present = skeleton()
    camera_points = np.stack([points[:, 0], points[:, 2] - 1.0, -4.0 - points[:, 1]], axis=1)
    projection = orthographic(1.5, 1.5) if ortho else perspective(2.0, 2.0)
    width = height = 200
    xy, visible = project_points(camera_points, np.eye(4), projection, width, height)
    assert visible[present].all()
    zbuffer = rasterize_depth(wall(-2, 2, -2.0, -0.3 if ortho else -0.25, -2.5), projection, width, height)
    hidden = occlusion.hidden_keypoints(camera_points[None, None], present[None, None], present[None, None],
                                        xy[None, None], np.eye(4)[None], projection[None], {0: zbuffer},
                                        COCO18)[0, 0]
    names = {COCO18.points[i] for i in np.flatnonzero(hidden)}
    assert names == {"r_knee", "l_knee", "r_ankle", "l_ankle"}
    # Nothing in front at all: nothing hidden, the keypoint's own skin neither.
    own_skin = camera_points[present] + [0, 0, 0.03]  # a surface 3 cm in front of each point
    tiny = np.stack([own_skin + d for d in ([-0.05, -0.05, 0], [0.05, -0.05, 0], [0, 0.05, 0])], axis=1)
    zbuffer = rasterize_depth(tiny, projection, width, height)
    columns, rows = np.floor(xy[present] + 0.5).astype(int).T
    assert np.isfinite(zbuffer[rows, columns]).all(), "every point has its skin in front"
    assert not occlusion.hidden_keypoints(camera_points[None, None], present[None, None], present[None, None],
                                          xy[None, None], np.eye(4)[None], projection[None], {0: zbuffer},
                                          COCO18).any()


def test_frames_without_a_zbuffer_and_absent_points_are_left_alone():
    points, present = skeleton()
    camera_points = np.stack([points[:, 0], points[:, 2] - 1.0, -4.0 - points[:, 1]], axis=1)
    projection = perspective(2.0, 2.0)
    xy, _ = project_points(camera_points, np.eye(4), projection, 50, 50)
    everything = np.zeros((50, 50), np.float32)  # a surface at the camera itself, everywhere
    everything[:] = 0.01
    stack = lambda a: np.stack([a, a])[:, None]  # noqa: E731  two frames, one person
    keep = stack(present)
    keep[0, 0, COCO18.index("nose")] = False
    hidden = occlusion.hidden_keypoints(stack(camera_points), stack(present), keep, stack(xy),
                                        np.stack([np.eye(4)] * 2), np.stack([projection] * 2), {0: everything},
                                        COCO18)
    assert (hidden[0] == keep[0]).all()
    assert not hidden[1].any()
