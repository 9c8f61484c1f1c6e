"""Fuzzed keypoint files imported onto a rig in Blender: each either imports (a new action, the
rig's own untouched) or raises JobError with a message, and then nothing in the .blend changed."""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

import bpy
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from posebridge.render import actions, import_job
from posebridge.render.demo_shot import build_demo_shot
from posebridge.render.pose_maps import JobError

from keypoint_strategies import documents, dump, openpose_frame, plausible_clip

_scene = None


def _demo_rig_scene():
    """The demo shot, built once for all examples (hypothesis runs one test many times)."""
    global _scene
    if _scene is None or _scene.name not in bpy.data.scenes:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        _scene = bpy.context.scene
        build_demo_shot(_scene, frame_count=4, resolution=(256, 256))
    return _scene


def _state(scene):
    rig = scene.objects["DemoCharacter"]
    action = rig.animation_data.action if rig.animation_data else None
    return {
        "actions": sorted(a.name for a in bpy.data.actions),
        "rig action": action.name if action else None,
        "objects": sorted(o.name for o in bpy.data.objects),
        "frame": scene.frame_current,
    }


def _import(text: str, lift: str, note=event) -> str:
    """Import ``text`` as a keypoint file; checks the property; returns "imported" or the refusal."""
    scene = _demo_rig_scene()
    before = _state(scene)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip_0001_keypoints.json"
        path.write_text(text)
        try:
            summary = import_job.run_import(scene, import_job.ImportOptions(
                keypoints=str(path), armature="DemoCharacter", canvas=(640, 480), lift=lift))
        except JobError as error:
            assert str(error).strip()
            note(f"refused: {str(error).split(': ')[-1][:40]}")
            assert _state(scene) == before, "a failed import leaves the .blend as it was"
            return f"refused: {error}"
    after = _state(scene)
    assert set(before["actions"]) < set(after["actions"]), "the import made a new action"
    assert after["objects"] == before["objects"] and after["frame"] == before["frame"]
    assert summary.report.frames >= 1
    rig = scene.objects["DemoCharacter"]
    keys = [k.co[1] for curve in actions.fcurves(rig.animation_data.action, rig) for k in curve.keyframe_points]
    assert keys and all(math.isfinite(v) for v in keys), "every key is a number"
    note("imported")
    # The user's action stays: undo the new one's assignment for the next example.
    new = bpy.data.actions[after["rig action"]]
    rig.animation_data.action = bpy.data.actions[before["rig action"]] if before["rig action"] else None
    bpy.data.actions.remove(new)
    return "imported"


FUZZ = settings(max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(document=st.one_of(plausible_clip(), plausible_clip(), documents, st.lists(openpose_frame(), min_size=2, max_size=6)),
       lift=st.sampled_from(["learned", "geometric"]))
def test_fuzzed_files_import_or_leave_the_blend_unchanged(document, lift):
    _import(dump(document), lift)


def test_a_shin_seen_without_its_thigh_imports():
    """Found by the fuzzing above: the left hip absent in every frame (so the thigh is skipped),
    the left knee and ankle present. The shin used to ask for the thigh's pose (KeyError)."""
    from keypoint_strategies import _STANDING

    frames = []
    for index in range(4):
        body = []
        for point, (x, y) in enumerate(_STANDING):
            body += [0.0, 0.0, 0.0] if point == 11 else [x + 2.0 * index, y, 0.9]  # 11: l_hip
        frames.append({"people": [{"pose_keypoints_2d": body}]})
    for lift in ("learned", "geometric"):
        assert _import(dump(frames), lift, note=print) == "imported"
