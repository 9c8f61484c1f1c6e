"""Issue 9 inside Blender: the batch command and the Generate panel choose the pipeline (the
backend's default, AnimateDiff or Frames), set AnimateDiff's context windows and segments, send an
identity reference and a prompt schedule. A real backend process (the tiny model set with its
motion adapter and IP-Adapter), real HTTP."""
from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import bpy
import numpy as np
import pytest

import posebridge
from posebridge import batch
from posebridge.operators.generate import request_from_settings
from posebridge.draw.png import read_png, write_png
from posebridge.render import generate_job, pose_map_run, pose_maps, vse
from posebridge.render.demo_shot import build_demo_shot
from posebridge.render.pose_maps import JobError
from test_generate import _client, _generate, _manifest, _params, _use_backend

FRAMES = 12
SIZE = 64


@pytest.fixture(scope="module")
def poses(tmp_path_factory) -> Path:
    """Pose maps of the demo shot's frames 1..12."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    build_demo_shot(scene, frame_count=FRAMES, resolution=(SIZE, SIZE))
    folder = tmp_path_factory.mktemp("poses")
    pose_map_run.render_pose_maps(scene, pose_maps.plan_job(scene, output_dir=str(folder), hands=True, face=True))
    return folder


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An identity reference image (noise: the tiny model sees no faces anyway)."""
    path = tmp_path_factory.mktemp("reference") / "knight.png"
    write_png(path, np.random.default_rng(3).integers(0, 255, (48, 48, 3), dtype=np.uint8))
    return path


@pytest.fixture
def demo_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    posebridge.register()
    scene = bpy.context.scene
    build_demo_shot(scene, frame_count=FRAMES, resolution=(SIZE, SIZE))
    yield scene
    posebridge.unregister()


def _frames(out: Path) -> np.ndarray:
    return np.stack([read_png(out / f"frame_{f:04d}.png") for f in range(1, FRAMES + 1)]).astype(int)


def _mean_diff(a: Path, b: Path) -> float:
    return float(np.abs(_frames(a) - _frames(b)).mean())


def test_animatediff_makes_the_range_as_one_video_and_one_strip(backend_server, poses, tmp_path, capsys):
    out, saved = tmp_path / "shot020", tmp_path / "with_strip.blend"
    assert _generate(backend_server, poses, out, "--pipeline", "animatediff", "--context", "8",
                     "--stride", "4", "--save", saved) == 0
    assert "with animatediff" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("frame_*.png")) == [f"frame_{f:04d}.png" for f in range(1, FRAMES + 1)]
    job = _client(backend_server).jobs()[-1]
    assert job["frames"] == list(range(1, FRAMES + 1))  # one job: the whole range as one video
    assert (job["params"]["pipeline"], job["params"]["context_length"], job["params"]["context_stride"]) == (
        "animatediff", 8, 4)
    assert {r["video"]["job"] for r in _manifest(out)["frames"].values()} == {job["id"]}

    bpy.ops.wm.open_mainfile(filepath=str(saved))
    strips = list(vse.strips_collection(bpy.context.scene))
    assert [s.name for s in strips] == ["shot020"]
    assert strips[0].type == "IMAGE" and len(strips[0].elements) == FRAMES


def test_frames_and_animatediff_differ_and_auto_is_the_backends_default(backend_server, poses, tmp_path):
    runs = (("auto", ()), ("video", ("--pipeline", "animatediff")), ("each", ("--pipeline", "frames")))
    for name, extra in runs:
        assert _generate(backend_server, poses, tmp_path / name, *extra) == 0
    assert _params(tmp_path / "auto")["pipeline"] == "animatediff"  # the tiny set has a motion module
    assert _params(tmp_path / "each")["pipeline"] == "frames"
    np.testing.assert_array_equal(_frames(tmp_path / "auto"), _frames(tmp_path / "video"))
    assert _mean_diff(tmp_path / "video", tmp_path / "each") > 1.0


def test_reference_changes_the_frames_and_identity_scale_zero_is_no_reference(
        backend_server, poses, reference, tmp_path):
    video = ("--pipeline", "animatediff", "--context", "8")
    assert _generate(backend_server, poses, tmp_path / "plain", *video) == 0
    assert _generate(backend_server, poses, tmp_path / "ref", *video, "--reference", reference) == 0
    assert _generate(backend_server, poses, tmp_path / "off", *video, "--reference", reference,
                     "--identity-scale", "0") == 0
    assert _mean_diff(tmp_path / "plain", tmp_path / "ref") > 0.5
    np.testing.assert_array_equal(_frames(tmp_path / "plain"), _frames(tmp_path / "off"))
    # The reference is part of what made the frames: another image would call them stale.
    assert _params(tmp_path / "ref")["reference"] == hashlib.sha256(reference.read_bytes()).hexdigest()


