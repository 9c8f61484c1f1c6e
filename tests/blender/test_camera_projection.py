"""The camera projection against Blender itself: bpy_extras' world_to_camera_view and real renders.

Renders are tiny (96x64 or so) with transparent film, so alpha is pure coverage. Cycles (CPU,
64 samples, symmetric pixel filter) gives sub-pixel centroids of small squares parallel to the image
plane: such a square's image is an affine copy, so its centroid is the projection of its centre.
Workbench without anti-aliasing is checked pixel for pixel: it fills exactly the pixels whose
centres fall inside the projected shape, which pins down the half-pixel convention.
"""

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from posebridge.pose.projection import CameraProjection
from posebridge.render.camera import camera_projection, render_size, resolve_camera

# ----------------------------------------------------------------------------------------------
# Scene helpers


def add_camera(scene, name="Cam", location=(0.4, -7.0, 1.3), rotation=(1.42, 0.06, 0.12), **data):
    """A camera object with ``data`` set on its Camera datablock, made the scene camera."""
    camera = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    scene.collection.objects.link(camera)
    camera.location, camera.rotation_euler = location, rotation
    for key, value in data.items():
        setattr(camera.data, key, value)
    scene.camera = camera
    return camera


def set_output(scene, size, percentage=100, pixel_aspect=(1.0, 1.0)):
    render = scene.render
    render.resolution_x, render.resolution_y = size
    render.resolution_percentage = percentage
    render.pixel_aspect_x, render.pixel_aspect_y = pixel_aspect


def camera_point_at_pixel(projection, x, y, depth, width, height):
    """Camera-space point at ``depth`` in front of the camera that lands on pixel (x, y).

    Inverts the window matrix for the x and y rows (both Blender's perspective and orthographic
    matrices have a constant w for a fixed camera-space z).
    """
    z = -depth
    w = projection[3, 2] * z + projection[3, 3]
    ndc_x = (x + 0.5) / width * 2 - 1
    ndc_y = 1 - (y + 0.5) / height * 2
    cam_x = (ndc_x * w - projection[0, 2] * z - projection[0, 3]) / projection[0, 0]
    cam_y = (ndc_y * w - projection[1, 2] * z - projection[1, 3]) / projection[1, 1]
    return np.array([cam_x, cam_y, z]), w


def add_camera_facing_rectangles(scene, camera_to_world, rectangles):
    """One mesh of rectangles parallel to the image plane; ``rectangles`` are camera-space
    (x0, y0, x1, y1, z). Returns their world-space corners, (n, 4, 3)."""
    corners = []
    for x0, y0, x1, y1, z in rectangles:
        for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)):
            corners.append((camera_to_world @ [x, y, z, 1.0])[:3])
    corners = np.array(corners)
    mesh = bpy.data.meshes.new("Rectangles")
    faces = [tuple(range(i, i + 4)) for i in range(0, len(corners), 4)]
    mesh.from_pydata([tuple(c) for c in corners], [], faces)
    scene.collection.objects.link(bpy.data.objects.new("Rectangles", mesh))
    return corners.reshape(-1, 4, 3)


