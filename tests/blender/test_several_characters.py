"""Several characters in one shot (issue 5): three armatures with different rigs and rig maps
(a Rigify metarig, a Mixamo-named rig, a rig mapped by the user's custom map), animated, seen by
one camera, plus an armature no map fits (a crane).

Checked against Blender itself and against controlnet_aux: each character is its own person in
every frame's JSON and map, with its own map's keypoints where bpy_extras projects its own
evaluated bones; the map equals controlnet_aux's drawing of the same people; ``--armature`` picks
exactly the named ones in the order given; a character out of frame has no entry in ``people``
and leaves the others unchanged; the panel lists each armature with the map it will use.
"""
import json
import math
import types

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

import posebridge
import rigs
from posebridge import batch
from posebridge.panels.pose_maps import POSEBRIDGE_PT_pose_maps, POSEBRIDGE_UL_characters
from posebridge.draw.png import read_png
from posebridge.draw.pose_map import draw_pose_map
from posebridge.pose.layouts import OPENPOSE_FULL
from posebridge.render import pose_map_run, pose_maps, rig_presets

WIDTH, HEIGHT = 320, 240
FRAMES = 12
IDX = OPENPOSE_FULL.index
SIDES = (("l", "left", 1.0), ("r", "right", -1.0))

# Body keypoints of each character that are one bone's head (keypoint -> bone).
RIGIFY_HEADS = {f"{p}_{joint}": f"{bone}.{s.upper()[0]}" for p, s, _ in SIDES for joint, bone in (
    ("shoulder", "upper_arm"), ("elbow", "forearm"), ("wrist", "hand"),
    ("hip", "thigh"), ("knee", "shin"), ("ankle", "foot"))}
MIXAMO_HEADS = {f"{p}_{joint}": f"mixamorig:{s.title()}{bone}" for p, s, _ in SIDES for joint, bone in (
    ("shoulder", "Arm"), ("elbow", "ForeArm"), ("wrist", "Hand"),
    ("hip", "UpLeg"), ("knee", "Leg"), ("ankle", "Foot"))}
CUSTOM_HEADS = {f"{p}_{joint}": f"{bone}_{s}" for p, s, _ in SIDES for joint, bone in (
    ("shoulder", "arm_up"), ("elbow", "arm_lo"), ("wrist", "paw"),
    ("hip", "leg_up"), ("knee", "leg_lo"), ("ankle", "hoof"))}
HEADS = {"Alice": RIGIFY_HEADS, "Bob": MIXAMO_HEADS, "Cleo": CUSTOM_HEADS}
CUSTOM_ROLES = {
    "l_thigh": "leg_up_left", "r_thigh": "leg_up_right", "l_shin": "leg_lo_left", "r_shin": "leg_lo_right",
    "l_upper_arm": "arm_up_left", "r_upper_arm": "arm_up_right", "l_forearm": "arm_lo_left",
    "r_forearm": "arm_lo_right", "head": "skull", "l_index": "paw_left", "r_index": "paw_right",
}


@pytest.fixture(scope="module", autouse=True)
def registered():
    """The object settings (include, preset, custom map) exist only once the add-on is registered."""
    posebridge.register()
    yield
    posebridge.unregister()