def test_prompt_schedule_passes_through_and_travels(backend_server, poses, tmp_path):
    schedule = "1: a knight in armour | 12: a robot in the rain"
    assert _generate(backend_server, poses, tmp_path / "plain") == 0
    assert _generate(backend_server, poses, tmp_path / "travel", "--prompt", schedule) == 0
    assert _client(backend_server).jobs()[-1]["params"]["prompt"] == schedule
    assert _mean_diff(tmp_path / "plain", tmp_path / "travel") > 0.5


def test_segments_are_jobs_one_after_another_continuing_from_the_last(backend_server, poses, tmp_path):
    out = tmp_path / "segments"
    assert _generate(backend_server, poses, out, "--pipeline", "animatediff", "--context", "8",
                     "--segment", "6") == 0
    jobs = _client(backend_server).jobs()[-2:]
    assert [j["frames"] for j in jobs] == [list(range(1, 7)), list(range(7, 13))]
    assert _manifest(out)["frames"]["7"]["video"]["lead"] == [3, 4, 5, 6]
    assert len(list(out.glob("frame_*.png"))) == FRAMES


@pytest.mark.parametrize("extra, message", [
    (["--stride", "8", "--context", "4"], "--stride 8 must not exceed --context 4"),
    (["--reference", "MISSING"], "missing.png: no such file"),
    (["--reference", "TEXT"], "not_an_image.png is not a PNG image"),
    (["--pipeline", "animatediff", "--context", "48"], "longer than the backend's motion module sees (32 frames)"),
])
def test_bad_video_flags_exit_2_naming_the_problem(backend_server, poses, tmp_path, capsys, extra, message):
    (tmp_path / "not_an_image.png").write_text("hello")
    paths = {"MISSING": tmp_path / "missing.png", "TEXT": tmp_path / "not_an_image.png"}
    extra = [str(paths.get(arg, arg)) for arg in extra]
    jobs_before = len(_client(backend_server).jobs())
    assert _generate(backend_server, poses, tmp_path / "out", *extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and len(_client(backend_server).jobs()) == jobs_before


@pytest.mark.parametrize("extra, message", [
    (["--pipeline", "video"], "invalid choice: 'video'"),
    (["--identity-scale", "5"], "must be at most 4"),
    (["--segment", "0"], "must be 1 or more"),
    (["--context", "0"], "must be 1 or more"),
])
def test_malformed_video_flags_are_usage_errors(poses, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        _generate_without_backend(poses, tmp_path, extra)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def _generate_without_backend(poses, tmp_path, extra):
    return batch.main(["generate", "--poses", str(poses), "--prompt", "x", "--out", str(tmp_path / "o"), *extra])


def test_a_backend_without_motion_module_or_ip_adapter_is_named(poses, reference, tmp_path, capsys):
    """Asking a backend for what it lacks is a usage error naming what is missing; Auto then
    means its default, Frames."""
    import backend_process

    with backend_process.start_backend(tmp_path / "plain-backend", token=backend_process.TEST_TOKEN,
                                       extra_args=("--motion-adapter", "none", "--ip-adapter", "none",
                                                   "--wan-model", "none")) as server:
        assert _generate(server, poses, tmp_path / "a", "--pipeline", "animatediff") == 2
        assert "has no animatediff pipeline (it runs: frames)" in capsys.readouterr().err
        assert _generate(server, poses, tmp_path / "b", "--reference", reference) == 2
        assert "has no IP-Adapter" in capsys.readouterr().err
        assert _generate(server, poses, tmp_path / "c") == 0
    assert _params(tmp_path / "c")["pipeline"] == "frames"


def test_closing_an_animatediff_job_cancels_the_video_and_saves_none(backend_server, demo_scene, poses, tmp_path):
    """ESC during a video: its frames are all final only at the end, so none land; the backend
    job is cancelled and no strip is placed."""
    from posebridge.render.job_steps import Waiting

    out = tmp_path / "gen"
    request = generate_job.GenerateRequest(
        backend_url=backend_server.url, token=backend_server.token, out_dir=out, strip_name="gen",
        params=dict(prompt="x", steps=200, pipeline="animatediff", context_length=8), poses_dir=poses)
    steps = generate_job.generate_steps(demo_scene, request, generate_job.GenerateOutcome())
    client = _client(backend_server)
    jobs_before = len(client.jobs())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert isinstance(next(steps), Waiting)
        jobs = client.jobs()
        if len(jobs) > jobs_before and jobs[-1]["progress"] > 0:
            break
        time.sleep(0.02)
    steps.close()
    job_id = client.jobs()[-1]["id"]
    for _ in range(200):
        if client.status(job_id)["state"] == "cancelled":
            break
        time.sleep(0.05)
    assert client.status(job_id)["state"] == "cancelled"
    assert not list(out.glob("frame_*.png"))
    assert vse.find_strip(demo_scene, "gen") is None


def test_panel_video_settings_reach_the_backend(backend_server, demo_scene, reference, tmp_path):
    """The Generate panel: AnimateDiff with its windows, a segment, and a reference given
    relative to the .blend (//) land in the manifest and the backend's jobs."""
    _use_backend(backend_server)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    shutil.copy(reference, tmp_path / "hero.png")
    settings = bpy.context.scene.posebridge.generate
    settings.output_dir = str(tmp_path / "panel")
    settings.steps, settings.prompt, settings.name = 2, "1: a dancer | 12: a robot", "Take 1"
    settings.pipeline, settings.context_length, settings.context_stride = "ANIMATEDIFF", 8, 2
    settings.segment, settings.reference, settings.identity_scale = 6, "//hero.png", 0.8
    assert bpy.ops.posebridge.generate() == {"FINISHED"}
    params = _params(tmp_path / "panel")
    assert (params["pipeline"], params["context_length"], params["context_stride"]) == ("animatediff", 8, 2)
    assert params["identity_scale"] == pytest.approx(0.8) and params["segment"] == 6
    assert params["reference"] == hashlib.sha256(reference.read_bytes()).hexdigest()
    assert [j["frames"][0] for j in _client(backend_server).jobs()[-2:]] == [1, 7]
    strip = vse.find_strip(bpy.context.scene, "Take 1")
    assert strip is not None and len(strip.elements) == FRAMES


def test_panel_settings_that_cannot_work_are_reported_before_rendering(demo_scene, tmp_path):
    settings = demo_scene.posebridge.generate
    settings.output_dir = str(tmp_path / "panel")
    settings.reference = str(tmp_path / "nobody.png")
    with pytest.raises(RuntimeError, match="identity reference .*nobody.png does not exist"):
        bpy.ops.posebridge.generate()
    settings.reference, settings.context_length, settings.context_stride = "", 8, 12
    with pytest.raises(RuntimeError, match=r"context stride \(12\) must not exceed the context length \(8\)"):
        bpy.ops.posebridge.generate()
    assert not (tmp_path / "panel").exists()  # no pose maps rendered, nothing sent
    settings.context_stride, settings.reference = 4, "//hero.png"  # the .blend was never saved
    with pytest.raises(RuntimeError, match="relative to the .blend"):
        bpy.ops.posebridge.generate()


def test_panel_pipeline_auto_leaves_the_choice_to_the_backend(demo_scene, tmp_path):
    settings = demo_scene.posebridge.generate
    settings.output_dir = str(tmp_path)
    request = request_from_settings(bpy.context)
    assert "pipeline" not in request.params and request.segment is None and request.reference is None
    assert (request.params["context_length"], request.params["context_stride"]) == (16, 4)
    assert request.params["identity_scale"] == pytest.approx(0.6)
    settings.pipeline, settings.segment = "FRAMES", 24
    request = request_from_settings(bpy.context)
    assert request.params["pipeline"] == "frames" and request.segment == 24


def test_check_settings_names_a_missing_reference():
    request = generate_job.GenerateRequest(backend_url="http://127.0.0.1:1", out_dir=Path("/tmp/x"),
                                           params={}, strip_name="x", reference=Path("/no/such/ref.png"))
    with pytest.raises(JobError, match="/no/such/ref.png does not exist"):
        generate_job.check_settings(request)


def test_demo_generates_its_shot_as_one_animatediff_video(backend_server, tmp_path):
    from posebridge.render import demo

    out = tmp_path / "demo"
    backend = demo.DemoBackend(url=backend_server.url, token=backend_server.token, steps=2)
    result = demo.run_demo(out, frame_count=6, resolution=(SIZE, SIZE), save_blend=None, log=lambda _line: None,
                           backend=backend)
    assert _params(result.generated["frames"])["pipeline"] == "animatediff"
    assert _client(backend_server).jobs()[-1]["frames"] == list(range(1, 7))
    assert Path(result.generated["video"]).stat().st_size > 0
