"""rasterize_depth against analytic depths and an independent per-pixel ray caster.

Matrices follow Blender (camera looks down -Z, +Y up, OpenGL window matrix); pixel column i is
sampled at its centre, NDC x = (i + 0.5) / W * 2 - 1, rows go down.
"""
import numpy as np
import pytest

from posebridge.draw import depth_raster
from posebridge.draw.depth_raster import clip_near, is_orthographic, rasterize_depth
from camera_matrices import orthographic, perspective  # noqa: E402  (tests/pure helper)


def quad(corners):
    """Two triangles from four corners in order around the quad."""
    a, b, c, d = np.asarray(corners, dtype=float)
    return np.array([[a, b, c], [a, c, d]])


def pixel_rays(projection, width, height):
    """For every pixel centre, two camera-space points on its sight line, (H, W, 3) each."""
    ix, iy = np.meshgrid(np.arange(width), np.arange(height))
    ndc_x = (ix + 0.5) / width * 2 - 1
    ndc_y = 1 - (iy + 0.5) / height * 2
    inverse = np.linalg.inv(projection)

    def unproject(ndc_z):
        h = np.stack([ndc_x, ndc_y, np.full_like(ndc_x, ndc_z), np.ones_like(ndc_x)], -1)
        p = h @ inverse.T
        return p[..., :3] / p[..., 3:]

    return unproject(-1.0), unproject(1.0)


def ray_cast_reference(triangles, projection, width, height, near=1e-4, far=np.inf):
    """Depth per pixel by intersecting each pixel's sight line with each triangle (inclusive
    edges), keeping hits at distance >= near: independent of any screen-space interpolation."""
    a_pt, b_pt = pixel_rays(projection, width, height)
    direction = b_pt - a_pt
    best = np.full((height, width), np.inf)
    for v0, v1, v2 in np.asarray(triangles, dtype=float):
        e1, e2 = v1 - v0, v2 - v0
        p = np.cross(direction, e2)
        det = p @ e1
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / det
            s = a_pt - v0
            u = np.einsum("...i,...i", s, p) * inv
            q = np.cross(s, e1)
            v = np.einsum("...i,...i", direction, q) * inv
            t = (q @ e2) * inv
        hit = a_pt + t[..., None] * direction
        distance = -hit[..., 2]
        ok = (det != 0) & (u >= 0) & (v >= 0) & (u + v <= 1) & (distance >= near) & (distance <= far)
        best = np.where(ok & (distance < best), distance, best)
    return best


W, H = 64, 48
PERSP = perspective(2.0, 2.0 * W / H)
ORTHO = orthographic(2.0, 2.0 * H / W)


def test_detects_the_projection_kind():
    assert not is_orthographic(PERSP)
    assert is_orthographic(ORTHO)
    with pytest.raises(ValueError):
        is_orthographic(np.ones((4, 4)))


def test_empty_and_invisible_input_give_an_empty_map():
    for tris in (np.zeros((0, 3, 3)), quad([[-1, -1, 2], [1, -1, 2], [1, 1, 2], [-1, 1, 2]])):
        depth = rasterize_depth(tris, PERSP, W, H)
        assert depth.shape == (H, W) and depth.dtype == np.float32
        assert np.isinf(depth).all()


@pytest.mark.parametrize("projection", [PERSP, ORTHO], ids=["perspective", "orthographic"])
def test_camera_facing_quad_has_its_exact_distance(projection):
    # Corners chosen so no edge passes through a pixel centre.
    tris = quad([[-0.513, -0.377, -3], [0.611, -0.377, -3], [0.611, 0.422, -3], [-0.513, 0.422, -3]])
    depth = rasterize_depth(tris, projection, W, H)
    inside = np.isfinite(depth)
    assert (depth[inside] == 3.0).all()
    # Coverage is exactly the pixel centres inside the projected rectangle.
    a_pt, b_pt = pixel_rays(projection, W, H)
    t = (-3 - a_pt[..., 2]) / (b_pt[..., 2] - a_pt[..., 2])
    x, y = (a_pt + t[..., None] * (b_pt - a_pt))[..., :2].transpose(2, 0, 1)
    expected = (x > -0.513) & (x < 0.611) & (y > -0.377) & (y < 0.422)
    assert expected.sum() > 50
    np.testing.assert_array_equal(inside, expected)


@pytest.mark.parametrize("projection", [PERSP, ORTHO, perspective(1.3, 1.9, shift=(0.2, -0.1))],
                         ids=["perspective", "orthographic", "shifted"])
