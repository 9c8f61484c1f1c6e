"""Generate end to end inside Blender: pose maps -> a real backend process (tiny model, real
HTTP) -> frame_NNNN.png -> one image strip. Through the batch command, the panel's operator and
the step generator; plus the crash/resume case with the batch command in its own process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import bpy
import numpy as np
import pytest

import posebridge
from posebridge import batch
from posebridge.generate.client import BackendClient
from posebridge.draw.png import read_png
from posebridge.render import generate_job, pose_map_run, pose_maps, vse
from posebridge.render.demo_shot import build_demo_shot

REPO = Path(__file__).resolve().parents[2]
FRAMES = 4
SIZE = 64


@pytest.fixture
def demo_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    posebridge.register()
    scene = bpy.context.scene
    build_demo_shot(scene, frame_count=FRAMES, resolution=(SIZE, SIZE))
    yield scene
    posebridge.unregister()


def _render_poses(scene, folder: Path, offset: int = 0) -> Path:
    """Pose maps of frames 1..FRAMES; offset > 0 renders later poses under the same numbers."""
    job = pose_maps.plan_job(scene, output_dir=str(folder), frame_start=1 + offset,
                             frame_end=FRAMES + offset, hands=True, face=True)
    pose_map_run.render_pose_maps(scene, job)
    if offset:
        for frame in range(1 + offset, FRAMES + 1 + offset):
            os.replace(folder / f"pose_{frame:04d}.png", folder / f"pose_{frame - offset:04d}.png")
    return folder


@pytest.fixture(scope="module")
def pose_folders(tmp_path_factory):
    """Two pose folders with frames 1..4: the demo's first poses, and later (other) poses."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    build_demo_shot(scene, frame_count=24, resolution=(SIZE, SIZE))
    root = tmp_path_factory.mktemp("poses")
    first = _render_poses(scene, root / "first")
    other = _render_poses(scene, root / "other", offset=12)
    return first, other


def _generate(server, poses, out, *extra, scene=None):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    argv = ["generate", "--backend", server.url, "--token", server.token, "--poses", str(poses),
            "--prompt", "a dancer", "--steps", "2", "--out", str(out), *map(str, extra)]
    return batch.main(argv, scene=scene or bpy.context.scene)


def _frame(out: Path, frame: int) -> np.ndarray:
    return read_png(out / f"frame_{frame:04d}.png")


def _stamps(out: Path) -> dict:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(out.glob("frame_*.png"))}


def test_pose_maps_of_any_size_are_sent_at_the_nearest_multiple_of_8(backend_server, tmp_path):
    """Stable Diffusion needs multiples of 8: 60x36 maps (from a 960x540-like aspect) are
    generated at 56x32 rather than refused."""
    from posebridge.draw.png import write_png

    poses = tmp_path / "odd"
    poses.mkdir()
    for frame in (1, 2):
        image = np.zeros((36, 60, 3), np.uint8)
        image[10:20, 20 + frame * 5:30 + frame * 5] = 255
        write_png(poses / f"pose_{frame:04d}.png", image)
    assert _generate(backend_server, poses, tmp_path / "out") == 0
    assert _frame(tmp_path / "out", 1).shape == (32, 56, 3)


def test_generate_command_writes_frames_and_one_strip_saved_in_the_blend(backend_server, pose_folders, tmp_path):
    out = tmp_path / "shot010"
    saved = tmp_path / "with_strip.blend"
    assert _generate(backend_server, pose_folders[0], out, "--save", saved) == 0
    assert sorted(p.name for p in out.glob("frame_*.png")) == [f"frame_{f:04d}.png" for f in range(1, FRAMES + 1)]
    assert _frame(out, 1).shape[:2] == (SIZE, SIZE)

    bpy.ops.wm.open_mainfile(filepath=str(saved))
    strips = list(vse.strips_collection(bpy.context.scene))
    assert [s.name for s in strips] == ["shot010"]  # one strip for all frames, named after the job
    strip = strips[0]
    assert strip.type == "IMAGE" and len(strip.elements) == FRAMES
    assert strip.frame_final_start == 1 and strip.frame_final_duration == FRAMES
    assert Path(bpy.path.abspath(strip.directory)).resolve() == out.resolve()


