"""Depth maps of the shot: the scene as Blender evaluates it, checked against Blender's own ray
casts; shot-wide grey levels; the characters-only mask; visibility as the render has it; the
batch flags and the files Generate sends."""
import math

import bpy
import numpy as np
import pytest
from mathutils import Vector

from posebridge import batch
from posebridge.draw.depth_encode import DepthRange, encode_depth
from posebridge.draw.png import read_png
from posebridge.render import depth_maps, pose_map_run, pose_maps
from posebridge.render.demo_shot import build_demo_shot
from posebridge.render.depth_scene import SceneTriangles
from posebridge.render.sampling import sample_frames

import rigs  # tests/blender's scene builders

FRAMES = 8
SIZE = (160, 120)


def _box(scene, name, centre, size, collection=None):
    return rigs.add_box(scene, name, centre, size, collection)


def _skinned_arm(scene, armature, bone_name="forearm.R"):
    """A square tube around one bone, deformed by an Armature modifier (no parenting)."""
    bone = armature.data.bones[bone_name]
    head, tail = armature.matrix_world @ bone.head_local, armature.matrix_world @ bone.tail_local
    axis = (tail - head).normalized()
    side = axis.orthogonal().normalized() * 0.05
    up = axis.cross(side).normalized() * 0.05
    ring = [side + up, side - up, -side - up, -side + up]
    verts = [tuple(end + r) for end in (head, tail) for r in ring]
    faces = [(i, (i + 1) % 4, 4 + (i + 1) % 4, 4 + i) for i in range(4)] + [(3, 2, 1, 0), (4, 5, 6, 7)]
    mesh = bpy.data.meshes.new("SkinnedArm")
    mesh.from_pydata(verts, [], faces)
    obj = bpy.data.objects.new("SkinnedArm", mesh)
    scene.collection.objects.link(obj)
    group = obj.vertex_groups.new(name=bone_name)
    group.add(list(range(8)), 1.0, "REPLACE")
    modifier = obj.modifiers.new("Armature", "ARMATURE")
    modifier.object = armature
    return obj


@pytest.fixture
def shot(empty_scene):
    """The demo character (bone-parented limbs) + an armature-skinned forearm, its floor, a wall
    behind and a crate in front of the legs."""
    armature, camera = build_demo_shot(empty_scene, frame_count=FRAMES, resolution=SIZE)
    _skinned_arm(empty_scene, armature)
    _box(empty_scene, "Wall", (0, 2.5, 1.0), (6, 0.2, 2.0))
    _box(empty_scene, "Crate", (0.25, -0.9, 0.2), (0.4, 0.4, 0.4))
    empty_scene.frame_set(3)
    return empty_scene


def _pixel_ray(world_to_camera, projection, x, y, width, height):
    """Origin and unit direction of the ray through pixel centre (x, y) (pose/projection.py)."""
    ndc = ((x + 0.5) / width * 2 - 1, 1 - (y + 0.5) / height * 2)
    inverse = np.linalg.inv(projection @ world_to_camera)
    ends = []
    for z in (-1.0, 1.0):
        point = inverse @ np.array([ndc[0], ndc[1], z, 1.0])
        ends.append(point[:3] / point[3])
    direction = ends[1] - ends[0]
    return Vector(ends[0]), Vector(direction / np.linalg.norm(direction))


def _ray_depth(scene, graph, world_to_camera, projection, x, y, width, height):
    """(view-axis depth or inf, object name) of what Blender's ray cast hits at that pixel."""
    origin, direction = _pixel_ray(world_to_camera, projection, x, y, width, height)
    hit, location, _normal, _index, obj, _matrix = scene.ray_cast(graph, origin, direction)
    if not hit:
        return math.inf, None
    camera_point = world_to_camera @ np.array([*location, 1.0])
    return -camera_point[2], obj.name


