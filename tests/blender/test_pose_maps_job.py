"""The pose-map job on the demo shot: files, content, scene untouched, errors named."""
import json

import numpy as np
import pytest

import bpy

from posebridge.draw.png import read_png
from posebridge.draw.pose_map import COLORS
from posebridge.render import pose_maps
from posebridge.render.demo_shot import build_demo_shot

FRAMES = 12


@pytest.fixture
def demo_scene(empty_scene):
    build_demo_shot(empty_scene, frame_count=FRAMES, resolution=(320, 240))
    empty_scene.frame_set(5)
    return empty_scene


def test_writes_maps_frame_json_and_comfyui_sequence(demo_scene, tmp_path):
    job = pose_maps.plan_job(demo_scene, output_dir=str(tmp_path), hands=True, face=True)
    report = pose_maps.render_pose_maps(demo_scene, job)

    assert report.frames_written == FRAMES and not report.cancelled
    for frame in range(1, FRAMES + 1):
        image = read_png(tmp_path / f"pose_{frame:04d}.png")
        assert image.shape == (240, 320, 3) and image.dtype == np.uint8
        assert image.any()
    document = json.loads((tmp_path / "keypoints" / "pose_0003_keypoints.json").read_text())
    assert document["version"] == 1.3
    (person,) = document["people"]
    assert len(person["pose_keypoints_2d"]) == 54
    assert len(person["hand_left_keypoints_2d"]) == 63
    assert len(person["face_keypoints_2d"]) == 210
    body = np.array(person["pose_keypoints_2d"]).reshape(-1, 3)
    assert (body[:, 2] > 0).all(), "the whole demo body is in view"
    assert ((body[:, 0] >= 0) & (body[:, 0] < 320) & (body[:, 1] >= 0) & (body[:, 1] < 240)).all()

    sequence = json.loads((tmp_path / "keypoints" / "sequence.json").read_text())
    assert len(sequence) == FRAMES
    assert sequence[0]["canvas_width"] == 320 and sequence[0]["canvas_height"] == 240
    assert sequence[2]["people"][0]["pose_keypoints_2d"] == person["pose_keypoints_2d"]


def test_joint_dots_sit_at_the_json_keypoints(demo_scene, tmp_path):
    job = pose_maps.plan_job(demo_scene, output_dir=str(tmp_path), hands=False, face=False)
    pose_maps.render_pose_maps(demo_scene, job)
    image = read_png(tmp_path / "pose_0007.png")
    document = json.loads((tmp_path / "keypoints" / "pose_0007_keypoints.json").read_text())
    body = np.array(document["people"][0]["pose_keypoints_2d"]).reshape(-1, 3)
    # Hands and face off: the JSON says so with empty lists, as OpenPose does.
    assert document["people"][0]["hand_left_keypoints_2d"] == []
    assert document["people"][0]["face_keypoints_2d"] == []
    # The last joints drawn (ears) are on top: their dot has their colour at their point.
    for index in (16, 17):
        x, y = int(body[index, 0]), int(body[index, 1])
        assert tuple(image[y, x]) == tuple(COLORS[index])


def test_scene_left_unchanged(demo_scene, tmp_path):
    render = demo_scene.render
    before = (demo_scene.frame_current, render.resolution_x, render.resolution_y, render.engine,
              demo_scene.camera.name)
    job = pose_maps.plan_job(demo_scene, output_dir=str(tmp_path), resolution=(128, 96))
    pose_maps.render_pose_maps(demo_scene, job)
    assert read_png(tmp_path / "pose_0001.png").shape == (96, 128, 3)
    assert (demo_scene.frame_current, render.resolution_x, render.resolution_y, render.engine,
            demo_scene.camera.name) == before


def test_cancel_keeps_finished_frames(demo_scene, tmp_path):
    job = pose_maps.plan_job(demo_scene, output_dir=str(tmp_path))
    report = pose_maps.JobReport()
    steps = pose_maps.run_job(demo_scene, job, report)
    for _ in range(3):
        next(steps)
    steps.close()
    assert report.cancelled and report.frames_written == 3
    assert sorted(p.name for p in tmp_path.glob("pose_*.png")) == [f"pose_000{i}.png" for i in (1, 2, 3)]
    assert len(json.loads((tmp_path / "keypoints" / "sequence.json").read_text())) == 3
    assert demo_scene.frame_current == 5