def test_same_seed_and_poses_give_identical_frames_other_poses_other_frames(backend_server, pose_folders, tmp_path):
    first, other = pose_folders
    for name, poses in (("a", first), ("b", first), ("c", other)):
        assert _generate(backend_server, poses, tmp_path / name) == 0
    for frame in range(1, FRAMES + 1):
        np.testing.assert_array_equal(_frame(tmp_path / "a", frame), _frame(tmp_path / "b", frame))
    changed = [np.abs(_frame(tmp_path / "a", f).astype(int) - _frame(tmp_path / "c", f)).mean()
               for f in range(1, FRAMES + 1)]
    assert min(changed) > 1.0, changed


def test_rerun_makes_only_the_missing_frames_and_rewrites_none(backend_server, pose_folders, tmp_path):
    out = tmp_path / "gen"
    assert _generate(backend_server, pose_folders[0], out) == 0
    before = _stamps(out)
    (out / "frame_0002.png").unlink()
    client = BackendClient(backend_server.url, backend_server.token)
    jobs_before = len(client.jobs())
    assert _generate(backend_server, pose_folders[0], out) == 0
    after = _stamps(out)
    assert set(after) == set(before)
    assert {k: v for k, v in after.items() if k != "frame_0002.png"} == {
        k: v for k, v in before.items() if k != "frame_0002.png"}
    jobs = client.jobs()
    assert len(jobs) == jobs_before + 1 and jobs[-1]["frames"] == [2]
    # Nothing missing: no job at all, and nothing rewritten.
    assert _generate(backend_server, pose_folders[0], out) == 0
    assert _stamps(out) == after and len(client.jobs()) == jobs_before + 1


def test_frames_made_otherwise_are_kept_unless_overwrite(backend_server, pose_folders, tmp_path, capsys):
    out = tmp_path / "gen"
    assert _generate(backend_server, pose_folders[0], out) == 0
    before = _stamps(out)
    assert _generate(backend_server, pose_folders[0], out, "--seed", "7") == 1
    assert "other settings" in capsys.readouterr().err
    assert _stamps(out) == before
    assert _generate(backend_server, pose_folders[0], out, "--seed", "7", "--overwrite") == 0
    assert all(after != before[name] for name, after in _stamps(out).items())


def test_wrong_token_and_absent_backend_are_named(backend_server, pose_folders, tmp_path, capsys):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    common = ["--poses", str(pose_folders[0]), "--prompt", "x", "--out", str(tmp_path / "o")]
    assert batch.main(["generate", "--backend", backend_server.url, "--token", "wrong", *common]) == 1
    assert "token" in capsys.readouterr().err
    from backend_process import free_port

    assert batch.main(["generate", "--backend", f"http://127.0.0.1:{free_port()}", *common]) == 1
    err = capsys.readouterr().err
    assert "no backend" in err or "running" in err
    assert not list((tmp_path / "o").glob("frame_*"))


def _manifest(out: Path) -> dict:
    return json.loads((out / "generation.json").read_text())


def _params(out: Path) -> dict:
    """The settings every frame of ``out`` was made with (one set)."""
    settings = _manifest(out)["settings"]
    assert len(settings) == 1, settings
    return next(iter(settings.values()))["params"]


def _client(server) -> BackendClient:
    return BackendClient(server.url, server.token)


def _use_backend(server):
    """The add-on's preferences point at the test backend (as a user would set them)."""
    addon = bpy.context.preferences.addons.get("posebridge") or bpy.context.preferences.addons.new()
    addon.module = "posebridge"
    addon.preferences.backend_url = server.url
    addon.preferences.token = server.token


