"""Occlusion-aware keypoints (issue 5): a keypoint the scene hides from the camera is absent from
the JSON and the map. Checked against Blender's own ray casts from the camera to every keypoint:
a wall before the legs, the torso before the far arm in a side view; no occluder changes nothing;
the depth pass's raster is shared; the batch flag and the panel toggle reach the job."""
import json

import bpy
import numpy as np
import pytest
from mathutils import Matrix, Vector

import posebridge
from posebridge import batch
from posebridge.draw.occlusion import joint_radii
from posebridge.draw.png import read_png
from posebridge.pose.layouts import OPENPOSE_FULL
from posebridge.pose.rigmap import evaluate
from posebridge.render import occlusion as render_occlusion
from posebridge.render import pose_map_run, pose_maps
from posebridge.render.demo_shot import build_demo_shot
from posebridge.render.sampling import sample_frames

import rigs  # tests/blender's scene builders

FRAMES = 24
SIZE = (384, 384)
IDX = OPENPOSE_FULL.index
LOWER = ("r_knee", "r_ankle", "l_knee", "l_ankle")
UPPER = ("nose", "neck", "r_shoulder", "l_shoulder", "r_eye", "l_eye")
BODY = {"Torso"} | {f"Demo_{part}.{side}" for part in ("upper_arm", "forearm", "hand") for side in "LR"}


def _box(scene, name, centre, size, bone_of=None):
    """A box object; with ``bone_of`` (armature, bone) parented to that bone where it stands."""
    obj = rigs.add_box(scene, name, centre, size)
    if bone_of:
        obj.parent, obj.parent_type, obj.parent_bone = bone_of[0], "BONE", bone_of[1]
        obj.matrix_world = Matrix.Translation(centre)
    return obj


@pytest.fixture
def shot(empty_scene):
    """The demo character (bone-parented limbs) with a torso box on its spine: a body mesh."""
    armature, _ = build_demo_shot(empty_scene, frame_count=FRAMES, resolution=SIZE)
    _box(empty_scene, "Torso", (0, 0.02, 1.28), (0.26, 0.2, 0.5), (armature, "spine.002"))
    empty_scene.frame_set(1)
    return empty_scene


@pytest.fixture
def walled(shot):
    """A low wall between the camera and the character: it covers the legs up to mid-thigh."""
    _box(shot, "Wall", (0, -1.0, 0.45), (3, 0.2, 0.9))
    return shot


def _side_view(scene):
    """The camera on the character's right, a little to the front: the left arm is the far one."""
    camera = scene.camera
    camera.location = (-3.3, -0.8, 1.3)
    camera.rotation_euler = (Vector((0, 0, 1.2)) - camera.location).to_track_quat("-Z", "Y").to_euler()


def _keypoints(scene, frames, **kwargs):
    job = pose_maps.plan_job(scene, **kwargs)
    return pose_maps.sample_keypoints(scene, job, frames).data[:, 0]


def _ray_verdicts(scene, frames):
    """Per frame and keypoint, independently of our raster: (hidden, name of the first object hit)
    from scene.ray_cast from the camera to the keypoint, hidden when that hit is nearer than the
    keypoint by more than the keypoint's radius (the same rule, Blender's geometry query)."""
    job = pose_maps.plan_job(scene)
    character = job.characters[0]
    rigs, _ = sample_frames(scene, frames, [character.armature])
    points, present = evaluate(character.rigmap, rigs[0].bone_names, rigs[0].matrices, rigs[0].lengths)
    radii = joint_radii(points, present, OPENPOSE_FULL)
    hidden = np.zeros(present.shape, bool)
    names = np.full(present.shape, None, object)
    for f, frame in enumerate(frames):
        scene.frame_set(frame)
        graph = bpy.context.evaluated_depsgraph_get()
        origin = scene.camera.evaluated_get(graph).matrix_world.translation.copy()
        for p in np.flatnonzero(present[f]):
            line = Vector(points[f, p]) - origin
            hit, location, _n, _i, obj, _m = scene.ray_cast(graph, origin, line.normalized(), distance=line.length)
            if hit:
                names[f, p] = obj.name
                hidden[f, p] = (location - origin).length < line.length - radii[f, p]
    return hidden, names


