"""The pose-map job on the demo shot: files, content, scene untouched, errors named."""
import json
import re

import numpy as np
import pytest

import bpy

from posebridge.draw.png import read_png
from posebridge.draw.pose_map import COLORS
from posebridge.render import pose_map_run, pose_maps
from posebridge.render.demo_shot import build_demo_shot

FRAMES = 12


@pytest.fixture
def demo_scene(empty_scene):
    build_demo_shot(empty_scene, frame_count=FRAMES, resolution=(320, 240))
    empty_scene.frame_set(5)
    return empty_scene


def test_writes_maps_frame_json_and_comfyui_sequence(demo_scene, tmp_path):
    job = pose_maps.plan_job(demo_scene, output_dir=str(tmp_path), hands=True, face=True)
    report = pose_map_run.render_pose_maps(demo_scene, job)

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
    pose_map_run.render_pose_maps(demo_scene, job)
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
    pose_map_run.render_pose_maps(demo_scene, job)
    assert read_png(tmp_path / "pose_0001.png").shape == (96, 128, 3)
    assert (demo_scene.frame_current, render.resolution_x, render.resolution_y, render.engine,
            demo_scene.camera.name) == before


def test_cancel_keeps_finished_frames(demo_scene, tmp_path):
    job = pose_maps.plan_job(demo_scene, output_dir=str(tmp_path))
    report = pose_map_run.JobReport()
    steps = pose_map_run.run_job(demo_scene, job, report, workers=0)
    for _ in range(3):
        next(steps)
    steps.close()
    assert report.cancelled and report.frames_written == 3
    assert sorted(p.name for p in tmp_path.glob("pose_*.png")) == [f"pose_000{i}.png" for i in (1, 2, 3)]
    assert len(json.loads((tmp_path / "keypoints" / "sequence.json").read_text())) == 3
    assert demo_scene.frame_current == 5


def test_cancel_with_workers_keeps_the_first_frames_whole(empty_scene, tmp_path):
    """Frames handed to the workers at the cancel (a chunk at most) are finished and counted;
    the rest never start: the files are exactly the first N frames, and the report says N."""
    frames = 48
    build_demo_shot(empty_scene, frame_count=frames, resolution=(160, 120))
    job = pose_maps.plan_job(empty_scene, output_dir=str(tmp_path), hands=True, face=True)
    report = pose_map_run.JobReport()
    steps = pose_map_run.run_job(empty_scene, job, report, workers=2)
    for _ in range(3):
        next(steps)
    steps.close()
    written = report.frames_written
    assert report.cancelled and 3 <= written <= 3 + pose_map_run.CHUNK_FRAMES + 1 and written < frames
    assert sorted(p.name for p in tmp_path.glob("pose_*.png")) == [f"pose_{i:04d}.png" for i in range(1, written + 1)]
    for frame in range(1, written + 1):
        assert read_png(tmp_path / f"pose_{frame:04d}.png").any()
        json.loads((tmp_path / "keypoints" / f"pose_{frame:04d}_keypoints.json").read_text())
    assert len(json.loads((tmp_path / "keypoints" / "sequence.json").read_text())) == written
    assert not list(tmp_path.rglob(".*.tmp"))


