"""Operators and settings, registered from the source tree (the zip install is tested apart)."""
import json

import bpy
import numpy as np
import pytest

import posebridge
from posebridge.operators import preview
from posebridge.draw.png import read_png
from posebridge.render import rig_presets
from posebridge.render.demo_shot import build_demo_shot


@pytest.fixture(scope="module", autouse=True)
def registered():
    posebridge.register()
    yield
    posebridge.unregister()


@pytest.fixture
def scene(tmp_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    build_demo_shot(scene, frame_count=4, resolution=(128, 128))
    scene.posebridge.output_dir = str(tmp_path / "maps")
    scene.posebridge.character_index = list(scene.objects).index(scene.objects["DemoCharacter"])
    return scene


def keypoints(folder, frame):
    return json.loads((folder / "keypoints" / f"pose_{frame:04d}_keypoints.json").read_text())["people"]


def test_render_operator_uses_panel_settings(scene, tmp_path):
    settings = scene.posebridge
    settings.use_scene_frames = False
    settings.frame_start, settings.frame_end = 2, 3
    settings.use_scene_resolution = False
    settings.resolution_x, settings.resolution_y = 96, 64
    settings.face = False
    assert bpy.ops.posebridge.render_pose_maps() == {"FINISHED"}
    out = tmp_path / "maps"
    assert sorted(p.name for p in out.glob("pose_*.png")) == ["pose_0002.png", "pose_0003.png"]
    (person,) = keypoints(out, 2)
    assert person["face_keypoints_2d"] == [] and len(person["hand_left_keypoints_2d"]) == 63
    assert (scene.render.resolution_x, scene.render.resolution_y) == (128, 128)


def test_render_operator_reports_bad_settings(scene):
    scene.posebridge.output_dir = ""
    with pytest.raises(RuntimeError, match="no output folder"):
        bpy.ops.posebridge.render_pose_maps()


def test_excluded_armature_is_not_rendered(scene):
    scene.objects["DemoCharacter"].posebridge.include = False
    with pytest.raises(RuntimeError, match="no rig preset fits|no armature"):
        bpy.ops.posebridge.render_pose_maps()


def test_preview_operator_makes_an_icon_without_writing(scene, tmp_path):
    assert bpy.ops.posebridge.preview_pose_map() == {"FINISHED"}
    assert preview.current_preview() is not None  # Blender loads its pixels when the panel draws
    image = read_png(preview.preview_path())
    assert image.shape == (128, 128, 3) and image.any()
    assert not (tmp_path / "maps").exists()


def test_custom_map_from_preset_renders_the_same_body(scene, tmp_path):
    character = scene.objects["DemoCharacter"]
    assert rig_presets.describe(character) == "Auto: Rigify metarig"
    bpy.ops.posebridge.render_pose_maps()
    preset_people = keypoints(tmp_path / "maps", 1)

    assert bpy.ops.posebridge.custom_map_from_preset() == {"FINISHED"}
    settings = character.posebridge
    assert settings.preset == "CUSTOM" and len(settings.custom_map) > 30
    assert settings.custom_head_bone == "spine.006"
    scene.posebridge.output_dir = str(tmp_path / "custom")
    bpy.ops.posebridge.render_pose_maps()
    custom_people = keypoints(tmp_path / "custom", 1)
    body_preset = np.array(preset_people[0]["pose_keypoints_2d"]).reshape(-1, 3)
    body_custom = np.array(custom_people[0]["pose_keypoints_2d"]).reshape(-1, 3)
    # Shoulders, elbows, wrists, hips, knees, ankles and the neck come from plain bone ends.
    limbs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    np.testing.assert_allclose(body_custom[limbs], body_preset[limbs], atol=0.01)
    assert (body_custom[:, 2] > 0).all(), "face points come from the head bone template"


def test_custom_map_edits_change_the_keypoint(scene, tmp_path):
    character = scene.objects["DemoCharacter"]
    bpy.ops.posebridge.custom_map_from_preset()
    settings = character.posebridge
    elbow = next(e for e in settings.custom_map if e.keypoint == "r_elbow")
    elbow.bone, elbow.anchor = "forearm.R", "TAIL"  # now the wrist position
    bpy.ops.posebridge.render_pose_maps()
    body = np.array(keypoints(tmp_path / "maps", 1)[0]["pose_keypoints_2d"]).reshape(-1, 3)
    np.testing.assert_allclose(body[3, :2], body[4, :2], atol=0.01)

    bpy.ops.posebridge.custom_map_add()
    settings.custom_map[-1].keypoint, settings.custom_map[-1].bone = "r_knee", "shin.R"
    settings.custom_map[-1].keypoint = "not_a_point"
    with pytest.raises(RuntimeError, match="unknown keypoint 'not_a_point'"):
        bpy.ops.posebridge.render_pose_maps()
    settings.custom_map_index = len(settings.custom_map) - 1
    assert bpy.ops.posebridge.custom_map_remove() == {"FINISHED"}
    assert bpy.ops.posebridge.render_pose_maps() == {"FINISHED"}


def test_settings_and_custom_map_survive_save_and_reload(scene, tmp_path):
    character = scene.objects["DemoCharacter"]
    bpy.ops.posebridge.custom_map_from_preset()
    count = len(character.posebridge.custom_map)
    scene.posebridge.hands = False
    path = tmp_path / "saved.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=str(path))
    reloaded = bpy.context.scene
    assert reloaded.posebridge.hands is False
    assert reloaded.objects["DemoCharacter"].posebridge.preset == "CUSTOM"
    assert len(reloaded.objects["DemoCharacter"].posebridge.custom_map) == count


def test_invoke_runs_the_job_when_nothing_would_be_replaced(scene, tmp_path):
    """From the UI the operator is invoked; without a window it runs to the end at once."""
    assert bpy.ops.posebridge.render_pose_maps("INVOKE_DEFAULT") == {"FINISHED"}
    assert len(list((tmp_path / "maps").glob("pose_*.png"))) == 4
