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
         "--armature", "DemoCharacter", "--canvas", "256x256", "--lift", "learned", "--save", str(out)],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"Imported {len(frames)} frame(s) onto DemoCharacter" in result.stdout
    assert "learned depth:" in result.stdout, "the report names the frames to check"
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