def build_custom_rig(name="Cleo", location=(2.0, 0.0, 0.0)):
    """A humanoid whose bone names no preset knows, mapped by a custom map (face on its skull)."""
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    for other in bpy.context.view_layer.objects:
        other.select_set(False)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    bones = {"pelvis": (None, (0, 0, 1.0), (0, 0, 1.2)), "chest": ("pelvis", (0, 0, 1.2), (0, 0, 1.5)),
             "skull": ("chest", (0, 0, 1.55), (0, 0, 1.8))}
    for _, side, s in SIDES:
        bones.update({
            f"arm_up_{side}": ("chest", (0.18 * s, 0, 1.45), (0.45 * s, 0, 1.45)),
            f"arm_lo_{side}": (f"arm_up_{side}", (0.45 * s, 0, 1.45), (0.68 * s, 0, 1.45)),
            f"paw_{side}": (f"arm_lo_{side}", (0.68 * s, 0, 1.45), (0.8 * s, 0, 1.45)),
            f"leg_up_{side}": ("pelvis", (0.1 * s, 0, 0.95), (0.1 * s, 0, 0.52)),
            f"leg_lo_{side}": (f"leg_up_{side}", (0.1 * s, 0, 0.52), (0.1 * s, 0, 0.09)),
            f"hoof_{side}": (f"leg_lo_{side}", (0.1 * s, 0, 0.09), (0.1 * s, -0.12, 0.02)),
        })
    for bone, (parent, head, tail) in bones.items():
        edit = data.edit_bones.new(bone)
        edit.head, edit.tail = head, tail
        if parent:
            edit.parent = data.edit_bones[parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    obj.location = location
    settings = obj.posebridge
    for keypoint, bone in CUSTOM_HEADS.items():
        entry = settings.custom_map.add()
        entry.keypoint, entry.bone, entry.anchor = keypoint, bone, "HEAD"
    settings.custom_head_bone = "skull"
    settings.preset = "CUSTOM"
    return rigs.animate(obj, CUSTOM_ROLES, seconds=1.0, cycle_seconds=0.5)


def build_crane(name="Crane", location=(0.0, 3.0, 0.0)):
    """An armature no preset fits (a prop): not a character unless a map is made for it."""
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    boom = data.edit_bones.new("boom")
    boom.head, boom.tail = (0, 0, 0), (0, 0, 3)
    hook = data.edit_bones.new("hook")
    hook.head, hook.tail, hook.parent = (0, 0, 3), (0, -1, 3), boom
    bpy.ops.object.mode_set(mode="OBJECT")
    obj.location = location
    return obj


@pytest.fixture
def shot(empty_scene):
    """Alice (Rigify metarig, x=-2), Bob (Mixamo, x=0), Cleo (custom map, x=2), all walking in
    place; a crane behind them; a camera 10 m in front. Linked in the order Cleo, Crane, Alice,
    Bob, so the scene's order is not the alphabetical one."""
    scene = empty_scene
    build_custom_rig()
    build_crane()
    alice = rigs.build_animated_rigify_metarig("Alice", seconds=1.0)
    alice.location = (-2.0, 0.0, 0.0)
    rigs.build_animated_mixamo_rig("Bob", seconds=1.0)  # at x=0
    camera = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(camera)
    camera.location = (0.0, -10.0, 1.0)
    camera.rotation_euler = (math.radians(90.0), 0.0, 0.0)
    scene.camera = camera
    scene.render.resolution_x, scene.render.resolution_y = WIDTH, HEIGHT
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = 1, FRAMES
    scene.frame_set(1)
    assert [o.name for o in scene.objects if o.type == "ARMATURE"] == ["Cleo", "Crane", "Alice", "Bob"]
    return scene


GONE = 7  # the first frame Bob is wholly out of frame once he walks out


def walk_out(obj, keys=((4, 0.0), (6, 3.0), (GONE, 6.0), (FRAMES, 9.0))):
    """``obj`` walks right from frame 4: half out of frame at 6, wholly out from GONE on."""
    for frame, x in keys:
        obj.location.x = x
        obj.keyframe_insert("location", index=0, frame=frame)
    action = obj.animation_data.action
    curves = action.fcurves if hasattr(action, "fcurves") else [
        c for layer in action.layers for strip in layer.strips for bag in strip.channelbags for c in bag.fcurves]
    for curve in curves:
        if curve.data_path == "location":
            for key in curve.keyframe_points:
                key.interpolation = "LINEAR"


def expected_pixels(scene, obj, frame, bones) -> dict[str, np.ndarray]:
    """Where bpy_extras puts each bone's evaluated head, in OpenPose pixels (centre of column i
    is x = i, y down); None when it is outside the frame."""
    scene.frame_set(frame)
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    out = {}
    for keypoint, bone in bones.items():
        world = evaluated.matrix_world @ evaluated.pose.bones[bone].head
        u, v, depth = world_to_camera_view(scene, scene.camera, Vector(world))
        inside = depth > 0 and 0 <= u < 1 and 0 < v <= 1
        out[keypoint] = np.array([u * WIDTH - 0.5, (1 - v) * HEIGHT - 0.5]) if inside else None
    return out


def frame_json(folder, frame):
    return json.loads((folder / "keypoints" / f"pose_{frame:04d}_keypoints.json").read_text())


def body(person) -> np.ndarray:
    return np.array(person["pose_keypoints_2d"]).reshape(-1, 3)


def who(person, scene, frame) -> str:
    """Which character a JSON person is: the one whose own bones project onto its shoulders."""
    matches = []
    for name, bones in HEADS.items():
        expected = expected_pixels(scene, scene.objects[name], frame, {k: bones[k] for k in ("l_shoulder", "r_hip")})
        points = body(person)
        if all(e is not None and points[IDX(k), 2] > 0 and np.allclose(points[IDX(k), :2], e, atol=0.02)
               for k, e in expected.items()):
            matches.append(name)
    assert len(matches) == 1, matches
    return matches[0]


def run_poses(scene, out, *args):
    return batch.main(["poses", "--out", str(out), "--hands", "--face", *map(str, args)], scene=scene)


# --- default: every armature a map fits --------------------------------------------------------
def test_default_picks_every_fitting_armature_in_the_scene_order(shot, tmp_path):
    job = pose_maps.plan_job(shot, output_dir=str(tmp_path))
    # The crane fits no map: not a character. The others in the scene's (= the panel's) order.
    assert [(c.armature.name, c.preset_label) for c in job.characters] == [
        ("Cleo", "custom map"), ("Alice", "Rigify metarig"), ("Bob", "Mixamo")]
    # Renaming does not reorder: the order follows the scene, not the names.
    shot.objects["Alice"].name = "Aaron"
    assert [c.armature.name for c in pose_maps.plan_job(shot).characters] == ["Cleo", "Aaron", "Bob"]


def test_each_character_is_its_own_person_in_every_frame(shot, tmp_path, capsys):
    assert run_poses(shot, tmp_path) == 0
    stdout = capsys.readouterr().out
    assert f"Wrote {FRAMES} pose map(s) {WIDTH}x{HEIGHT}" in stdout
    assert "for Cleo (custom map), Alice (Rigify metarig), Bob (Mixamo);" in stdout  # not the crane
    assert "left out: Crane (no rig preset fits)" in stdout
    sequence = json.loads((tmp_path / "keypoints" / "sequence.json").read_text())
    assert len(sequence) == FRAMES
    for frame in range(1, FRAMES + 1):
        people = frame_json(tmp_path, frame)["people"]
        # Three people, always in the job's order.
        assert [who(p, shot, frame) for p in people] == ["Cleo", "Alice", "Bob"], frame
        assert sequence[frame - 1]["people"] == people
        for person, name in zip(people, ("Cleo", "Alice", "Bob")):
            points = body(person)
            assert (points[:, 2] > 0).all(), f"{name}: the whole body is in view at frame {frame}"
            for keypoint, xy in expected_pixels(shot, shot.objects[name], frame, HEADS[name]).items():
                np.testing.assert_allclose(points[IDX(keypoint), :2], xy, atol=0.02,
                                           err_msg=f"{name} {keypoint} frame {frame}")
            # The neck: between the two shoulders, as every map draws it.
            np.testing.assert_allclose(points[IDX("neck"), :2],
                                       (points[IDX("l_shoulder"), :2] + points[IDX("r_shoulder"), :2]) / 2,
                                       atol=0.02)
    # Each with its own map: Rigify and Mixamo have fingers (21 hand points), Cleo's custom map
    # has wrists only; all three have a face (Rigify's face bones, the template on the others' heads).
    people = frame_json(tmp_path, 6)["people"]
    hand_points = [int((np.array(p["hand_left_keypoints_2d"]).reshape(-1, 3)[:, 2] > 0).sum()) for p in people]
    assert hand_points == [1, 21, 21]
    assert all((np.array(p["face_keypoints_2d"]).reshape(-1, 3)[:, 2] > 0).sum() == 70 for p in people)
    # The animation moves them: the people differ from frame to frame.
    first, later = frame_json(tmp_path, 1)["people"], frame_json(tmp_path, 7)["people"]
    for a, b in zip(first, later):
        assert np.abs(body(a)[:, :2] - body(b)[:, :2]).max() > 1.0


def test_map_with_several_people_equals_controlnet_aux(shot, tmp_path):
    from controlnet_reference import load_dwpose_util, mismatch, reference_map

    util = load_dwpose_util()
    job = pose_maps.plan_job(shot, output_dir=str(tmp_path), hands=True, face=True)
    walk_out(shot.objects["Bob"])
    pose_map_run.render_pose_maps(shot, job)
    seq = pose_maps.sample_keypoints(shot, job, job.frames)
    assert seq.people_count == 3
    people_in_view = []
    for index, frame in enumerate(job.frames):
        ours = read_png(tmp_path / f"pose_{frame:04d}.png")
        np.testing.assert_array_equal(ours, draw_pose_map(seq.data[index], WIDTH, HEIGHT, job.style))
        diff, drawn = mismatch(ours, reference_map(util, seq.data[index], WIDTH, HEIGHT))
        assert drawn > 0 and diff == 0, f"frame {frame}: {diff} of {drawn} pixels differ from controlnet_aux"
        people_in_view.append(int((seq.data[index, :, :, 2] > 0).any(-1).sum()))
    # Three people, then two and a part of Bob, then two: all drawn as controlnet_aux draws them.
    assert people_in_view[0] == 3 and people_in_view[-1] == 2


# --- --armature ------------------------------------------------------------------------------
def test_repeated_armature_option_selects_exactly_those_in_that_order(shot, tmp_path, capsys):
    assert run_poses(shot, tmp_path / "ba", "--frames", "1-3", "--armature", "Bob", "--armature", "Alice") == 0
    assert "for Bob (Mixamo), Alice (Rigify metarig)" in capsys.readouterr().out
    for frame in (1, 2, 3):
        assert [who(p, shot, frame) for p in frame_json(tmp_path / "ba", frame)["people"]] == ["Bob", "Alice"]
    assert run_poses(shot, tmp_path / "ab", "--frames", "1-3", "--armature", "Alice", "--armature", "Bob") == 0
    for frame in (1, 2, 3):
        ab = frame_json(tmp_path / "ab", frame)["people"]
        assert [who(p, shot, frame) for p in ab] == ["Alice", "Bob"]
        assert ab == frame_json(tmp_path / "ba", frame)["people"][::-1]
        # Same people, other order: the map is drawn the same (people never overlap here).
        np.testing.assert_array_equal(read_png(tmp_path / "ab" / f"pose_{frame:04d}.png"),
                                      read_png(tmp_path / "ba" / f"pose_{frame:04d}.png"))
    # One name: that character alone, even one the panel left out.
    shot.objects["Cleo"].posebridge.include = False
    assert run_poses(shot, tmp_path / "c", "--frames", "2", "--armature", "Cleo") == 0
    assert [who(p, shot, 2) for p in frame_json(tmp_path / "c", 2)["people"]] == ["Cleo"]


@pytest.mark.parametrize("names, message", [
    (["Alice", "Nobody"], "unknown armature 'Nobody' (armatures in the scene: Cleo, Crane, Alice, Bob)"),
    (["Cam"], "'Cam' is a camera, not an armature"),
    (["Bob", "Crane"], "no rig preset fits armature 'Crane'"),
])
def test_bad_armature_name_is_a_usage_error_naming_it(shot, tmp_path, capsys, names, message):
    args = [arg for name in names for arg in ("--armature", name)]
    assert run_poses(shot, tmp_path / "out", *args) == batch.EXIT_USAGE
    captured = capsys.readouterr()
    assert f"posebridge: error: {message}" in captured.err
    assert not (tmp_path / "out").exists(), "nothing written"


def test_unticked_armature_is_left_out_by_default(shot, tmp_path):
    shot.objects["Alice"].posebridge.include = False
    assert [c.armature.name for c in pose_maps.plan_job(shot).characters] == ["Cleo", "Bob"]


# --- out of frame ----------------------------------------------------------------------------
def test_character_walking_out_of_frame_has_no_entry_and_others_are_unchanged(shot, tmp_path):
    walk_out(shot.objects["Bob"])
    assert run_poses(shot, tmp_path / "all") == 0
    # The same shot without Bob: what the others must look like in every frame.
    assert run_poses(shot, tmp_path / "others", "--armature", "Cleo", "--armature", "Alice") == 0
    sequence = json.loads((tmp_path / "all" / "keypoints" / "sequence.json").read_text())
    partly = 0
    for frame in range(1, FRAMES + 1):
        people = frame_json(tmp_path / "all", frame)["people"]
        others = frame_json(tmp_path / "others", frame)["people"]
        assert sequence[frame - 1]["people"] == people
        if frame >= GONE:
            assert not any(v is not None for v in expected_pixels(
                shot, shot.objects["Bob"], frame, MIXAMO_HEADS).values())
            # README, Output: "A character out of frame has no entry in that frame's people".
            assert people == others, f"frame {frame}: only Cleo and Alice, exactly as without Bob"
            continue
        assert len(people) == 3 and people[:2] == others, f"frame {frame}: Bob is still partly in view"
        bob = body(people[2])
        expected = expected_pixels(shot, shot.objects["Bob"], frame, MIXAMO_HEADS)
        for keypoint, xy in expected.items():
            if xy is None:  # outside the frame: absent, written 0, 0, 0
                assert tuple(bob[IDX(keypoint)]) == (0.0, 0.0, 0.0), (frame, keypoint)
            else:
                np.testing.assert_allclose(bob[IDX(keypoint), :2], xy, atol=0.02)
                assert bob[IDX(keypoint), 2] > 0
        present = bob[:, 2] > 0
        assert ((bob[present, 0] >= 0) & (bob[present, 0] < WIDTH)).all()
        partly += not present.all()
    assert partly >= 1, "some frame has Bob half out of the frame"
    # With Bob gone the map is the others' map, pixel for pixel.
    for frame in range(GONE, FRAMES + 1):
        np.testing.assert_array_equal(read_png(tmp_path / "all" / f"pose_{frame:04d}.png"),
                                      read_png(tmp_path / "others" / f"pose_{frame:04d}.png"))


def test_others_keep_their_order_when_a_middle_character_leaves(shot, tmp_path):
    """Alice, second in the job's order, walks out to the left: the people that stay keep the
    job's order (Cleo, Bob), so a person's index is not an identity across frames (README:
    no entry in people; OpenPose's person_id stays -1)."""
    walk_out(shot.objects["Alice"], keys=((4, -2.0), (6, -3.0), (GONE, -8.0), (FRAMES, -11.0)))
    assert run_poses(shot, tmp_path) == 0
    for frame in range(1, FRAMES + 1):
        names = [who(p, shot, frame) for p in frame_json(tmp_path, frame)["people"]]
        assert names == (["Cleo", "Bob"] if frame >= GONE else ["Cleo", "Alice", "Bob"]), frame
        assert {p["person_id"][0] for p in frame_json(tmp_path, frame)["people"]} == {-1}


def test_report_counts_people_per_frame(shot, tmp_path):
    walk_out(shot.objects["Bob"])
    job = pose_maps.plan_job(shot, output_dir=str(tmp_path))
    report = pose_map_run.render_pose_maps(shot, job)
    assert report.people_per_frame == [3] * (GONE - 1) + [2] * (FRAMES - GONE + 1)


# --- the panel -------------------------------------------------------------------------------
class RecordingRow:
    """Records what a UIList row draws (labels and properties)."""

    def __init__(self):
        self.labels, self.props = [], []

    def row(self, **_kwargs):
        return self

    def prop(self, data, name, **_kwargs):
        assert name in data.bl_rna.properties
        self.props.append((data, name))

    def label(self, text="", **_kwargs):
        self.labels.append(text)


def test_panel_lists_each_armature_with_its_rig_map(shot):
    objects = shot.objects
    stub = types.SimpleNamespace(bitflag_filter_item=1 << 30)
    flags, order = POSEBRIDGE_UL_characters.filter_items(stub, bpy.context, shot, "objects")
    assert order == [], "the scene's order, the one the job uses"
    listed = [o for o, flag in zip(objects, flags) if flag]
    assert [o.name for o in listed] == ["Cleo", "Crane", "Alice", "Bob"], "armatures only, no camera"
    rows = {}
    for index, obj in enumerate(objects):
        if obj in listed:
            row = RecordingRow()
            POSEBRIDGE_UL_characters.draw_item(None, bpy.context, row, shot, obj, 0, None, "", index)
            assert row.props == [(obj.posebridge, "include")]
            rows[obj.name] = row.labels
    assert rows == {
        "Cleo": ["Cleo", "Custom"],
        "Crane": ["Crane", "No preset fits"],
        "Alice": ["Alice", "Auto: Rigify metarig"],
        "Bob": ["Bob", "Auto: Mixamo"],
    }
    # The labels agree with what the job uses; the characters are the listed armatures that fit.
    job = pose_maps.plan_job(shot)
    assert [c.armature.name for c in job.characters] == [n for n, (_, label) in rows.items()
                                                         if label != "No preset fits"]
    for character in job.characters:
        assert rig_presets.describe(character.armature).endswith(
            "Custom" if character.preset_label == "custom map" else character.preset_label)


def test_pose_maps_panel_draws_the_characters_list(shot):
    calls = []

    class Layout(RecordingRow):
        def column(self, **_kwargs):
            return self

        def operator(self, *_args, **_kwargs):
            pass

        def template_list(self, list_type, _list_id, data, name, active_data, active_name, **_kwargs):
            calls.append((list_type, data, name, active_name))

    panel = types.SimpleNamespace(layout=Layout())
    POSEBRIDGE_PT_pose_maps.draw(panel, bpy.context)
    assert calls == [("POSEBRIDGE_UL_characters", shot, "objects", "character_index")]
    assert "Characters" in panel.layout.labels


# --- armatures that cannot be characters, and how they are named -------------------------------
def test_armature_named_twice_is_a_usage_error(shot, tmp_path, capsys):
    code = run_poses(shot, tmp_path, "--frames", "1", "--armature", "Alice", "--armature", "Alice")
    assert code == batch.EXIT_USAGE
    assert "named more than once: Alice" in capsys.readouterr().err
    assert not list(tmp_path.glob("pose_*.png"))


def _exclude(shot, name):
    obj = shot.objects[name]
    hidden = bpy.data.collections.new("Excluded")
    shot.collection.children.link(hidden)
    hidden.objects.link(obj)
    shot.collection.objects.unlink(obj)
    bpy.context.view_layer.layer_collection.children["Excluded"].exclude = True


def test_armature_in_an_excluded_collection_is_left_out_and_reported(shot, tmp_path):
    _exclude(shot, "Bob")
    job = pose_maps.plan_job(shot, output_dir=str(tmp_path))
    assert [c.armature.name for c in job.characters] == ["Cleo", "Alice"]
    report = pose_map_run.render_pose_maps(shot, job)
    assert "Bob (its collection is excluded from the view layer)" in report.summary(job)
    with pytest.raises(pose_maps.JobError, match="armature 'Bob' cannot be posed: its collection is excluded"):
        pose_maps.plan_job(shot, armature_names=["Bob"])


def test_armature_disabled_in_viewports_is_never_silently_frozen(shot):
    """Blender does not animate an armature disabled in viewports (the monitor icon, on it or on
    its collection): named, it is refused naming why; by default it is left out and reported."""
    shot.objects["Bob"].hide_viewport = True
    with pytest.raises(pose_maps.JobError, match="'Bob' cannot be posed: it is disabled in viewports"):
        pose_maps.plan_job(shot, armature_names=["Bob"])
    job = pose_maps.plan_job(shot)
    assert "Bob" not in [c.armature.name for c in job.characters]
    assert job.left_out == ["Crane (no rig preset fits)", "Bob (it is disabled in viewports)"]
    shot.objects["Bob"].hide_viewport = False
    group = bpy.data.collections.new("Hidden group")
    shot.collection.children.link(group)
    group.objects.link(shot.objects["Bob"])
    shot.collection.objects.unlink(shot.objects["Bob"])
    group.hide_viewport = True
    with pytest.raises(pose_maps.JobError, match="collection 'Hidden group' is disabled in viewports"):
        pose_maps.plan_job(shot, armature_names=["Bob"])


def test_report_notes_the_armature_no_map_fits(shot, tmp_path, capsys):
    assert run_poses(shot, tmp_path, "--frames", "1") == 0
    assert "left out: Crane (no rig preset fits)" in capsys.readouterr().out
