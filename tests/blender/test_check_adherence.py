"""Check Pose Adherence inside Blender against a real backend process (tiny model, CPU): the
panel's operator, Jump to Worst Frame, ESC, and `generate --check`.

The "generated" frames are real pictures: frames of pose2sim's cam01.mp4, with the real OpenPose
keypoints of those frames as the keypoints the pose maps were drawn from (a high score), or the
keypoints of other frames (a low one) (tests/adherence_shot.py)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import bpy
import pytest

import posebridge
from posebridge import batch
from posebridge.generate.adherence import read_summary
from posebridge.generate.adherence_run import AdherenceCheck
from posebridge.generate.client import BackendClient
from posebridge.render import pose_map_run, pose_maps, vse
from posebridge.render.demo_shot import build_demo_shot
from posebridge.render.job_steps import Waiting
from test_generate import _use_backend  # the add-on's preferences point at a test backend

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
import adherence_shot  # noqa: E402

OTHER = 50  # the mismatched shot pairs frame f with the keypoints of frame f + OTHER


@pytest.fixture(scope="module")
def server(backend_server):
    """The session's backend process (tiny model, CPU): its analysis queue runs the check."""
    return backend_server


@pytest.fixture(scope="module")
def real_shots(tmp_path_factory, server):
    """Two generated folders of the same six real frames: with their own keypoints, and with
    the keypoints of frames OTHER later."""
    shared = TESTS.parent.parent / "shared" / "data"
    if not shared.is_dir():
        pytest.skip(f"real data folder {shared} is absent")
    root = tmp_path_factory.mktemp("adherence")
    matched = adherence_shot.build_shot(shared, root / "matched")
    mismatched = adherence_shot.build_shot(shared, root / "mismatched",
                                           keypoints_of=lambda f: (f + OTHER) % 100)
    return matched, mismatched


@pytest.fixture
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    posebridge.register()
    yield bpy.context.scene
    posebridge.unregister()


def _check(scene, server, folder, threshold=0.5):
    _use_backend(server)
    settings = scene.posebridge.generate
    settings.output_dir = str(folder)
    settings.adherence_threshold = threshold
    return bpy.ops.posebridge.check_adherence()


def test_real_frames_against_their_own_keypoints_score_high(scene, server, real_shots):
    matched, _ = real_shots
    frames_before = {p.name: p.read_bytes() for p in matched.glob("frame_*.png")}
    assert _check(scene, server, matched) == {"FINISHED"}
    report = json.loads((matched / "adherence.json").read_text())
    assert report["format"] == "posebridge-adherence"
    assert [f["frame"] for f in report["frames"]] == list(adherence_shot.FRAMES)
    assert report["score"] >= 0.7, report
    assert len(report["flagged_frames"]) <= 1, report
    assert (matched / "adherence.png").read_bytes().startswith(b"\x89PNG")
    assert {p.name: p.read_bytes() for p in matched.glob("frame_*.png")} == frames_before
    assert "adherence.png" in bpy.data.images  # opened for an Image Editor


def test_real_frames_against_other_frames_keypoints_score_low_and_are_flagged(scene, server, real_shots):
    matched, mismatched = real_shots
    assert _check(scene, server, mismatched) == {"FINISHED"}
    summary = read_summary(mismatched)
    assert summary.score <= 0.4, summary
    assert len(summary.flagged_frames) >= len(adherence_shot.FRAMES) - 1, summary
    good = read_summary(matched)
    if good is not None:
        assert summary.score < good.score - 0.3


def test_jump_to_worst_frame_follows_the_generated_strip(scene, server, real_shots):
    matched, _ = real_shots
    if read_summary(matched) is None:
        assert _check(scene, server, matched) == {"FINISHED"}
    worst = read_summary(matched).worst_frame
    settings = scene.posebridge.generate
    settings.output_dir = str(matched)
    # No strip: the generated frame's own number, as Generate places frames.
    assert bpy.ops.posebridge.jump_to_worst_frame() == {"FINISHED"}
    assert scene.frame_current == worst
    # The strip of these frames, moved by the user to start at 101: frame f shows at 101 + f.
    frames = {f: f"frame_{f:04d}.png" for f in adherence_shot.FRAMES}
    elements = vse.timeline_elements(frames)
    strip = vse.place_image_sequence(scene, settings.name, matched, elements.filenames, elements.frame_start)
    strip.frame_start = 101
    assert bpy.ops.posebridge.jump_to_worst_frame() == {"FINISHED"}
    assert scene.frame_current == 101 + worst - adherence_shot.FRAMES[0]
    assert bpy.ops.posebridge.jump_to_worst_frame(frame=36) == {"FINISHED"}
    assert scene.frame_current == 101 + 36


def test_jump_needs_a_report(scene, tmp_path):
    scene.posebridge.generate.output_dir = str(tmp_path)
    assert not bpy.ops.posebridge.jump_to_worst_frame.poll()