def test_character_out_of_frame_has_no_points(demo_scene, tmp_path):
    demo_scene.camera.rotation_euler.z += 3.1416  # look away from the character
    job = pose_maps.plan_job(demo_scene, output_dir=str(tmp_path), frame_start=1, frame_end=1)
    report = pose_maps.render_pose_maps(demo_scene, job)
    assert report.people_per_frame == [0]
    assert not read_png(tmp_path / "pose_0001.png").any(), "nothing drawn, not even at the origin"
    assert json.loads((tmp_path / "keypoints" / "pose_0001_keypoints.json").read_text())["people"] == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"armature_names": ["Nobody"]}, "unknown armature 'Nobody'"),
        ({"armature_names": ["DemoFloor"]}, "not an armature"),
        ({"camera_name": "NoCam"}, "NoCam"),
        ({"frame_start": 10, "frame_end": 3}, "empty frame range 10-3"),
    ],
)
def test_bad_input_is_named(demo_scene, tmp_path, kwargs, message):
    with pytest.raises(pose_maps.JobError, match=message):
        pose_maps.plan_job(demo_scene, output_dir=str(tmp_path), **kwargs)


def test_no_camera_and_unwritable_folder_are_named(demo_scene, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(pose_maps.JobError, match="cannot create output folder"):
        pose_maps.plan_job(demo_scene, output_dir=str(blocker / "out"))
    demo_scene.camera = None
    with pytest.raises(pose_maps.JobError, match="camera"):
        pose_maps.plan_job(demo_scene, output_dir=str(tmp_path))


def test_rig_no_preset_fits_is_named(empty_scene, tmp_path):
    build_demo_shot(empty_scene, frame_count=2, resolution=(64, 64))
    odd = bpy.data.objects.new("Tentacle", bpy.data.armatures.new("Tentacle"))
    empty_scene.collection.objects.link(odd)
    with pytest.raises(pose_maps.JobError, match="Tentacle"):
        pose_maps.plan_job(empty_scene, output_dir=str(tmp_path), armature_names=["Tentacle"])
    # Without names the unfit armature is simply not a character.
    job = pose_maps.plan_job(empty_scene, output_dir=str(tmp_path))
    assert [c.armature.name for c in job.characters] == ["DemoCharacter"]


def test_rig_made_poses_match_controlnet_aux(demo_scene):
    """Maps of the demo rig's own poses (hands and face included) against controlnet_aux."""
    from controlnet_reference import assert_matches, load_dwpose_util

    util = load_dwpose_util()
    for size in ((512, 512), (640, 360)):
        job = pose_maps.plan_job(demo_scene, resolution=size, hands=True, face=True)
        seq = pose_maps.sample_keypoints(demo_scene, job, [1, 6, 12])
        for index in range(seq.frame_count):
            hands = seq.part("hand_left")[index, 0, :, 2] > 0
            assert hands.sum() > 15 and seq.present[index].sum() > 60, "hands and face are drawn too"
            diff, drawn = assert_matches(util, seq.data[index], *size)
            assert diff == 0, f"{diff} of {drawn} pixels differ"


def test_relative_output_needs_a_saved_blend(demo_scene):
    with pytest.raises(pose_maps.JobError, match="save the .blend first"):
        pose_maps.plan_job(demo_scene, output_dir="//posebridge/")


def test_camera_switched_by_a_marker_is_followed(demo_scene, tmp_path):
    """Unnamed, the camera is the scene's at each frame, as the render would use it."""
    original = demo_scene.camera
    away = original.copy()
    demo_scene.collection.objects.link(away)
    away.rotation_euler.z += 3.1416  # sees nobody
    demo_scene.timeline_markers.new("start", frame=1).camera = original
    demo_scene.timeline_markers.new("cut", frame=7).camera = away
    job = pose_maps.plan_job(demo_scene, output_dir=str(tmp_path))
    report = pose_maps.render_pose_maps(demo_scene, job)
    assert report.people_per_frame == [1] * 6 + [0] * 6



def test_plain_renders_restore_a_video_output(demo_scene, tmp_path):
    from posebridge.render.plain_render import render_workbench_frames

    settings = demo_scene.render.image_settings
    if hasattr(settings, "media_type"):  # Blender 5.0+
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    (path,) = render_workbench_frames(demo_scene, [2], tmp_path, resolution=(64, 48))
    assert read_png(path).shape[:2] == (48, 64)
    assert settings.file_format == "FFMPEG" and demo_scene.frame_current == 5