def test_tilted_plane_matches_ray_plane_intersection_everywhere(projection):
    # The plane z = -5 + 0.3 x + 0.2 y, as a big quad reaching well past the frame.
    def point(x, y):
        return [x, y, -5 + 0.3 * x + 0.2 * y]

    tris = quad([point(-9, -7), point(9, -7), point(9, 7), point(-9, 7)])
    depth = rasterize_depth(tris, projection, W, H)
    a_pt, b_pt = pixel_rays(projection, W, H)
    normal = np.array([0.3, 0.2, -1.0])  # n . p = 5 on the plane
    t = (5 - a_pt @ normal) / ((b_pt - a_pt) @ normal)
    expected = -(a_pt + t[..., None] * (b_pt - a_pt))[..., 2]
    assert np.isfinite(depth).all()
    assert np.max(np.abs(depth - expected) / expected) < 1e-6


def test_nearer_triangle_wins_whatever_the_order():
    near_quad = quad([[-1, -1, -2], [0.5, -1, -2], [0.5, 0.5, -2], [-1, 0.5, -2]])
    far_quad = quad([[-0.5, -0.5, -4], [1.5, -0.5, -4], [1.5, 1.5, -4], [-0.5, 1.5, -4]])
    first = rasterize_depth(np.concatenate([near_quad, far_quad]), PERSP, W, H)
    second = rasterize_depth(np.concatenate([far_quad, near_quad]), PERSP, W, H)
    np.testing.assert_array_equal(first, second)
    assert set(np.unique(first)) == {2.0, 4.0, np.inf}
    # Where the far quad peeks out, it shows; the overlap is the near one.
    only_near = rasterize_depth(near_quad, PERSP, W, H)
    np.testing.assert_array_equal(first[np.isfinite(only_near)], 2.0)


def test_both_windings_draw_the_same():
    rng = np.random.default_rng(5)
    tris = rng.uniform([-2, -2, -6], [2, 2, -1], (40, 3, 3))
    np.testing.assert_array_equal(rasterize_depth(tris, PERSP, W, H),
                                  rasterize_depth(tris[:, ::-1], PERSP, W, H))


# Exact pixel-centre tests need coordinates that survive the projection without rounding: a
# square power-of-two image and an orthographic camera one pixel per unit keep them dyadic.
S = 64
PIXEL_ORTHO = orthographic(S / 2, S / 2)


def to_camera(px, py, z):
    """Camera-space point at pixel coordinates (px, py) under PIXEL_ORTHO."""
    return [px - (S - 1) / 2, (S - 1) / 2 - py, z]


def test_shared_edges_through_pixel_centres_are_owned_exactly_once():
    # Two triangles with a common screen edge along a diagonal through pixel centres, at
    # different distances: every centre on the edge goes to exactly one of them, none is lost.
    proj = PIXEL_ORTHO
    a, b, c, d = (3, 2), (40, 39), (40, 2), (3, 39)
    lower = np.array([[to_camera(*a, -2), to_camera(*c, -2), to_camera(*b, -2)]])
    upper = np.array([[to_camera(*a, -3), to_camera(*b, -3), to_camera(*d, -3)]])
    one = np.isfinite(rasterize_depth(lower, proj, S, S))
    two = np.isfinite(rasterize_depth(upper, proj, S, S))
    whole = np.isfinite(rasterize_depth(quad([to_camera(*p, -2) for p in (a, c, b, d)]), proj, S, S))
    assert not (one & two).any()
    np.testing.assert_array_equal(one | two, whole)
    # Half-open: the square's own border keeps two sides of the four.
    assert whole.sum() == 37 * 37


def test_fan_around_a_pixel_centre_leaves_no_hole_and_no_overlap():
    # Eight triangles around a vertex exactly on a pixel centre, with mixed windings.
    proj = PIXEL_ORTHO
    centre = (20, 20)
    ring = [(30, 20), (30, 30), (20, 30), (10, 30), (10, 20), (10, 10), (20, 10), (30, 10)]
    covered = []
    for k in range(8):
        tri = [to_camera(*centre, -1), to_camera(*ring[k], -1), to_camera(*ring[(k + 1) % 8], -1)]
        if k % 2:
            tri = tri[::-1]
        covered.append(np.isfinite(rasterize_depth(np.array([tri]), proj, S, S)))
    count = np.sum(covered, axis=0)
    assert count[20, 20] == 1
    assert count.max() == 1
    assert (count[11:30, 11:30] == 1).all()