def render_alpha(scene, path):
    """Render to a 16-bit RGBA PNG and return its alpha, (height, width), row 0 at the top."""
    scene.render.film_transparent = True
    settings = scene.render.image_settings
    settings.file_format, settings.color_mode, settings.color_depth = "PNG", "RGBA", "16"
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(path))
    try:
        width, height = image.size
        pixels = np.empty(width * height * 4, np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    # Blender stores rows bottom-up.
    return pixels.reshape(height, width, 4)[::-1, :, 3].astype(np.float64)


def use_cycles(scene):
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 64
    scene.cycles.use_denoising = False
    scene.cycles.use_adaptive_sampling = False


def use_workbench_without_aa(scene):
    scene.render.engine = "BLENDER_WORKBENCH"  # same id on 4.2 and 5.0
    scene.display.render_aa = "OFF"


# ----------------------------------------------------------------------------------------------
# Camera settings exercised everywhere: (output size, percentage, pixel aspect, camera data)

CAMERAS = {
    "perspective": ((640, 360), 100, (1, 1), dict(lens=35.0)),
    "perspective_portrait": ((360, 640), 100, (1, 1), dict(lens=50.0)),
    "lens_shift": ((640, 360), 100, (1, 1), dict(lens=40.0, shift_x=0.25, shift_y=-0.15)),
    "fit_horizontal_portrait": (
        (360, 640), 100, (1, 1), dict(sensor_fit="HORIZONTAL", sensor_width=32.0)
    ),
    "fit_vertical_landscape": (
        (640, 360), 100, (1, 1), dict(sensor_fit="VERTICAL", sensor_height=20.0, shift_y=0.1)
    ),
    "fit_auto_square": ((500, 500), 100, (1, 1), dict(lens=28.0, sensor_width=24.0)),
    "orthographic": ((640, 360), 100, (1, 1), dict(type="ORTHO", ortho_scale=7.0, shift_x=0.1)),
    "orthographic_vertical_portrait": (
        (360, 640), 100, (1, 1), dict(type="ORTHO", ortho_scale=5.0, sensor_fit="VERTICAL")
    ),
    "percentage_50": ((1280, 720), 50, (1, 1), dict(lens=35.0)),
    "pixel_aspect_x": ((640, 360), 100, (2, 1), dict(lens=35.0, shift_x=-0.1)),
    "pixel_aspect_y_portrait": ((360, 640), 100, (1, 1.5), dict(lens=60.0, shift_y=0.2)),
    "orthographic_pixel_aspect": ((640, 360), 100, (1, 2), dict(type="ORTHO", ortho_scale=6.0)),
}


def setup_camera(scene, key, rng=None):
    size, percentage, pixel_aspect, data = CAMERAS[key]
    set_output(scene, size, percentage, pixel_aspect)
    pose = {}
    if rng is not None:  # a random pose, roll included
        pose = dict(
            location=tuple(rng.uniform(-3, 3, 3)), rotation=tuple(rng.uniform(-np.pi, np.pi, 3))
        )
    return add_camera(scene, **pose, **data)


# ----------------------------------------------------------------------------------------------
# Against bpy_extras.object_utils.world_to_camera_view (independent Python implementation)


@pytest.mark.parametrize("key", sorted(CAMERAS))
def test_matches_world_to_camera_view(empty_scene, key):
    scene = empty_scene
    rng = np.random.default_rng(sorted(CAMERAS).index(key))
    camera = setup_camera(scene, key, rng)
    camera.scale = (1.5, 0.7, 2.0)  # renderers and world_to_camera_view ignore camera scale
    bpy.context.view_layer.update()
    projection = camera_projection(scene, camera, [scene.frame_current])
    width, height = projection.canvas
    assert (width, height) == render_size(scene)

    # Camera-space samples over 1.6 times the frame, so about 40 % fall outside; some behind.
    count = 400
    depth = rng.uniform(-3.0, 25.0, count)
    frame = np.array(camera.data.view_frame(scene=scene))  # corners, camera space
    scale = 1.0 if camera.data.type == "ORTHO" else np.abs(depth) / -frame[0, 2]
    across = [
        np.interp(rng.uniform(-0.3, 1.3, count), [0, 1], [frame[:, i].min(), frame[:, i].max()])
        for i in (0, 1)
    ]
    local = np.stack([across[0] * scale, across[1] * scale, -depth], -1)
    camera_to_world = np.array(camera.matrix_world.normalized())
    points = local @ camera_to_world[:3, :3].T + camera_to_world[:3, 3]

    xy, visible = projection.project(points[None])
    xy, visible = xy[0], visible[0]
    reference = np.array([world_to_camera_view(scene, camera, Vector(p)) for p in points])
    u, v, ref_depth = reference.T
    # u, v run 0..1 from the bottom-left corner of the frame.
    expected = np.stack([u * width - 0.5, (1 - v) * height - 0.5], -1)

    # Both sides compute in float32 somewhere; a point millimetres from the camera plane lands
    # thousands of pixels out with float32 noise, so compare from 0.1 units in front on.
    compared = ref_depth > 0.1
    np.testing.assert_allclose(xy[compared], expected[compared], atol=2e-3)
    clear_of_edges = compared & (np.minimum.reduce([abs(u), abs(1 - u), abs(v), abs(1 - v)]) > 1e-4)
    expected_visible = (u >= 0) & (u < 1) & (v > 0) & (v <= 1)  # the half-open pixel-edge bounds
    np.testing.assert_array_equal(visible[clear_of_edges], expected_visible[clear_of_edges])
    assert not visible[ref_depth <= 0].any()
    assert visible.sum() > 20 and (~visible[ref_depth > 0]).sum() > 20  # both kinds were tested


# ----------------------------------------------------------------------------------------------
# Against real renders

RENDER_CASES = {
    # key: (output size, percentage, pixel aspect, camera data)
    "perspective": ((96, 64), 100, (1, 1), dict(lens=35.0)),
    "orthographic": ((96, 64), 100, (1, 1), dict(type="ORTHO", ortho_scale=6.0)),
    "shifted": ((96, 64), 100, (1, 1), dict(lens=40.0, shift_x=0.2, shift_y=-0.12)),
    "vertical_fit": ((96, 64), 100, (1, 1), dict(sensor_fit="VERTICAL", sensor_height=20.0)),
    "portrait_horizontal_fit": ((64, 96), 100, (1, 1), dict(sensor_fit="HORIZONTAL", lens=30.0)),
    # 193 x 129 at 50 % renders 96 x 64 (rounded down), a slightly different aspect.
    "percentage_50_odd_size": ((193, 129), 50, (1, 1), dict(lens=35.0, shift_x=0.05)),
    "pixel_aspect": ((96, 64), 100, (1.6, 1), dict(lens=35.0, shift_y=0.1)),
}


def squares_for_render(projection, rng, cell=16, half_px=1.5):
    """Camera-space squares (x0, y0, x1, y1, z), one per inner grid cell at a random sub-pixel
    offset and depth, about 2 * half_px pixels wide. Returns (squares, camera-space centres)."""
    width, height = projection.canvas
    proj = projection.projection[0]
    squares, centres = [], []
    for cy in range(1, height // cell):
        for cx in range(1, width // cell):
            target = (cx * cell - 0.5 + rng.uniform(-2, 2), cy * cell - 0.5 + rng.uniform(-2, 2))
            centre, w = camera_point_at_pixel(proj, *target, rng.uniform(4.0, 9.0), width, height)
            half = half_px * (2 / width) * w / proj[0, 0]  # camera units per pixel, horizontally
            x, y, z = centre
            squares.append((x - half, y - half, x + half, y + half, z))
            centres.append(centre)
    return squares, np.array(centres)


def centroids_by_cell(alpha, predicted, cell=16):
    """Alpha-weighted centroid inside each predicted blob's grid cell (+-8 px, no overlap)."""
    rows, cols = np.mgrid[: alpha.shape[0], : alpha.shape[1]]
    found, mass = [], 0.0
    for x, y in predicted:
        cx, cy = int(round((x + 0.5) / cell)), int(round((y + 0.5) / cell))
        window = (slice(cy * cell - 8, cy * cell + 8), slice(cx * cell - 8, cx * cell + 8))
        weight = alpha[window]
        total = weight.sum()
        mass += total
        found.append(((cols[window] * weight).sum() / total, (rows[window] * weight).sum() / total))
    assert mass == pytest.approx(alpha.sum(), rel=1e-6)  # every rendered blob was one we predicted
    return np.array(found)


def check_render_centroids(scene, projection, tmp_path, rng, tolerance=0.1):
    """Render squares with Cycles; their centroids must sit where ``projection`` puts them."""
    camera_to_world = np.linalg.inv(projection.world_to_camera[0])
    squares, centres = squares_for_render(projection, rng)
    add_camera_facing_rectangles(scene, camera_to_world, squares)
    centres_world = centres @ camera_to_world[:3, :3].T + camera_to_world[:3, 3]

    xy, visible = projection.project(centres_world[None])
    use_cycles(scene)
    alpha = render_alpha(scene, tmp_path / "render.png")
    assert alpha.shape == (projection.height, projection.width)
    assert visible.all()
    error = centroids_by_cell(alpha, xy[0]) - xy[0]
    assert np.abs(error).max() < tolerance, f"max centroid error {np.abs(error).max():.3f} px"
    return error


@pytest.mark.parametrize("key", list(RENDER_CASES))
def test_matches_cycles_render(empty_scene, tmp_path, key):
    scene = empty_scene
    size, percentage, pixel_aspect, data = RENDER_CASES[key]
    set_output(scene, size, percentage, pixel_aspect)
    camera = add_camera(scene, **data)
    projection = camera_projection(scene, camera, [scene.frame_current])
    rng = np.random.default_rng(list(RENDER_CASES).index(key))
    error = check_render_centroids(scene, projection, tmp_path, rng)
    print(f"{key}: max centroid error {np.abs(error).max():.3f} px, mean {error.mean(0).round(3)}")


def test_matches_render_of_scaled_camera(empty_scene, tmp_path):
    """Renderers ignore the camera object's scale (even non-uniform); so must we."""
    scene = empty_scene
    set_output(scene, (96, 64))
    camera = add_camera(scene, lens=35.0, shift_x=0.1)
    camera.scale = (1.0, 2.0, 0.5)
    bpy.context.view_layer.update()
    projection = camera_projection(scene, camera, [scene.frame_current])
    check_render_centroids(scene, projection, tmp_path, np.random.default_rng(5))


def test_matches_render_of_animated_camera(empty_scene, tmp_path):
    scene = empty_scene
    set_output(scene, (96, 64))
    camera = animated_camera(scene)
    projection = camera_projection(scene, camera, [1, 7, 10])
    scene.frame_set(7)
    frame_7 = CameraProjection(
        projection.world_to_camera[1:2], projection.projection[1:2], *projection.canvas, [7]
    )
    check_render_centroids(scene, frame_7, tmp_path, np.random.default_rng(3))


@pytest.mark.parametrize(
    "key", ["shifted", "vertical_fit", "orthographic", "percentage_50_odd_size", "pixel_aspect"]
)
def test_workbench_fills_exactly_the_pixels_whose_centres_are_inside(empty_scene, tmp_path, key):
    """Without anti-aliasing a pixel is filled iff its centre is inside the projected rectangle:
    with pixel centres at integer x, y the predicted and rendered masks agree pixel for pixel."""
    scene = empty_scene
    size, percentage, pixel_aspect, data = RENDER_CASES[key]
    set_output(scene, size, percentage, pixel_aspect)
    camera = add_camera(scene, **data)
    projection = camera_projection(scene, camera, [scene.frame_current])
    width, height = projection.canvas
    proj = projection.projection[0]
    camera_to_world = np.linalg.inv(projection.world_to_camera[0])

    rng = np.random.default_rng(11)
    rectangles = []
    for cy in range(height // 16):
        for cx in range(width // 16):
            x0, y0 = cx * 16 + rng.uniform(1, 4), cy * 16 + rng.uniform(1, 4)
            x1, y1 = x0 + rng.uniform(4, 9), y0 + rng.uniform(4, 9)
            depth = rng.uniform(3, 8)
            (ax, ay, z), _ = camera_point_at_pixel(proj, x0, y1, depth, width, height)
            (bx, by, _), _ = camera_point_at_pixel(proj, x1, y0, depth, width, height)
            rectangles.append((ax, ay, bx, by, z))
    corners = add_camera_facing_rectangles(scene, camera_to_world, rectangles)
    xy, _ = projection.project(corners[None])

    use_workbench_without_aa(scene)
    filled = render_alpha(scene, tmp_path / "render.png") > 0.5

    rows, cols = np.mgrid[:height, :width]
    predicted = np.zeros_like(filled)
    near_an_edge = np.zeros_like(filled)  # pixel centres within 0.02 px of an edge: a coin toss
    for quad in xy[0]:
        x0, y0 = quad.min(axis=0)
        x1, y1 = quad.max(axis=0)
        predicted |= (cols >= x0) & (cols < x1) & (rows >= y0) & (rows < y1)
        touching = (cols > x0 - 1) & (cols < x1 + 1) & (rows > y0 - 1) & (rows < y1 + 1)
        edge_distance = np.minimum.reduce(
            [abs(cols - x0), abs(cols - x1), abs(rows - y0), abs(rows - y1)]
        )
        near_an_edge |= touching & (edge_distance < 0.02)
    assert filled.sum() > 200
    assert not ((filled != predicted) & ~near_an_edge).any()
    # A half-pixel shift of the convention would be visible as hundreds of differing pixels.
    shifted = np.roll(predicted, 1, axis=1)
    assert ((filled != shifted) & ~near_an_edge).sum() > 50


# ----------------------------------------------------------------------------------------------
# Animated camera, output size, camera lookup


def animated_camera(scene):
    """Camera parented to a moving empty; its rotation, lens and shift keyed too (frames 1-10)."""
    rig = bpy.data.objects.new("Rig", None)
    scene.collection.objects.link(rig)
    rig.location = (0.0, 0.0, 0.0)
    rig.keyframe_insert("location", frame=1)
    rig.location = (1.5, 0.5, 0.3)
    rig.keyframe_insert("location", frame=10)
    camera = add_camera(scene, lens=35.0)
    camera.parent = rig
    camera.rotation_euler = (1.42, 0.06, 0.12)
    camera.keyframe_insert("rotation_euler", frame=1)
    camera.rotation_euler = (1.35, 0.0, -0.1)
    camera.keyframe_insert("rotation_euler", frame=10)
    for frame, lens, shift in ((1, 35.0, 0.0), (10, 55.0, 0.15)):
        camera.data.lens, camera.data.shift_x = lens, shift
        camera.data.keyframe_insert("lens", frame=frame)
        camera.data.keyframe_insert("shift_x", frame=frame)
    return camera


def test_animated_camera_per_frame(empty_scene):
    scene = empty_scene
    set_output(scene, (640, 360), 50)
    camera = animated_camera(scene)
    scene.frame_set(3)
    frames = [1, 4, 10]
    projection = camera_projection(scene, camera, frames)

    assert scene.frame_current == 3  # restored
    assert projection.frame_numbers.tolist() == frames and projection.canvas == (320, 180)
    points = np.random.default_rng(5).uniform(-2, 2, (30, 3)) + [0.5, 2.0, 1.0]
    xy, _ = projection.project(points[None])  # static points, per-frame camera
    depsgraph = bpy.context.evaluated_depsgraph_get()
    for index, frame in enumerate(frames):
        scene.frame_set(frame)
        np.testing.assert_allclose(
            projection.world_to_camera[index], np.array(camera.matrix_world.inverted()), atol=1e-5
        )
        expected_projection = np.array(camera.calc_matrix_camera(depsgraph, x=320, y=180))
        np.testing.assert_allclose(projection.projection[index], expected_projection, atol=1e-5)
        reference = np.array([world_to_camera_view(scene, camera, Vector(p)) for p in points])
        expected = np.stack([reference[:, 0] * 320 - 0.5, (1 - reference[:, 1]) * 180 - 0.5], -1)
        np.testing.assert_allclose(xy[index], expected, atol=2e-3)
    # The parent's move, the rotation, lens and shift all change the picture.
    assert not np.allclose(projection.world_to_camera[0], projection.world_to_camera[2])
    focal = projection.projection[:, 0, 0]
    assert focal[2] == pytest.approx(focal[0] * 55 / 35, rel=1e-5)
    assert projection.projection[2, 0, 2] != pytest.approx(projection.projection[0, 0, 2])


def test_frame_is_restored_after_an_error(empty_scene):
    scene = empty_scene
    camera = animated_camera(scene)
    scene.frame_set(5)
    from posebridge.render.sampling import sample_frames

    with pytest.raises(TypeError):
        sample_frames(scene, [2, "x"], [], camera)  # fails inside the frame loop, after frame_set(2)
    assert scene.frame_current == 5
    with pytest.raises(ValueError, match="no camera"):
        camera_projection(scene, None, [2, 3])


def test_resolution_override(empty_scene):
    scene = empty_scene
    set_output(scene, (640, 360), 50)
    camera = add_camera(scene, shift_x=0.1)
    projection = camera_projection(scene, camera, [1], resolution=(300, 300))
    assert projection.canvas == (300, 300)
    # Same as rendering the scene at 300 x 300.
    set_output(scene, (300, 300))
    np.testing.assert_allclose(
        projection.projection[0], camera_projection(scene, camera, [1]).projection[0], atol=1e-7
    )
    with pytest.raises(ValueError, match="positive"):
        camera_projection(scene, camera, [1], resolution=(0, 10))


def test_render_size_rounds_down_like_blender(empty_scene):
    scene = empty_scene
    set_output(scene, (193, 129), 50)
    assert render_size(scene) == (96, 64)
    set_output(scene, (1920, 1080), 33)
    assert render_size(scene) == (633, 356)


def test_render_size_is_the_rendered_image_size(empty_scene, tmp_path):
    scene = empty_scene
    set_output(scene, (101, 75), 37)
    add_camera(scene)
    use_workbench_without_aa(scene)
    assert render_alpha(scene, tmp_path / "size.png").shape[::-1] == render_size(scene)


def test_resolve_camera(empty_scene):
    scene = empty_scene
    with pytest.raises(ValueError, match="has no active camera"):
        resolve_camera(scene)
    main = add_camera(scene, name="Main")
    side = add_camera(scene, name="Side")
    scene.camera = main
    assert resolve_camera(scene) == main
    assert resolve_camera(scene, "Side") == side
    with pytest.raises(ValueError, match="no object named 'Nope'"):
        resolve_camera(scene, "Nope")
    empty = bpy.data.objects.new("Target", None)
    scene.collection.objects.link(empty)
    with pytest.raises(ValueError, match="'Target' is a empty object, not a camera"):
        resolve_camera(scene, "Target")
    scene.camera = empty  # Blender lets any object be the active camera
    with pytest.raises(ValueError, match="not a camera"):
        resolve_camera(scene)

