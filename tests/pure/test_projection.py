"""project_points on hand-built Blender-style matrices (camera looks down -Z, GL window matrix)."""
import numpy as np
import pytest

from posebridge.pose.projection import CameraProjection, project_points
from camera_matrices import orthographic, perspective  # noqa: E402  (tests/pure helper)


def camera_at(x, y, z):
    """world_to_camera of an unrotated camera at (x, y, z): looks down world -Z."""
    m = np.eye(4)
    m[:3, 3] = (-x, -y, -z)
    return m


W, H = 640, 360


def test_centre_of_frame_is_between_the_two_middle_pixels():
    proj = perspective(2.0, 2.0 * W / H)
    xy, visible = project_points([0.0, 0.0, -5.0], camera_at(0, 0, 0), proj, W, H)
    # The image spans -0.5 .. W - 0.5, so its centre is (W - 1) / 2.
    assert xy == pytest.approx([(W - 1) / 2, (H - 1) / 2])
    assert visible


def test_frame_corners_map_to_outer_pixel_edges():
    proj = orthographic(2.0, 1.0)
    corners = [[-2.0, 1.0, -1.0], [2.0, -1.0, -1.0]]  # NDC (-1, +1) top-left, (+1, -1) bottom-right
    xy, _ = project_points(corners, np.eye(4), proj, W, H)
    np.testing.assert_allclose(xy, [[-0.5, -0.5], [W - 0.5, H - 0.5]], atol=1e-9)


def test_y_points_down_and_x_right():
    points = [[1.0, 0.0, -5.0], [0.0, 1.0, -5.0]]
    xy, _ = project_points(points, np.eye(4), perspective(2.0, 2.0), W, H)
    centre = np.array([(W - 1) / 2, (H - 1) / 2])
    assert xy[0, 0] > centre[0] and xy[0, 1] == pytest.approx(centre[1])  # +X camera = right
    assert xy[1, 1] < centre[1] and xy[1, 0] == pytest.approx(centre[0])  # +Y camera = up


def test_perspective_divides_by_depth():
    proj = perspective(2.0, 2.0)
    xy, _ = project_points([[1.0, 0.0, -2.0], [1.0, 0.0, -4.0]], np.eye(4), proj, 100, 100)
    # NDC x = f * X / depth; pixels from the centre scale by width / 2.
    assert xy[0, 0] - 49.5 == pytest.approx(2.0 * 1 / 2 * 50)
    assert xy[1, 0] - 49.5 == pytest.approx(2.0 * 1 / 4 * 50)


def test_lens_shift_moves_the_frame_so_the_scene_moves_the_other_way():
    # Window matrix [0, 2] = (right + left) / (right - left): a frame shifted right by half its
    # width puts the axis a quarter of the image left of centre.
    proj = perspective(2.0, 2.0, shift=(0.5, 0.0))
    xy, _ = project_points([0.0, 0.0, -3.0], np.eye(4), proj, 100, 100)
    assert xy == pytest.approx([49.5 - 0.5 * 50, 49.5])


def test_behind_camera_is_invisible_even_where_it_would_land_inside():
    proj = perspective(2.0, 2.0)
    xy, visible = project_points([[0.1, 0.1, 5.0], [0.1, 0.1, -5.0]], np.eye(4), proj, 100, 100)
    assert visible.tolist() == [False, True]
    assert np.all(np.isfinite(xy))


def test_point_on_camera_plane_is_invisible_and_nan():
    xy, visible = project_points([0.0, 0.0, 0.0], np.eye(4), perspective(2.0, 2.0), 100, 100)
    assert not visible and np.isnan(xy).all()


def test_orthographic_needs_to_be_in_front_too():
    proj = orthographic(1.0, 1.0)
    _, visible = project_points([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]], np.eye(4), proj, 100, 100)
    assert visible.tolist() == [True, False]


def test_visibility_uses_the_pixel_edges():
    # Ortho camera 100 px over 2 units: one pixel is 0.02 units, pixel 0's left edge at X = -1.
    proj = orthographic(1.0, 1.0)
    xs = np.array([-1.001, -1.0, -0.999, 0.999, 1.0, 1.001])
    points = np.stack([xs, np.zeros_like(xs), -np.ones_like(xs)], axis=-1)
    xy, visible = project_points(points, np.eye(4), proj, 100, 100)
    np.testing.assert_allclose(xy[:, 0], (xs + 1) * 50 - 0.5)
    assert visible.tolist() == [False, True, True, True, False, False]


