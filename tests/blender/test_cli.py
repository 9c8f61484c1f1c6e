"""The batch command: module mode and Blender's ``-- args`` form as real processes, errors in-process."""
import json
import os
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest

from posebridge import batch
from posebridge.draw.png import read_png
from posebridge.render.demo_shot import build_demo_shot

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / "cli.py"


@pytest.fixture(scope="module")
def shot_blend(tmp_path_factory):
    """The demo shot saved as a .blend, 6 frames at 160x120."""
    path = tmp_path_factory.mktemp("shot") / "shot.blend"
    bpy.ops.wm.read_factory_settings(use_empty=True)
    build_demo_shot(bpy.context.scene, frame_count=6, resolution=(160, 120))
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


def run_cli(*args, cwd=REPO):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


def test_module_mode_renders_poses_with_hands_and_face(shot_blend, tmp_path):
    out = tmp_path / "out"
    result = run_cli(CLI, "--blend", shot_blend, "poses", "--out", out, "--frames", "2-4", "--hands", "--face",
                     "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.glob("pose_*.png")) == ["pose_0002.png", "pose_0003.png", "pose_0004.png"]
    assert read_png(out / "pose_0003.png").shape == (120, 160, 3)
    person = json.loads((out / "keypoints" / "pose_0003_keypoints.json").read_text())["people"][0]
    assert len(person["hand_right_keypoints_2d"]) == 63 and len(person["face_keypoints_2d"]) == 210
    assert "Wrote 3 pose map(s) 160x120" in result.stdout


def test_blender_style_arguments_after_double_dash(shot_blend, tmp_path):
    """What `blender -b shot.blend --python cli.py -- poses ...` does: the .blend is already open
    and the script sees Blender's argv with ours after `--`."""
    out = tmp_path / "out"
    script = (
        "import bpy, runpy, sys\n"
        f"bpy.ops.wm.open_mainfile(filepath={str(shot_blend)!r})\n"
        f"sys.argv = ['blender', '-b', {str(shot_blend)!r}, '--python', {str(CLI)!r}, '--', 'poses',"
        f" '--out', {str(out)!r}, '--resolution', '64x48', '--armature', 'DemoCharacter']\n"
        f"runpy.run_path({str(CLI)!r}, run_name='__main__')\n"
    )
    result = run_cli("-c", script)
    assert result.returncode == 0, result.stderr
    assert len(list(out.glob("pose_*.png"))) == 6
    person = json.loads((out / "keypoints" / "pose_0001_keypoints.json").read_text())["people"][0]
    assert person["hand_left_keypoints_2d"] == [], "hands are opt-in on the command line"
    assert read_png(out / "pose_0001.png").shape == (48, 64, 3)


def test_errors_exit_non_zero_with_the_problem(shot_blend, tmp_path):
    result = run_cli(CLI, "--blend", shot_blend, "poses", "--out", tmp_path, "--armature", "Ghost")
    assert result.returncode == 2
    assert "unknown armature 'Ghost'" in result.stderr
    result = run_cli(CLI, "--blend", tmp_path / "missing.blend", "poses", "--out", tmp_path)
    assert result.returncode == 2 and "no such .blend file" in result.stderr


def test_demo_command_writes_contact_sheet(tmp_path):
    result = run_cli(CLI, "demo", "--out", tmp_path / "demo", "--frames", "6", "--resolution", "96x96")
    assert result.returncode == 0, result.stderr
    sheet = read_png(tmp_path / "demo" / "contact_sheet.png")
    # Six rows of (render | pose map | depth map), all 96 px high, 8 px gaps.
    assert sheet.shape[0] == 8 + 6 * (96 + 8) and sheet.shape[1] == 8 + 3 * (96 + 8)
    pose = read_png(tmp_path / "demo" / "poses" / "pose_0006.png")
    depth = read_png(tmp_path / "demo" / "poses" / "depth_0006.png")
    render = read_png(tmp_path / "demo" / "renders" / "render_0006.png")
    assert pose.any() and render.std() > 5 and depth.std() > 5, "every column shows something"


@pytest.fixture
def shot_scene(shot_blend):
    bpy.ops.wm.open_mainfile(filepath=str(shot_blend))
    return bpy.context.scene


def run_in_process(scene, argv, capsys):
    code = batch.main(argv, scene=scene)
    return code, capsys.readouterr()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--camera", "NoSuchCam"], "NoSuchCam"),
        (["--frames", "9-2"], "empty frame range 9-2"),
        (["--armature", "DemoFloor"], "not an armature"),
    ],
)
def test_bad_arguments_are_named(shot_scene, tmp_path, capsys, extra, message):
    code, output = run_in_process(shot_scene, ["poses", "--out", str(tmp_path)] + extra, capsys)
    assert code == 2
    assert message in output.err


def test_no_camera_and_unfit_rig(shot_scene, tmp_path, capsys):
    odd = bpy.data.objects.new("Tentacle", bpy.data.armatures.new("Tentacle"))
    shot_scene.collection.objects.link(odd)
    code, output = run_in_process(shot_scene, ["poses", "--out", str(tmp_path), "--armature", "Tentacle"], capsys)
    assert code == 2 and "no rig preset fits armature 'Tentacle'" in output.err
    shot_scene.camera = None
    code, output = run_in_process(shot_scene, ["poses", "--out", str(tmp_path)], capsys)
    assert code == 2 and "no active camera" in output.err


def test_unwritable_folder(shot_scene, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, output = run_in_process(shot_scene, ["poses", "--out", str(blocker / "sub")], capsys)
    assert code == 2 and "cannot create output folder" in output.err


def test_existing_maps_need_overwrite(shot_scene, tmp_path, capsys):
    argv = ["poses", "--out", str(tmp_path), "--frames", "1-2"]
    assert run_in_process(shot_scene, argv, capsys)[0] == 0
    first = (tmp_path / "pose_0001.png").read_bytes()
    code, output = run_in_process(shot_scene, argv, capsys)
    assert code == 2 and "--overwrite" in output.err
    assert (tmp_path / "pose_0001.png").read_bytes() == first
    assert run_in_process(shot_scene, argv + ["--overwrite", "--line-widths", "proportional"], capsys)[0] == 0


def test_malformed_arguments_are_usage_errors(shot_scene, tmp_path, capsys):
    for argv in (["poses", "--out", str(tmp_path), "--frames", "one-two"],
                 ["poses", "--out", str(tmp_path), "--resolution", "512"],
                 ["poses", "--out", str(tmp_path), "--workers", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            batch.main(argv, scene=shot_scene)
        assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "frames must look like A-B" in err and "must be 0 or more, got -1" in err


def test_frames_outside_the_scene_range_are_allowed(shot_scene, tmp_path, capsys):
    code, _ = run_in_process(shot_scene, ["poses", "--out", str(tmp_path), "--frames", "10"], capsys)
    assert code == 0
    image = read_png(tmp_path / "pose_0010.png")
    assert image.shape == (120, 160, 3) and np.count_nonzero(image) > 0