def _check_against_rays(scene, frames):
    """(ours hidden, rays hidden, first hits, in frame); asserts they agree for nearly all points."""
    off = _keypoints(scene, frames)
    on = _keypoints(scene, frames, occlusion=True)
    in_frame = off[..., 2] > 0
    assert (on[..., 2] <= off[..., 2]).all(), "occlusion only removes points"
    assert np.array_equal(on[on[..., 2] > 0], off[on[..., 2] > 0]), "and moves none"
    ours = in_frame & (on[..., 2] == 0)
    rays, names = _ray_verdicts(scene, frames)
    agree = (ours == rays)[in_frame]
    # A sight line grazing a silhouette may meet the other surface than its pixel centre does.
    assert agree.mean() >= 0.97, f"{(~agree).sum()} of {agree.size} keypoints disagree"
    return ours, rays, names, in_frame


def test_wall_hides_the_legs_as_blender_ray_casts_say(walled):
    frames = [1, 7, 13, 19]
    ours, rays, names, in_frame = _check_against_rays(walled, frames)
    for point in LOWER:
        assert ours[:, IDX(point)].all() and (names[:, IDX(point)] == "Wall").all(), point
    for point in UPPER:
        assert not ours[:, IDX(point)].any(), point
    # Whatever the first hit is the wall (half a metre and more in front of the character) is
    # hidden: that needs no tolerance at all.
    on_wall = in_frame & (names == "Wall")
    assert on_wall.sum() >= len(LOWER) * len(frames) and ours[on_wall].mean() >= 0.97
    # The character's own body hides some points too (the left hand behind its thigh).
    assert (ours & (names != "Wall") & (names != None)).any()  # noqa: E711


def test_far_arm_hides_behind_the_torso_in_a_side_view(shot):
    _side_view(shot)
    frames = [1, 10]
    ours, _, names, in_frame = _check_against_rays(shot, frames)
    assert ours[:, IDX("l_elbow")].all() and (names[:, IDX("l_elbow")] == "Torso").all()
    # The far wrist hangs behind the torso's edge, where the near hand passes in front of it.
    assert ours[:, IDX("l_wrist")].all() and all(n in BODY for n in names[:, IDX("l_wrist")])
    for point in ("r_shoulder", "r_elbow", "r_wrist", "nose", "r_hip", "r_knee", "r_ankle"):
        assert in_frame[:, IDX(point)].all() and not ours[:, IDX(point)].any(), point


def _render(scene, folder, **kwargs):
    job = pose_maps.plan_job(scene, output_dir=str(folder), **kwargs)
    return job, pose_map_run.render_pose_maps(scene, job)


def _body(folder, frame):
    document = json.loads((folder / "keypoints" / f"pose_{frame:04d}_keypoints.json").read_text())
    return np.array(document["people"][0]["pose_keypoints_2d"]).reshape(-1, 3)


def test_no_occluder_changes_nothing(empty_scene, tmp_path):
    """A bare armature on a floor: the keypoints, JSON and maps are those without occlusion."""
    build_demo_shot(empty_scene, frame_count=6, resolution=SIZE)
    for obj in [o for o in empty_scene.objects if o.name.startswith("Demo_")]:
        bpy.data.objects.remove(obj)
    off_job, off_report = _render(empty_scene, tmp_path / "off")
    on_job, report = _render(empty_scene, tmp_path / "on", occlusion=True)
    assert report.hidden == 0 and "0 keypoint(s) hidden by geometry" in report.summary(on_job)
    for frame in on_job.frames:
        for name in (f"pose_{frame:04d}.png", f"keypoints/pose_{frame:04d}_keypoints.json"):
            assert (tmp_path / "on" / name).read_bytes() == (tmp_path / "off" / name).read_bytes(), name
    assert (tmp_path / "on/keypoints/sequence.json").read_bytes() == (tmp_path / "off/keypoints/sequence.json").read_bytes()
    assert "hidden by geometry" not in off_report.summary(off_job)