def test_outside_frame_in_front_is_invisible_but_has_coordinates():
    points = [[10.0, 0.0, -1.0], [0.0, -10.0, -1.0]]
    xy, visible = project_points(points, np.eye(4), perspective(1.0, 1.0), 50, 40)
    assert not visible.any()
    assert xy[0, 0] > 50 and xy[1, 1] > 40


def test_any_leading_shape_with_one_camera():
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, (2, 3, 5, 3)) + [0, 0, -4]
    camera, proj = camera_at(0.1, 0, 0), perspective(1.5, 2.0)
    xy, visible = project_points(points, camera, proj, 64, 48)
    assert xy.shape == (2, 3, 5, 2) and visible.shape == (2, 3, 5)
    flat_xy, flat_visible = project_points(points.reshape(-1, 3), camera, proj, 64, 48)
    np.testing.assert_array_equal(xy.reshape(-1, 2), flat_xy)
    np.testing.assert_array_equal(visible.reshape(-1), flat_visible)


def test_batched_frames_match_frame_by_frame():
    rng = np.random.default_rng(1)
    frames, people, joints = 4, 2, 7
    w2c = np.stack([camera_at(0.3 * f, 0, 0) for f in range(frames)])
    proj = np.stack([perspective(1.0 + 0.2 * f, 1.5) for f in range(frames)])
    points = rng.uniform(-1, 1, (frames, people, joints, 3)) + [0, 0, -3]
    xy, visible = project_points(points, w2c, proj, 80, 60)
    assert xy.shape == (frames, people, joints, 2)
    for f in range(frames):
        one_xy, one_visible = project_points(points[f], w2c[f], proj[f], 80, 60)
        np.testing.assert_allclose(xy[f], one_xy)
        np.testing.assert_array_equal(visible[f], one_visible)


def test_batched_frames_broadcast_static_points():
    w2c = np.stack([camera_at(x, 0, 0) for x in (0.0, 1.0)])
    proj = np.stack([orthographic(2.0, 2.0)] * 2)
    xy, _ = project_points([[[0.0, 0.0, -1.0]]], w2c, proj, 100, 100)  # (1, 1, 3): one static point
    assert xy.shape == (2, 1, 2)
    # The camera moves right by 1 unit = 25 px, so the point moves left by 25 px.
    assert xy[0, 0, 0] - xy[1, 0, 0] == pytest.approx(25.0)


def test_batched_frames_need_a_frame_axis():
    w2c = np.stack([np.eye(4)] * 3)
    with pytest.raises(ValueError, match="per-frame"):
        project_points(np.zeros((2, 5, 3)), w2c, w2c, 10, 10)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        project_points(np.zeros((5, 2)), np.eye(4), np.eye(4), 10, 10)
    with pytest.raises(ValueError, match="differ"):
        project_points(np.zeros((5, 3)), np.eye(4), np.stack([np.eye(4)]), 10, 10)
    with pytest.raises(ValueError, match="positive"):
        project_points(np.zeros((5, 3)), np.eye(4), np.eye(4), 0, 10)


def test_camera_projection_projects_per_frame():
    w2c = np.stack([camera_at(0, 0, 0), camera_at(0, 0, 0)])
    proj = np.stack([perspective(1.0, 1.0), perspective(2.0, 2.0)])
    camera = CameraProjection(w2c, proj, 100, 100, [10, 11])
    assert camera.frame_count == 2 and camera.canvas == (100, 100)
    xy, visible = camera.project([[[1.0, 0.0, -4.0]]])
    assert xy[:, 0, 0] == pytest.approx([49.5 + 12.5, 49.5 + 25.0])
    assert visible.all()


def test_camera_projection_validates_frame_count():
    with pytest.raises(ValueError, match="one matrix per frame"):
        CameraProjection(np.stack([np.eye(4)] * 2), np.stack([np.eye(4)] * 2), 10, 10, [1, 2, 3])
    with pytest.raises(ValueError, match="positive"):
        CameraProjection(np.stack([np.eye(4)]), np.stack([np.eye(4)]), 10, -1, [1])
