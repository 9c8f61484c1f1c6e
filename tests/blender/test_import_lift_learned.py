"""The learned lift (``--lift learned``) in real Blender: the whole import through the batch
command, and onto other proportions; the image directions of the limbs and the rig's bone
lengths hold within the geometric lift's bounds (``test_import_pose``)."""
import os
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest

import rigs
from posebridge.pose.formats import openpose_json
from posebridge.render import pose_maps
from posebridge.render.demo_shot import build_demo_shot
from posebridge.render.import_pose import ImportPoseError, import_pose

from limb_metrics import direction_errors
from test_import_pose import FRAMES, keypoints, posed_lengths, rest_lengths, scale_limbs, walk_shot  # noqa: F401

REPO = Path(__file__).resolve().parents[2]


def test_import_pose_command_with_the_learned_lift(tmp_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    frames = list(range(1, 25))
    build_demo_shot(scene, frame_count=len(frames), resolution=(256, 256))
    job = pose_maps.plan_job(scene, hands=True, face=False)
    seq = pose_maps.sample_keypoints(scene, job, frames)
    folder = tmp_path / "keypoints"
    folder.mkdir()
    for i in range(len(frames)):
        openpose_json.write_frame(seq, i, folder)
    shot, out = tmp_path / "shot.blend", tmp_path / "out.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(shot))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    result = subprocess.run(
        [sys.executable, str(REPO / "cli.py"), "--blend", str(shot), "import-pose", "--keypoints", str(folder),
         "--armature", "DemoCharacter", "--canvas", "256x256", "--lift", "learned", "--camera-tilt", "scene",
         "--save", str(out)],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"Imported {len(frames)} frame(s) onto DemoCharacter" in result.stdout
    assert "learned depth:" in result.stdout, "the report names the frames to check"
    assert "camera tilt from the scene camera:" in result.stdout, "the report says what the network was told"
    bpy.ops.wm.open_mainfile(filepath=str(out))
    again = pose_maps.sample_keypoints(bpy.context.scene, pose_maps.plan_job(bpy.context.scene, hands=True, face=False),
                                       frames)
    errors = direction_errors(again, seq)
    print(f"\n--lift learned through the command: direction error mean {errors.mean():.4f} deg, "
          f"max {errors.max():.4f} deg")
    assert errors.mean() <= 2.0


def test_learned_lift_keeps_directions_and_bone_lengths(walk_shot):  # noqa: F811
    scene, camera, observed = walk_shot
    target = rigs.build_rigify_metarig("long_legs")
    scale_limbs(target, {"upper_arm.{side}": 0.8, "forearm.{side}": 0.8, "thigh.{side}": 1.25, "shin.{side}": 1.25})
    lengths = rest_lengths(target)
    report = import_pose(target, observed, camera, scene, lift_mode="learned")
    errors = direction_errors(observed, keypoints(scene, "long_legs", FRAMES))
    print(f"\nlearned lift, arms 0.8x, legs 1.25x: direction error mean {errors.mean():.5f} deg, "
          f"max {errors.max():.5f} deg; {report.depth_note}")
    assert errors.mean() <= 2.0
    assert report.depth_note.startswith("learned depth:")
    posed = posed_lengths(target, FRAMES[::9])
    np.testing.assert_allclose(posed, np.broadcast_to(list(lengths.values()), posed.shape), rtol=1e-4, atol=1e-6)
    with pytest.raises(ImportPoseError, match="unknown lift 'deep'"):
        import_pose(target, observed, camera, scene, lift_mode="deep")
    with pytest.raises(ImportPoseError, match="unknown camera tilt 'sky'"):
        import_pose(target, observed, camera, scene, camera_tilt="sky")


def test_the_camera_tilt_can_come_from_the_image_alone(walk_shot):  # noqa: F811
    """With ``camera_tilt="image"`` (a scene camera not matched to the shot) the network reads
    the tilt from the keypoints; the image directions and bone lengths hold all the same."""
    scene, camera, observed = walk_shot
    target = rigs.build_rigify_metarig("tilt_from_image")
    report = import_pose(target, observed, camera, scene, lift_mode="learned", camera_tilt="image")
    errors = direction_errors(observed, keypoints(scene, "tilt_from_image", FRAMES))
    assert errors.mean() <= 2.0
    assert "camera tilt read from the image" in report.depth_note


def _rig_points_in_camera(scene, name, frames):
    """The armature's keypoints (its rig map) in the scene camera's frame, as a detector's 3-D
    body reads them: (frames, points, 3), x right, y down, z away, metres."""
    from posebridge.pose.rigmap import evaluate
    from posebridge.render import rig_presets
    from posebridge.render.sampling import sample_frames

    obj = scene.objects[name]
    (rig,), projection = sample_frames(scene, frames, [obj], scene.camera, 256, 256)
    points, present = evaluate(rig_presets.rigmap_for(obj)[0], rig.bone_names, rig.matrices, rig.lengths)
    to_camera = projection.world_to_camera
    in_camera = np.einsum("fij,fkj->fki", to_camera[:, :3, :3], points) + to_camera[:, None, :3, 3]
    return in_camera * np.array([1.0, -1.0, -1.0]), present


def _limb_errors(truth, lifted, layout):
    names = [(f"{s}_{a}", f"{s}_{b}") for s in "lr" for a, b in (("shoulder", "elbow"), ("elbow", "wrist"),
                                                                  ("hip", "knee"), ("knee", "ankle"))]
    out = []
    for a, b in names:
        u = truth[:, layout.index(b)] - truth[:, layout.index(a)]
        v = lifted[:, layout.index(b)] - lifted[:, layout.index(a)]
        cos = np.sum(u * v, -1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
        out.append(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
    return np.concatenate(out)


def test_a_3d_witness_beside_the_keypoints_weighs_in_and_is_reported(tmp_path):
    """An extraction's world.json (MediaPipe's 3-D body) beside the keypoints: the import reads
    it as a second witness to depth and says who decided; a witness that is right (here the
    rig's own 3-D) brings the arms and legs closer to the truth in 3-D than the lifter alone."""
    import json

    from posebridge.pose.layouts import COCO18, OPENPOSE_FULL
    from posebridge.render import import_job

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    frames = list(range(1, 49))
    build_demo_shot(scene, frame_count=len(frames), resolution=(256, 256))
    seq = pose_maps.sample_keypoints(scene, pose_maps.plan_job(scene, hands=False, face=False), frames)
    folder = tmp_path / "keypoints"
    folder.mkdir()
    for i in range(len(frames)):
        openpose_json.write_frame(seq, i, folder)
    truth, present = _rig_points_in_camera(scene, "DemoCharacter", frames)
    body = [OPENPOSE_FULL.index(n) for n in COCO18.points]
    hips = truth[:, [OPENPOSE_FULL.index("r_hip"), OPENPOSE_FULL.index("l_hip")]].mean(1, keepdims=True)
    rows = np.concatenate([truth[:, body] - hips, present[:, body, None].astype(float)], -1)
    document = {"format": "posebridge-world", "version": 1, "source": "mediapipe", "layout": "coco18",
                "axes": "camera", "frames": [int(n) for n in seq.frame_numbers], "points": rows.round(4).tolist()}

    def imported(with_witness):
        if with_witness:
            (tmp_path / "world.json").write_text(json.dumps(document))
        else:
            (tmp_path / "world.json").unlink(missing_ok=True)
        armature = scene.objects["DemoCharacter"]
        armature.animation_data.action = None
        summary = import_job.run_import(scene, import_job.ImportOptions(
            keypoints=str(folder), armature="DemoCharacter", canvas=(256, 256), lift="learned"))
        lifted, _ = _rig_points_in_camera(scene, "DemoCharacter", frames)
        return summary, _limb_errors(truth, lifted, OPENPOSE_FULL)

    alone, alone_errors = imported(False)
    witnessed, witnessed_errors = imported(True)
    print(f"\nlifter alone: 3-D limb error mean {alone_errors.mean():.2f} deg; with a right witness "
          f"{witnessed_errors.mean():.2f} deg; {witnessed.report.depth_note}")
    assert "mediapipe" not in alone.report.depth_note
    assert "read by the lifter and mediapipe: both, agreeing" in witnessed.report.depth_note
    assert witnessed_errors.mean() < alone_errors.mean()
    # As a video's frames at 48 fps, keyed at the scene's 24: the witness follows the keys' times.
    armature = scene.objects["DemoCharacter"]
    armature.animation_data.action = None
    resampled = import_job.run_import(scene, import_job.ImportOptions(
        keypoints=str(folder), armature="DemoCharacter", canvas=(256, 256), lift="learned", source_fps=48.0))
    assert resampled.report.frames == 24 and "read by the lifter and mediapipe: both, agreeing" in resampled.report.depth_note
    (tmp_path / "world.json").write_text("{")  # unreadable: reported, the lifter alone
    armature = scene.objects["DemoCharacter"]
    armature.animation_data.action = None
    broken = import_job.run_import(scene, import_job.ImportOptions(
        keypoints=str(folder), armature="DemoCharacter", canvas=(256, 256), lift="learned"))
    assert any(note.startswith("3-D landmarks not used:") for note in broken.notes)