def test_json_and_map_lack_the_hidden_points(walled, tmp_path):
    options = dict(frame_start=3, frame_end=4, hands=False, face=False)
    _render(walled, tmp_path / "off", **options)
    on_job, report = _render(walled, tmp_path / "on", occlusion=True, **options)
    assert report.hidden >= 2 * len(LOWER)
    assert f"{report.hidden} keypoint(s) hidden by geometry" in report.summary(on_job)
    for frame in (3, 4):
        off, on = _body(tmp_path / "off", frame), _body(tmp_path / "on", frame)
        lower = [IDX(p) for p in LOWER]
        assert (off[lower, 2] > 0).all() and (on[lower] == 0).all()
        kept = on[:, 2] > 0
        assert np.array_equal(on[kept], off[kept]) and kept[[IDX(p) for p in UPPER]].all()
        off_map = read_png(tmp_path / "off" / f"pose_{frame:04d}.png")
        on_map = read_png(tmp_path / "on" / f"pose_{frame:04d}.png")
        for x, y, _ in off[lower]:
            assert off_map[int(y), int(x)].any() and not on_map[int(y), int(x)].any(), (frame, x, y)
        # The preview shows what the job wrote.
        assert np.array_equal(pose_maps.preview_map(walled, on_job, frame), on_map)


def test_depth_pass_raster_is_shared_and_holdouts_hide(walled, tmp_path, monkeypatch):
    frames = [2, 9]
    alone = _keypoints(walled, frames, occlusion=True)

    def no_second_raster(*_args):
        raise AssertionError("occlusion rasterised the frame again beside the depth pass")

    monkeypatch.setattr(render_occlusion.SurfaceFrames, "collector", no_second_raster)
    for subject in ("scene", "characters"):
        job, _ = _render(walled, tmp_path / subject, frame_start=2, frame_end=9, depth=True,
                         depth_subject=subject, occlusion=True)
        for f, frame in enumerate(frames):
            body = _body(tmp_path / subject, frame)
            assert np.allclose(body[:, 2], alone[f, :18, 2]), subject
            assert np.allclose(body[:, :2], alone[f, :18, :2], atol=0.006)  # JSON: 2 decimals
        # The depth maps themselves are those of a depth-only job.
        _render(walled, tmp_path / f"{subject}-depth", frame_start=2, frame_end=2, depth=True, depth_subject=subject,
                depth_range=(1.0, 8.0))
        _render(walled, tmp_path / f"{subject}-both", frame_start=2, frame_end=2, depth=True, depth_subject=subject,
                depth_range=(1.0, 8.0), occlusion=True)
        assert np.array_equal(read_png(tmp_path / f"{subject}-depth/depth_0002.png"),
                              read_png(tmp_path / f"{subject}-both/depth_0002.png"))
    monkeypatch.undo()
    # A holdout wall shows background in the render: it hides the legs all the same.
    walled.objects["Wall"].is_holdout = True
    assert np.array_equal(_keypoints(walled, frames, occlusion=True), alone)


def test_batch_poses_occlusion(walled, tmp_path, capsys):
    out = tmp_path / "out"
    assert batch.main(["poses", "--out", str(out), "--frames", "5-6", "--occlusion"], scene=walled) == 0
    assert "keypoint(s) hidden by geometry" in capsys.readouterr().out
    body = _body(out, 5)
    assert (body[[IDX(p) for p in LOWER], 2] == 0).all() and (body[[IDX(p) for p in UPPER], 2] > 0).all()
    assert batch.build_parser().parse_args(["poses", "--out", "x"]).occlusion is False


class _Recorder:
    """Just enough of a UI layout to see which properties a panel draws."""

    def __init__(self):
        self.seen = []

    def _child(self, *_args, **_kwargs):
        return self

    row = column = box = split = _child

    def prop(self, data, name, **_kwargs):
        assert name in data.bl_rna.properties
        self.seen.append(name)

    def __getattr__(self, _name):
        return lambda *_args, **_kwargs: None


def test_panel_toggle_reaches_the_job(shot):
    from posebridge.operators.render_pose_maps import pose_settings
    from posebridge.panels.pose_maps import POSEBRIDGE_PT_pose_maps

    posebridge.register()
    try:
        assert pose_settings(shot)["occlusion"] is False
        shot.posebridge.occlusion = True
        kwargs = pose_settings(shot)
        assert kwargs["occlusion"] is True and pose_maps.plan_job(shot, **kwargs).occlusion
        layout = _Recorder()
        POSEBRIDGE_PT_pose_maps.draw(type("Drawn", (), {"layout": layout})(), bpy.context)
        assert "occlusion" in layout.seen
    finally:
        posebridge.unregister()