@pytest.mark.parametrize("depth", [False, True], ids=["poses", "poses+depth"])
def test_workers_write_exactly_what_one_thread_writes(demo_scene, tmp_path, depth):
    folders = {}
    for workers in (0, 3):
        folder = tmp_path / f"w{workers}"
        job = pose_maps.plan_job(demo_scene, output_dir=str(folder), hands=True, face=True, depth=depth)
        report = pose_map_run.render_pose_maps(demo_scene, job, workers=workers)
        assert report.frames_written == FRAMES
        folders[workers] = {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    assert folders[0] == folders[3]
    names = {p.name for p in folders[0]}
    assert ("depth_0012.png" in names) == depth and "pose_0012_keypoints.json" in names


def test_worker_processes_that_cannot_start_leave_the_job_to_blenders_thread(demo_scene, tmp_path, monkeypatch):
    """Real children that die at start (their function does not exist): every frame is drawn
    on Blender's thread instead, the same files, and the report says why."""
    from posebridge.workers.processes import WorkerProcesses

    monkeypatch.setattr(pose_map_run, "WorkerProcesses",
                        lambda target, count: WorkerProcesses("draw.no_such_module:write_plain", count))
    job = pose_maps.plan_job(demo_scene, output_dir=str(tmp_path / "broken"), hands=True, face=True)
    report = pose_map_run.render_pose_maps(demo_scene, job, workers=2)
    assert report.frames_written == FRAMES and "ended unexpectedly" in report.workers_failed
    assert "drawn on Blender's thread after the worker processes failed" in report.summary(job)
    monkeypatch.undo()
    reference = pose_maps.plan_job(demo_scene, output_dir=str(tmp_path / "reference"), hands=True, face=True)
    pose_map_run.render_pose_maps(demo_scene, reference, workers=0)
    for frame in job.frames:
        assert job.pose_path(frame).read_bytes() == reference.pose_path(frame).read_bytes()


def test_no_python_to_start_workers_with_leaves_the_job_to_blenders_thread(demo_scene, tmp_path, monkeypatch):
    import sys

    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    job = pose_maps.plan_job(demo_scene, output_dir=str(tmp_path / "out"))
    report = pose_map_run.render_pose_maps(demo_scene, job, workers=2)
    assert report.frames_written == FRAMES and "cannot start a worker process" in report.workers_failed


def test_a_folder_failing_mid_job_is_named_and_the_frames_before_it_stay(demo_scene, tmp_path):
    """The keypoints folder turns into a file mid-job (a real OS error, whoever runs the test):
    the job stops with an error naming the folder, the frames before the failure are whole."""
    job = pose_maps.plan_job(demo_scene, output_dir=str(tmp_path), hands=True, face=True)
    report = pose_map_run.JobReport()
    steps = pose_map_run.run_job(demo_scene, job, report, workers=2)
    while report.frames_written < 4:
        next(steps)
    keypoints = tmp_path / "keypoints"
    keypoints.rename(tmp_path / "moved")
    keypoints.write_text("not a folder any more")
    with pytest.raises(pose_maps.JobError, match=rf"cannot write frame \d+ to {re.escape(str(keypoints))}"):
        for _ in steps:
            pass
    written = report.frames_written
    assert 4 <= written < FRAMES and not report.cancelled
    for frame in range(1, written + 1):
        assert read_png(tmp_path / f"pose_{frame:04d}.png").any()
    # A temporary being written when the folder moved went with it: only the moved folder may
    # hold one.
    left = [p for p in tmp_path.rglob(".*.tmp") if p.parent.name != "moved"]
    assert not left, "nothing half-written is left"


def test_a_full_disk_is_named(demo_scene, tmp_path, monkeypatch):
    """ENOSPC from the file system (simulated at the one place every file is written: no test
    machine lets us fill a disk; on Blender's thread, where the simulation reaches) ends the job
    with the folder and the reason."""
    import errno
    import os

    from posebridge.pose.formats import atomic_file

    real_replace, calls = os.replace, []

    def replace_until_full(src, dst):
        calls.append(dst)
        if len(calls) > 9:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(atomic_file.os, "replace", replace_until_full)
    job = pose_maps.plan_job(demo_scene, output_dir=str(tmp_path), depth=True)
    with pytest.raises(pose_maps.JobError, match="No space left on device") as raised:
        pose_map_run.render_pose_maps(demo_scene, job, workers=0)
    assert str(tmp_path) in str(raised.value)
    assert not list(tmp_path.rglob(".*.tmp"))
    for path in tmp_path.glob("*.png"):  # whatever was written is whole
        assert read_png(path).shape[:2] == (240, 320)


def test_character_out_of_frame_has_no_points(demo_scene, tmp_path):
    demo_scene.camera.rotation_euler.z += 3.1416  # look away from the character
    job = pose_maps.plan_job(demo_scene, output_dir=str(tmp_path), frame_start=1, frame_end=1)
    report = pose_map_run.render_pose_maps(demo_scene, job)
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
    report = pose_map_run.render_pose_maps(demo_scene, job)
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