def _frames_with_rays(scene, frames, subject="scene", step=4, width=SIZE[0], height=SIZE[1]):
    """Per frame: our depth image, and Blender's ray-cast depth and hit object on a pixel grid."""
    reader = SceneTriangles(subject, [scene.objects["DemoCharacter"]])
    results = []

    def each(_index, graph, world_to_camera, projection):
        depth = depth_maps.depth_image(reader.read(graph, world_to_camera), projection, width, height)
        rays = {}
        for y in range(step // 2, height, step):
            for x in range(step // 2, width, step):
                rays[x, y] = _ray_depth(scene, graph, world_to_camera, projection, x, y, width, height)
        results.append((depth, rays))

    sample_frames(scene, frames, [], scene.camera, width, height, each_frame=each)
    return results


def _agreement(depth, rays, skip=()):
    checked = close = 0
    for (x, y), (expected, name) in rays.items():
        if name in skip:
            continue
        checked += 1
        ours = float(depth[y, x])
        if math.isinf(expected):
            close += math.isinf(ours)
        else:
            close += abs(ours - expected) <= 1e-3 * max(1.0, expected)
    return close, checked


def test_depth_equals_blender_ray_casts(shot):
    for depth, rays in _frames_with_rays(shot, [1, 5, 8]):
        names = {name for _, name in rays.values()}
        assert {"Wall", "Crate", "DemoFloor", "SkinnedArm", None} <= names, names
        assert any(n.startswith("Demo_") for n in names if n)
        close, checked = _agreement(depth, rays)
        # Only a ray grazing a silhouette edge may pick the other surface.
        assert close >= 0.995 * checked, f"{checked - close} of {checked} pixels differ"


def test_skinned_mesh_follows_the_armature(shot):
    """The armature-deformed forearm is read deformed at every frame, not at rest."""
    results = _frames_with_rays(shot, [1, 6], step=2)
    seen = []
    for depth, rays in results:
        arm = [(x, y) for (x, y), (_, name) in rays.items() if name == "SkinnedArm"]
        assert arm
        assert all(abs(depth[y, x] - rays[x, y][0]) < 1e-3 for x, y in arm)
        seen.append(set(arm))
    assert seen[0] != seen[1], "the forearm moves between the frames"


def _render(scene, tmp_path, **kwargs):
    job = pose_maps.plan_job(scene, output_dir=str(tmp_path), depth=True, **kwargs)
    report = pose_map_run.render_pose_maps(scene, job)
    return job, report


def test_background_black_near_bright_far_dark(shot, tmp_path):
    (depth, rays), = _frames_with_rays(shot, [2])
    _, report = _render(shot, tmp_path, frame_start=2, frame_end=2)
    image = read_png(tmp_path / "depth_0002.png")
    assert image.shape == (SIZE[1], SIZE[0]) and image.dtype == np.uint8
    assert (image[~np.isfinite(depth)] == 0).all() and (~np.isfinite(depth)).any()
    assert (image[np.isfinite(depth)] > 0).all()
    levels = {}
    for (x, y), (_, name) in rays.items():
        levels.setdefault(name, []).append(int(image[y, x]))
    assert max(levels["Wall"]) < min(levels["Crate"]), "the crate is nearer than the wall"
    assert np.median(levels["Wall"]) < np.median(levels["SkinnedArm"])
    assert report.depth_range.near < report.depth_range.far
    assert (tmp_path / "pose_0002.png").exists()


def test_static_wall_keeps_its_grey_level_while_the_character_moves(shot, tmp_path):
    bpy.data.objects.remove(shot.objects["Crate"])  # the character is then the nearest surface
    results = _frames_with_rays(shot, list(range(1, FRAMES + 1)))
    wall = [p for p in results[0][1] if all(r[p][1] == "Wall" for _, r in results)]
    assert len(wall) > 50
    _render(shot, tmp_path)
    images = [read_png(tmp_path / f"depth_{f:04d}.png") for f in range(1, FRAMES + 1)]
    xs, ys = zip(*wall)
    for image in images[1:]:
        assert (image[ys, xs] == images[0][ys, xs]).all()
    # The character moved, and the shot's nearest point with it: per-frame min/max would flicker.
    assert any((image != images[0]).any() for image in images[1:])
    nearest = [float(depth[np.isfinite(depth)].min()) for depth, _ in results]
    assert max(nearest) - min(nearest) > 0.01


def test_characters_only_masks_the_set(shot, tmp_path):
    (depth, rays), = _frames_with_rays(shot, [4], subject="characters")
    for (x, y), (expected, name) in rays.items():
        if name in ("Wall", "DemoFloor", "Crate", None):
            assert math.isinf(depth[y, x]), (x, y, name)  # the set, and what it hides, is background
        else:
            assert abs(depth[y, x] - expected) < 1e-3
    _, report = _render(shot, tmp_path, frame_start=4, frame_end=4, depth_subject="characters")
    image = read_png(tmp_path / "depth_0004.png")
    assert ((image > 0) == np.isfinite(depth)).all()
    # The range is the characters', so they span the grey levels.
    assert report.depth_range.far < 4.5


def test_user_near_far_and_16_bit(shot, tmp_path):
    (depth, rays), = _frames_with_rays(shot, [3])
    job, report = _render(shot, tmp_path, frame_start=3, frame_end=3, depth_bits=16,
                          depth_range=(1.5, 9.0), depth_mode="linear")
    assert (report.depth_range.near, report.depth_range.far) == (1.5, 9.0)
    image = read_png(tmp_path / "depth_0003.png")
    assert image.dtype == np.uint16
    expected = encode_depth(np.array([[r[0] for r in rays.values()]], np.float32), DepthRange(1.5, 9.0),
                            mode="linear", bit_depth=16)[0]
    ours = np.array([image[y, x] for x, y in rays])
    close = np.abs(ours.astype(np.int64) - expected.astype(np.int64)) <= 8
    assert close.mean() >= 0.995
    assert len(np.unique(image)) > 1000, "16 bits are used"


def _depth_now(scene, frame=3):
    reader = SceneTriangles("scene", [scene.objects["DemoCharacter"]])
    out = []
    sample_frames(scene, [frame], [], scene.camera, *SIZE,
                  each_frame=lambda _i, g, w2c, p: out.append(depth_maps.depth_image(reader.read(g, w2c), p, *SIZE)))
    return out[0], reader


def test_objects_the_render_hides_are_absent_and_holdouts_are_holes(shot):
    before, _ = _depth_now(shot)
    # A screen right in front of the camera, hidden from the render in every way Blender has.
    camera = shot.camera
    front = camera.matrix_world @ Vector((0, 0, -1.0))
    hidden = bpy.data.collections.new("Hidden")
    shot.collection.children.link(hidden)
    excluded = bpy.data.collections.new("Excluded")
    shot.collection.children.link(excluded)
    blockers = [_box(shot, "NoRender", front, (3, 3, 3)), _box(shot, "NoCamera", front, (3, 3, 3)),
                _box(shot, "InHidden", front, (3, 3, 3), hidden),
                _box(shot, "InExcluded", front, (3, 3, 3), excluded)]
    blockers[0].hide_render = True
    blockers[1].visible_camera = False
    hidden.hide_render = True
    bpy.context.view_layer.layer_collection.children["Excluded"].exclude = True
    after, reader = _depth_now(shot)
    assert np.array_equal(before, after)
    assert reader.unevaluated == []

    # A small holdout between the camera and the character: background where it covers.
    holdout = _box(shot, "Holdout", camera.matrix_world @ Vector((0, 0, -1.5)), (0.2, 0.2, 0.2))
    as_box, _ = _depth_now(shot)
    covered = as_box != before
    assert covered.sum() > 100
    holdout.is_holdout = True
    with_holdout, _ = _depth_now(shot)
    assert np.isinf(with_holdout[covered]).all()
    assert np.array_equal(with_holdout[~covered], before[~covered])


def test_object_hidden_in_the_viewport_is_named(shot):
    shot.objects["Crate"].hide_set(True)
    _, reader = _depth_now(shot)
    assert reader.unevaluated == ["Crate"]


def test_instanced_collection_counts(shot):
    before, _ = _depth_now(shot)
    props = bpy.data.collections.new("Props")  # not in the scene: only its instances render
    _box(shot, "Pillar", (0, 0, 0), (0.3, 0.3, 1.6), props)
    placed = []
    for x in (-1.2, 1.6):
        empty = bpy.data.objects.new(f"Pillars{x}", None)
        empty.instance_type, empty.instance_collection = "COLLECTION", props
        empty.location = (x, 1.2, 0.8)
        shot.collection.objects.link(empty)
        placed.append(empty)
    after, _ = _depth_now(shot)
    changed = np.isfinite(after) & (after < before - 0.1)
    assert changed.sum() > 200, "both instances stand in front of the wall"
    left, right = changed[:, :SIZE[0] // 2].sum(), changed[:, SIZE[0] // 2:].sum()
    assert left > 50 and right > 50
    # Against the ray casts (they see instances too).
    graph_results = _frames_with_rays(shot, [3])
    close, checked = _agreement(*graph_results[0])
    assert close >= 0.995 * checked


def test_batch_poses_depth_writes_maps_and_refuses_to_overwrite(shot, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["poses", "--out", str(out), "--frames", "2-4", "--depth", "--depth-bits", "16"]
    assert batch.main(argv, scene=shot) == 0
    assert sorted(p.name for p in out.glob("depth_*.png")) == [f"depth_000{i}.png" for i in (2, 3, 4)]
    assert read_png(out / "depth_0003.png").dtype == np.uint16
    assert "pose and depth map(s)" in capsys.readouterr().out

    stamp = (out / "depth_0003.png").stat().st_mtime_ns
    assert batch.main(argv, scene=shot) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    # A depth map alone (say from an earlier run) is not overwritten either.
    for path in out.glob("pose_*.png"):
        path.unlink()
    assert batch.main(argv, scene=shot) == 2
    assert (out / "depth_0003.png").stat().st_mtime_ns == stamp
    # Pose maps alone, allowed to overwrite: the old depth maps go, they no longer match.
    assert batch.main(["poses", "--out", str(out), "--frames", "2-4", "--overwrite"], scene=shot) == 0
    assert not list(out.glob("depth_*.png")) and len(list(out.glob("pose_*.png"))) == 3


@pytest.mark.parametrize("text", ["5,1", "0,3", "a,b", "2"])
def test_bad_depth_range_is_a_usage_error(text):
    with pytest.raises(SystemExit):
        batch.build_parser().parse_args(["poses", "--out", "x", "--depth", "--depth-range", text])


def test_bad_depth_options_are_named(shot, tmp_path):
    with pytest.raises(pose_maps.JobError, match="near < far"):
        pose_maps.plan_job(shot, output_dir=str(tmp_path), depth=True, depth_range=(4.0, 2.0))
    with pytest.raises(pose_maps.JobError, match="depth subject"):
        pose_maps.plan_job(shot, output_dir=str(tmp_path), depth=True, depth_subject="props")


def test_panel_settings_reach_the_job_and_generate_finds_the_depth_maps(shot, tmp_path):
    import posebridge
    from posebridge.operators.render_pose_maps import pose_settings
    from posebridge.render import generate_job

    posebridge.register()
    try:
        settings = shot.posebridge
        settings.depth, settings.depth_bits, settings.depth_subject = True, "16", "characters"
        settings.depth_use_range, settings.depth_near, settings.depth_far = True, 2.0, 6.0
        settings.use_scene_frames, settings.frame_start, settings.frame_end = False, 1, 2
        kwargs = pose_settings(shot)
        job = pose_maps.plan_job(shot, output_dir=str(tmp_path / "poses"), **kwargs)
        assert job.depth == depth_maps.DepthOptions("inverse", 16, "characters", (2.0, 6.0))
        pose_map_run.render_pose_maps(shot, job)
        # What Generate does with the folder it rendered into: depth maps go with the poses.
        request = generate_job.GenerateRequest("http://127.0.0.1:1", tmp_path / "gen", {}, "s",
                                               poses_dir=tmp_path / "poses")
        controls = generate_job._controls(request, job.frames)
        assert [c.depth.name for c in controls] == ["depth_0001.png", "depth_0002.png"]
        settings.depth = False
        assert "depth" in pose_settings(shot) and pose_settings(shot)["depth"] is False
    finally:
        posebridge.unregister()


def test_depth_off_keeps_pose_maps_as_they_were(shot, tmp_path):
    job = pose_maps.plan_job(shot, output_dir=str(tmp_path), frame_start=1, frame_end=3)
    assert job.depth is None
    report = pose_map_run.render_pose_maps(shot, job)
    assert report.frames_written == 3 and not list(tmp_path.glob("depth_*"))
    assert "depth map" not in report.summary(job)


def test_rigid_meshes_are_read_once_deformed_ones_every_frame(shot, monkeypatch):
    from posebridge.render import depth_scene

    reads = []
    original = depth_scene.read_mesh

    def counting(mesh):
        reads.append(mesh.original.name)
        return original(mesh)

    monkeypatch.setattr(depth_scene, "read_mesh", counting)
    reader = SceneTriangles("scene", [shot.objects["DemoCharacter"]])
    sample_frames(shot, [1, 2, 3], [], shot.camera, *SIZE,
                  each_frame=lambda _i, g, w2c, p: reader.read(g, w2c))
    assert reads.count("SkinnedArm") == 3
    # The limbs (one mesh shared by all, moved by their bones), the floor, the wall, the crate.
    assert sorted(n for n in reads if n != "SkinnedArm") == ["Crate", "DemoFloor", "DemoLimb", "Wall"]