def test_generate_operator_renders_poses_generates_and_places_the_strip(backend_server, demo_scene, tmp_path):
    _use_backend(backend_server)
    settings = demo_scene.posebridge.generate
    settings.output_dir = str(tmp_path / "panel")
    settings.steps, settings.prompt, settings.name = 2, "a dancer", "Take 1"
    user_strip = vse.strips_collection(demo_scene).new_effect(
        name="User", type="COLOR", channel=1, frame_start=1, **_effect_length(FRAMES)) \
        if hasattr(vse.strips_collection(demo_scene), "new_effect") else None
    assert bpy.ops.posebridge.generate() == {"FINISHED"}
    assert len(list((tmp_path / "panel").glob("frame_*.png"))) == FRAMES
    assert len(list((tmp_path / "panel" / "poses").glob("pose_*.png"))) == FRAMES
    strip = vse.find_strip(demo_scene, "Take 1")
    assert strip is not None and len(strip.elements) == FRAMES
    if user_strip is not None:
        assert strip.channel != user_strip.channel and user_strip.frame_final_duration == FRAMES
    # Again: the same strip is updated, no new one.
    assert bpy.ops.posebridge.generate() == {"FINISHED"}
    assert [s.name for s in vse.strips_collection(demo_scene) if s.type == "IMAGE"] == ["Take 1"]
    assert bpy.ops.posebridge.export_video() == {"FINISHED"}
    assert (tmp_path / "panel.mp4").stat().st_size > 0
    assert bpy.ops.posebridge.compare_sheet() == {"FINISHED"}
    assert read_png(tmp_path / "panel" / "first_vs_last.png").ndim == 3


def _effect_length(frames: int) -> dict:
    # 4.2's new_effect takes frame_end; 5.x takes length.
    return {"length": frames} if bpy.app.version >= (5, 0, 0) else {"frame_end": 1 + frames}


def test_closing_the_job_cancels_it_on_the_backend_and_keeps_frames(backend_server, demo_scene, pose_folders, tmp_path):
    """What ESC does: the job is cancelled on the backend, the frames already saved stay, and
    no strip is placed. While the backend works the job yields Waiting (the UI stays free).
    The frames pipeline, whose frames land one by one (AnimateDiff's: test_generate_animatediff)."""
    from posebridge.render.job_steps import Waiting

    out = tmp_path / "gen"
    request = generate_job.GenerateRequest(
        backend_url=backend_server.url, token=backend_server.token, out_dir=out,
        params=dict(prompt="x", steps=60, batch=1, pipeline="frames"), strip_name="gen",
        poses_dir=pose_folders[0])
    steps = generate_job.generate_steps(demo_scene, request, generate_job.GenerateOutcome())
    deadline = time.monotonic() + 120
    while not list(out.glob("frame_*.png")) and time.monotonic() < deadline:
        assert isinstance(next(steps), Waiting)
        time.sleep(0.02)
    steps.close()
    kept = _stamps(out)
    client = BackendClient(backend_server.url, backend_server.token)
    job_id = client.jobs()[-1]["id"]
    for _ in range(200):
        if client.status(job_id)["state"] == "cancelled":
            break
        time.sleep(0.05)
    status = client.status(job_id)
    assert status["state"] == "cancelled" and len(status["frames_done"]) < FRAMES
    assert 1 <= len(kept) < FRAMES and _stamps(out) == kept
    assert vse.find_strip(demo_scene, "gen") is None