def test_esc_cancels_the_check_on_the_backend(scene, server, real_shots):
    """What ESC does: closing the operator's step generator cancels the job (DELETE)."""
    from posebridge.operators.adherence import adherence_steps

    _, mismatched = real_shots
    client = BackendClient(server.url, server.token)
    check = AdherenceCheck(client, mismatched, mismatched / "poses" / "keypoints", poll_interval=0.05)
    before = (mismatched / "adherence.json").stat().st_mtime_ns if (mismatched / "adherence.json").exists() else None
    steps = adherence_steps(check)
    deadline = time.monotonic() + 60
    while check.snapshot().job_id is None and time.monotonic() < deadline:
        assert isinstance(next(steps), Waiting)
        time.sleep(0.01)
    steps.close()
    job_id = check.snapshot().job_id
    assert check.wait(10) and check.snapshot().state == "cancelled"
    deadline = time.monotonic() + 60  # a running job stops at its next frame
    while client.status(job_id)["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.status(job_id)["state"] in ("cancelled", "done")
    after = (mismatched / "adherence.json").stat().st_mtime_ns if (mismatched / "adherence.json").exists() else None
    assert after == before


def test_generate_check_prints_the_score_and_the_flagged_frames(server, tmp_path, capsys):
    """`generate --check`: generate (tiny model: noise, no person), then check; again on the
    generated folder: nothing is regenerated, the check runs again."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    build_demo_shot(scene, frame_count=3, resolution=(64, 64))
    poses = tmp_path / "poses"
    pose_map_run.render_pose_maps(scene, pose_maps.plan_job(scene, output_dir=str(poses), frame_start=1, frame_end=3))
    out = tmp_path / "gen"
    argv = ["generate", "--backend", server.url, "--token", server.token, "--poses", str(poses),
            "--prompt", "a dancer", "--steps", "2", "--out", str(out), "--check", "--check-threshold", "0.6"]
    assert batch.main(argv, scene=scene) == 0
    printed = capsys.readouterr().out
    assert "pose adherence score" in printed and "flagged frames (" in printed
    report = json.loads((out / "adherence.json").read_text())
    assert report["threshold"] == 0.6 and [f["frame"] for f in report["frames"]] == [1, 2, 3]
    assert f"flagged frames ({len(report['flagged_frames'])})" in printed
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("frame_*.png")}
    assert batch.main(argv, scene=scene) == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("frame_*.png")} == stamps
    assert "pose adherence score" in capsys.readouterr().out


def test_generate_check_without_keypoints_is_a_usage_error(tmp_path, capsys):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    poses = tmp_path / "poses"
    poses.mkdir()
    argv = ["generate", "--poses", str(poses), "--prompt", "x", "--out", str(tmp_path / "o"), "--check"]
    assert batch.main(argv, scene=bpy.context.scene) == 2
    assert "--check: no keypoints beside the pose maps" in capsys.readouterr().err


def test_panel_icons_exist():
    icons = bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys()
    assert {"ARMATURE_DATA", "FRAME_NEXT", "ERROR", "CHECKMARK"} <= set(icons)


class _Layout:
    """Records what a panel draws (texts, properties, operators), checking each exists."""

    def __init__(self):
        self.texts, self.names = [], []

    def _child(self, *_args, **_kwargs):
        return self

    row = column = box = _child

    def panel(self, *_args, **_kwargs):
        return self, self

    def prop(self, data, name, **_kwargs):
        assert name in data.bl_rna.properties, name
        self.names.append(name)

    def operator(self, idname, text="", **_kwargs):
        module, name = idname.split(".")
        assert hasattr(bpy.types, f"{module.upper()}_OT_{name}"), idname
        self.names.append(idname)
        self.texts.append(text)

    def label(self, text="", **_kwargs):
        self.texts.append(text)

    def template_list(self, list_type, _list_id, data, name, active_data, active_name, **_kwargs):
        assert hasattr(bpy.types, list_type) and name in data.bl_rna.properties
        assert active_name in active_data.bl_rna.properties


def test_panel_shows_the_score_the_worst_frame_and_the_flagged_frames(scene, tmp_path):
    from posebridge.panels.generate import POSEBRIDGE_PT_generate

    report = {"format": "posebridge-adherence", "version": 1, "score": 0.734, "threshold": 0.5,
              "extractor": "mediapipe", "frames": [{"frame": f} for f in range(1, 41)],
              "worst_frames": [17, 3], "flagged_frames": [3, 5, 8, 13, 17, 21, 30, 31]}
    scene.posebridge.generate.output_dir = str(tmp_path)

    def draw():
        layout = _Layout()
        POSEBRIDGE_PT_generate.draw(type("Drawn", (), {"layout": layout})(), bpy.context)
        return layout

    drawn = draw()
    assert "posebridge.check_adherence" in drawn.names and "adherence_threshold" in drawn.names
    assert "posebridge.jump_to_worst_frame" not in drawn.names  # no report yet
    (tmp_path / "adherence.json").write_text(json.dumps(report))
    drawn = draw()
    assert "posebridge.jump_to_worst_frame" in drawn.names
    assert "Score 0.73 (40 frames)" in drawn.texts and "Worst: 17" in drawn.texts
    assert "Flagged (8): 3, 5, 8, 13, 17, 21 and 2 more" in drawn.texts
    assert bpy.ops.posebridge.jump_to_worst_frame() == {"FINISHED"}
    assert scene.frame_current == 17