@pytest.mark.parametrize("projection", [PERSP, ORTHO], ids=["perspective", "orthographic"])
def test_grid_mesh_covering_the_image_has_no_holes(projection):
    # A wavy grid mesh (shared edges in every direction) reaching past the frame.
    n = 23
    u, v = np.meshgrid(np.linspace(-4, 4, n + 1), np.linspace(-3, 3, n + 1))
    z = -6 + 0.4 * np.sin(2 * u) * np.cos(3 * v)
    grid = np.stack([u, v, z], -1)
    a, b, c, d = grid[:-1, :-1], grid[:-1, 1:], grid[1:, 1:], grid[1:, :-1]
    tris = np.concatenate([np.stack([a, b, c], -2), np.stack([a, c, d], -2)]).reshape(-1, 3, 3)
    depth = rasterize_depth(tris, projection, 160, 120)
    assert np.isfinite(depth).all()


def test_grid_mesh_with_vertices_on_pixel_centres_has_no_holes():
    proj = PIXEL_ORTHO
    ys, xs = np.mgrid[-4:S + 4:4, -4:S + 4:4]
    grid = np.stack([xs - (S - 1) / 2, (S - 1) / 2 - ys, np.full(xs.shape, -2.0)], -1)
    a, b, c, d = grid[:-1, :-1], grid[:-1, 1:], grid[1:, 1:], grid[1:, :-1]
    tris = np.concatenate([np.stack([a, b, c], -2), np.stack([a, c, d], -2)]).reshape(-1, 3, 3)
    assert np.isfinite(rasterize_depth(tris, proj, S, S)).all()
    # Each centre lies in exactly one triangle: summing single-triangle coverages counts 1s.
    count = sum(np.isfinite(rasterize_depth(t[None], proj, S, S)).astype(int) for t in tris)
    assert (count == 1).all()


def test_floor_running_behind_the_camera_is_clipped_at_the_near_plane():
    # The floor y = -1 from 5 m behind the camera to 50 m ahead: naive projection of the
    # vertices behind the camera would flip them across the image.
    floor = quad([[-30, -1, 5], [30, -1, 5], [30, -1, -50], [-30, -1, -50]])
    depth = rasterize_depth(floor, PERSP, W, H, near=0.1)
    a_pt, b_pt = pixel_rays(PERSP, W, H)
    direction = b_pt - a_pt  # through the camera origin for perspective
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -1 / direction[..., 1]
    expected = np.where(direction[..., 1] < 0, -t * direction[..., 2], np.inf)
    expected[expected > 50] = np.inf  # past the far edge of the floor
    np.testing.assert_array_equal(np.isfinite(depth), np.isfinite(expected))
    finite = np.isfinite(expected)
    assert finite.sum() > W * H / 3
    assert np.max(np.abs(depth[finite] - expected[finite]) / expected[finite]) < 1e-6


@pytest.mark.parametrize("projection", [PERSP, ORTHO], ids=["perspective", "orthographic"])
def test_part_nearer_than_near_is_cut_away(projection):
    # A plane whose distance grows from left to right (from behind the camera for the
    # orthographic one), with near = 0.8: where it is nearer, the backdrop at 10 m shows instead.
    def point(x, y):
        return [x, y, -(1.2 + 1.5 * x)]

    slope = quad([point(-2, -2), point(2, -2), point(2, 2), point(-2, 2)])
    backdrop = quad([[-50, -50, -10], [50, -50, -10], [50, 50, -10], [-50, 50, -10]])
    depth = rasterize_depth(np.concatenate([slope, backdrop]), projection, W, H, near=0.8)
    expected = ray_cast_reference(np.concatenate([slope, backdrop]), projection, W, H, near=0.8)
    assert (depth == 10).sum() > 100 and (np.abs(depth - 10) > 1).sum() > 100
    np.testing.assert_allclose(depth, expected, rtol=1e-6)


def test_clip_near_keeps_the_front_part():
    tri = np.array([[[0, 0, -2], [1, 0, 1], [0, 1, 1]]], float)  # one vertex in front
    (out,) = clip_near(tri, 0.5)
    np.testing.assert_allclose(out[0], [0, 0, -2])
    np.testing.assert_allclose(out[1:, 2], -0.5)
    two_front = np.array([[[0, 0, -2], [1, 0, -2], [0, 1, 1]]], float)
    assert clip_near(two_front, 0.5).shape == (2, 3, 3)
    assert clip_near(-two_front, 0.5).shape == (1, 3, 3)
    assert clip_near(np.array([[[0, 0, 1], [1, 0, 1], [0, 1, 1]]], float), 0.5).shape == (0, 3, 3)