def test_backend_killed_mid_job_keeps_frames_and_rerun_makes_only_the_rest(backend_server, pose_folders, tmp_path):
    """The batch command in its own Blender process; the backend dies under it; a new backend
    and a rerun make only the missing frames and leave the finished files alone. The frames
    pipeline, whose frames land one by one (AnimateDiff's segments: test_generate_animatediff)."""
    import backend_process

    frames = 8
    poses = tmp_path / "poses"
    poses.mkdir()
    for frame in range(1, frames + 1):
        source = pose_folders[0] / f"pose_{(frame - 1) % FRAMES + 1:04d}.png"
        (poses / f"pose_{frame:04d}.png").write_bytes(source.read_bytes())
    out = tmp_path / "gen"
    model = backend_process.make_tiny_model(tmp_path)

    def command(server):
        return [sys.executable, str(REPO / "cli.py"), "generate", "--backend", server.url, "--token",
                server.token, "--poses", str(poses), "--prompt", "x", "--steps", "40", "--batch", "1",
                "--pipeline", "frames", "--out", str(out)]

    dying = backend_process.start_backend(tmp_path / "b1", token=backend_process.TEST_TOKEN, model_dir=model)
    run = subprocess.Popen(command(dying), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while len(list(out.glob("frame_*.png"))) < 2 and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.05)
    dying.kill()
    _stdout, stderr = run.communicate(timeout=120)
    kept = _stamps(out)
    assert run.returncode == 1, stderr
    assert "stopped answering" in stderr or "no backend" in stderr, stderr
    assert 2 <= len(kept) < frames

    with backend_process.start_backend(tmp_path / "b2", token=backend_process.TEST_TOKEN, model_dir=model) as fresh:
        done = subprocess.run(command(fresh), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        jobs = BackendClient(fresh.url, fresh.token).jobs()
    after = _stamps(out)
    assert len(after) == frames
    assert {k: after[k] for k in kept} == kept  # finished files untouched
    assert len(jobs) == 1 and len(jobs[0]["frames"]) == frames - len(kept)


def test_start_and_stop_local_backend_from_the_preferences(demo_scene, tmp_path):
    """The panel's Start Local Backend runs the configured Python's backend (the real command,
    through the launcher) and points the preferences at it; Stop ends it."""
    import backend_process

    from posebridge.generate.client import BackendUnavailable

    python = backend_process.backend_python()
    if python is None:
        pytest.skip("no backend Python")
    addon = bpy.context.preferences.addons.get("posebridge") or bpy.context.preferences.addons.new()
    addon.module = "posebridge"
    prefs = addon.preferences
    prefs.python, prefs.model, prefs.token = python, str(backend_process.make_tiny_model(tmp_path)), ""
    prefs.port = backend_process.free_port()
    assert bpy.ops.posebridge.start_backend() == {"FINISHED"}
    assert prefs.backend_url == f"http://127.0.0.1:{prefs.port}"
    assert BackendClient(prefs.backend_url).health()["status"] == "ready"
    assert not bpy.ops.posebridge.start_backend.poll()  # one at a time
    assert bpy.ops.posebridge.stop_backend() == {"FINISHED"}
    with pytest.raises(BackendUnavailable):
        BackendClient(prefs.backend_url, timeout=2).health()


def test_generate_with_depth_on_sends_the_depth_maps(backend_server, demo_scene, tmp_path):
    """The Pose Maps panel's Depth toggle: Generate renders depth_NNNN.png beside the pose maps
    and the backend gets them (its depth ControlNet): the manifest records each frame's depth
    map, and the frames differ from pose-only ones."""
    import json

    _use_backend(backend_server)
    settings = demo_scene.posebridge.generate
    settings.steps, settings.prompt = 2, "a dancer"
    settings.output_dir = str(tmp_path / "pose_only")
    assert bpy.ops.posebridge.generate() == {"FINISHED"}
    demo_scene.posebridge.depth = True
    settings.output_dir = str(tmp_path / "with_depth")
    settings.name = "With depth"
    assert bpy.ops.posebridge.generate() == {"FINISHED"}
    poses = tmp_path / "with_depth" / "poses"
    assert len(list(poses.glob("depth_*.png"))) == FRAMES
    manifest = json.loads((tmp_path / "with_depth" / "generation.json").read_text())
    assert all(record["depth"] for record in manifest["frames"].values()), manifest["frames"]
    changed = [np.abs(_frame(tmp_path / "pose_only", f).astype(int) - _frame(tmp_path / "with_depth", f)).mean()
               for f in range(1, FRAMES + 1)]
    assert min(changed) > 0.5, changed