def test_off_screen_and_between_centre_triangles_are_ignored():
    off = quad([[5, 5, -2], [7, 5, -2], [7, 7, -2], [5, 7, -2]])  # right of and above the frame
    proj = PIXEL_ORTHO
    sliver = np.array([[to_camera(10.1, 10.1, -1), to_camera(10.9, 10.2, -1),
                        to_camera(10.5, 10.8, -1)]])  # inside one pixel, missing its centre
    assert np.isinf(rasterize_depth(off, PERSP, W, H)).all()
    assert np.isinf(rasterize_depth(sliver, proj, S, S)).all()


def test_far_limit_leaves_out_what_lies_beyond():
    near_quad = quad([[-1, -1, -2], [0.5, -1, -2], [0.5, 0.5, -2], [-1, 0.5, -2]])
    far_quad = quad([[-9, -9, -40], [9, -9, -40], [9, 9, -40], [-9, 9, -40]])
    depth = rasterize_depth(np.concatenate([near_quad, far_quad]), PERSP, W, H, far=30)
    assert set(np.unique(depth)) == {2.0, np.inf}


def random_scene(rng, count_small, count_large):
    """Many tiny triangles in the view plus large ones, some crossing the near plane or the
    frame edge, some off-screen, some behind the camera."""
    centres = rng.uniform([-1.5, -1.2, -6], [1.5, 1.2, -1.5], (count_small, 1, 3))
    small = centres + rng.normal(0, 0.08, (count_small, 3, 3))
    large = rng.uniform([-8, -8, -12], [8, 8, 1.5], (count_large, 3, 3))
    return np.concatenate([small, large])


@pytest.mark.parametrize("projection", [PERSP, ORTHO, perspective(1.6, 2.3, shift=(-0.15, 0.1))],
                         ids=["perspective", "orthographic", "shifted"])
def test_mixed_scene_matches_the_ray_caster(projection):
    rng = np.random.default_rng(11)
    tris = random_scene(rng, 600, 6)
    depth = rasterize_depth(tris, projection, W, H, near=0.3)
    expected = ray_cast_reference(tris, projection, W, H, near=0.3)
    np.testing.assert_array_equal(np.isfinite(depth), np.isfinite(expected))
    finite = np.isfinite(expected)
    assert 0.3 < finite.mean() < 1
    np.testing.assert_allclose(depth[finite], expected[finite], rtol=1e-6)


def test_large_image_with_huge_and_tiny_triangles_matches_the_ray_caster(monkeypatch):
    # Big enough for batched grids of many sizes and for the one-by-one path of huge triangles;
    # a small batch limit makes both split their work into several chunks / bands of rows.
    monkeypatch.setattr(depth_raster, "_MAX_BATCH_SAMPLES", 4096)
    calls = []
    one_by_one = depth_raster._dense_triangle
    monkeypatch.setattr(depth_raster, "_dense_triangle",
                        lambda *args: calls.append(1) or one_by_one(*args))
    rng = np.random.default_rng(12)
    width, height = 160, 120
    proj = perspective(2.0, 2.0 * width / height)
    tris = np.concatenate([random_scene(rng, 1500, 10),
                           rng.uniform([-1, -1, -4], [1, 1, -2], (200, 1, 3))
                           + rng.normal(0, 0.3, (200, 3, 3))])
    depth = rasterize_depth(tris, proj, width, height, near=0.3)
    expected = ray_cast_reference(tris, proj, width, height, near=0.3)
    assert calls
    np.testing.assert_array_equal(np.isfinite(depth), np.isfinite(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(depth[finite], expected[finite], rtol=1e-6)


def test_degenerate_and_non_finite_triangles_are_skipped():
    good = quad([[-1, -1, -2], [1, -1, -2], [1, 1, -2], [-1, 1, -2]])
    line = np.array([[[-1, -1, -1.5], [0, 0, -1.5], [1, 1, -1.5]]])
    nan = np.array([[[np.nan, 0, -1], [1, 0, -1], [0, 1, -1]]])
    expected = rasterize_depth(good, PERSP, W, H)
    np.testing.assert_array_equal(rasterize_depth(np.concatenate([good, line, nan]), PERSP, W, H),
                                  expected)


def test_bad_input_is_rejected():
    tri = np.zeros((1, 3, 3))
    with pytest.raises(ValueError):
        rasterize_depth(np.zeros((1, 3)), PERSP, W, H)
    with pytest.raises(ValueError):
        rasterize_depth(tri, np.eye(3), W, H)
    with pytest.raises(ValueError):
        rasterize_depth(tri, PERSP, 0, H)
    with pytest.raises(ValueError):
        rasterize_depth(tri, PERSP, W, H, near=0)
    with pytest.raises(ValueError):
        rasterize_depth(tri, PERSP, W, H, near=2, far=1)
