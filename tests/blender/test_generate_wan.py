"""Issue 11 inside Blender: Wan VACE from the batch command and the Generate panel, through a real
backend process (the tiny model set with its tiny Wan VACE) over HTTP. A shot longer than a
segment runs as segments whose lead frames count towards the segment (20 frames, segment 9, lead
5: 9, 4, 4 and 3 new frames); every frame lands once, in one image strip; each segment continues
from the frames the one before made; a run that dies after its first segment is resumed by a
rerun that makes only the rest, cut as before. Everything runs at the pose maps' own size
(resolution "maps") so the CPU keeps up."""
from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import pytest

import posebridge
from posebridge import batch
from posebridge.draw.png import read_png
from posebridge.operators.generate import request_from_settings
from posebridge.render import generate_job, pose_map_run, pose_maps, vse
from posebridge.render.demo_shot import build_demo_shot
from test_generate import _client, _generate, _manifest, _params, _use_backend

FRAMES = 20
SIZE = 64
SEGMENT = 9
UNITS = [list(range(1, 10)), list(range(10, 14)), list(range(14, 18)), list(range(18, 21))]
LEADS = [[], [5, 6, 7, 8, 9], [9, 10, 11, 12, 13], [13, 14, 15, 16, 17]]
WAN = ("--pipeline", "wan-vace", "--resolution", "maps", "--segment", SEGMENT)


def _shot(scene, frames=FRAMES):
    build_demo_shot(scene, frame_count=frames, resolution=(SIZE, SIZE))


@pytest.fixture(scope="module")
def poses(tmp_path_factory) -> Path:
    """Pose maps of the demo shot's frames 1..20 (no depth maps)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    _shot(scene)
    folder = tmp_path_factory.mktemp("poses")
    pose_map_run.render_pose_maps(scene, pose_maps.plan_job(scene, output_dir=str(folder), hands=True, face=True))
    return folder


@pytest.fixture(scope="module")
def whole_run(backend_server, poses, tmp_path_factory):
    """The shot made in one uninterrupted batch run: (output folder, saved .blend, its jobs)."""
    out = tmp_path_factory.mktemp("wan") / "shot030"
    saved = out.parent / "with_strip.blend"
    assert _generate(backend_server, poses, out, *WAN, "--save", saved) == 0
    return out, saved, _client(backend_server).jobs()[-len(UNITS):]


@pytest.fixture
def demo_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    posebridge.register()
    scene = bpy.context.scene
    _shot(scene)
    yield scene
    posebridge.unregister()


def _pixels(out: Path, frames) -> dict:
    return {f: read_png(out / f"frame_{f:04d}.png") for f in frames}


def test_a_long_shot_runs_as_segments_that_continue_and_lands_as_one_strip(backend_server, whole_run, capsys):
    out, saved, jobs = whole_run
    assert sorted(p.name for p in out.glob("frame_*.png")) == [f"frame_{f:04d}.png" for f in range(1, FRAMES + 1)]
    # Lead + new frames fill each segment; every frame is made once, by one job.
    assert [j["frames"] for j in jobs] == UNITS
    assert all((j["params"]["pipeline"], j["params"]["resolution"]) == ("wan-vace", "maps") for j in jobs)
    records = _manifest(out)["frames"]
    for job, unit, lead in zip(jobs, UNITS, LEADS):
        for frame in unit:
            assert records[str(frame)]["video"] == {"job": job["id"], "frames": [unit[0], unit[-1]], "lead": lead}
    # The lead frames sent with a segment are the frames the segment before generated, as saved.
    client = _client(backend_server)
    for frame in LEADS[1]:
        assert client.download_frame(jobs[0]["id"], frame) == (out / f"frame_{frame:04d}.png").read_bytes()
    params = _params(out)
    assert (params["pipeline"], params["segment"], params["resolution"], params["vace_control"]) == (
        "wan-vace", SEGMENT, "maps", "pose")
    assert "context_length" not in params  # AnimateDiff's windows mean nothing to Wan

    bpy.ops.wm.open_mainfile(filepath=str(saved))
    strips = list(vse.strips_collection(bpy.context.scene))
    assert [s.name for s in strips] == ["shot030"]
    assert strips[0].type == "IMAGE" and len(strips[0].elements) == FRAMES


def test_the_lead_frames_condition_the_segment(backend_server, poses, whole_run, tmp_path):
    """Frames 10..13 made with nothing before them (no lead frames) differ from the same frames
    made continuing from frames 5..9."""
    out, _saved, _jobs = whole_run
    alone_poses = tmp_path / "poses"
    alone_poses.mkdir()
    for frame in UNITS[1]:
        (alone_poses / f"pose_{frame:04d}.png").write_bytes((poses / f"pose_{frame:04d}.png").read_bytes())
    assert _generate(backend_server, alone_poses, tmp_path / "alone", *WAN) == 0
    alone, joined = _pixels(tmp_path / "alone", UNITS[1]), _pixels(out, UNITS[1])
    assert any(not np.array_equal(alone[f], joined[f]) for f in UNITS[1])


def test_a_run_that_dies_after_a_segment_is_resumed_with_only_the_rest(
        backend_server, poses, whole_run, tmp_path, capsys):
    import backend_process

    out = tmp_path / "resumed"
    # A backend that fails the job holding frame 12: the second segment.
    with backend_process.start_backend(tmp_path / "failing-backend", token=backend_process.TEST_TOKEN,
                                       env={"POSEBRIDGE_BACKEND_TEST_FAIL_AT_FRAME": "12"}) as failing:
        assert _generate(failing, poses, out, *WAN) == 1
    assert "9 of 20 frames are saved" in capsys.readouterr().err
    assert sorted(int(p.stem.split("_")[1]) for p in out.glob("frame_*.png")) == UNITS[0]
    kept = {f: (out / f"frame_{f:04d}.png").stat().st_mtime_ns for f in UNITS[0]}

    client = _client(backend_server)
    jobs_before = len(client.jobs())
    assert _generate(backend_server, poses, out, *WAN) == 0
    jobs = client.jobs()[jobs_before:]
    assert [j["frames"] for j in jobs] == UNITS[1:]  # cut as the uninterrupted run cut it
    assert _manifest(out)["frames"]["10"]["video"]["lead"] == LEADS[1]
    assert {f: (out / f"frame_{f:04d}.png").stat().st_mtime_ns for f in UNITS[0]} == kept
    # The same inputs and lead frames: the same pixels as the run that was never interrupted.
    whole = _pixels(whole_run[0], range(1, FRAMES + 1))
    resumed = _pixels(out, range(1, FRAMES + 1))
    for frame in range(1, FRAMES + 1):
        assert np.array_equal(whole[frame], resumed[frame]), f"frame {frame}"


def test_depth_maps_make_the_control_video_pose_over_depth(backend_server, tmp_path):
    """With depth maps beside the pose maps the control video defaults to pose over depth, and
    choosing depth alone is other pixels."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    _shot(scene, frames=SEGMENT)
    folder = tmp_path / "poses"
    pose_map_run.render_pose_maps(scene, pose_maps.plan_job(scene, output_dir=str(folder), depth=True))
    assert _generate(backend_server, folder, tmp_path / "auto", *WAN) == 0
    assert _client(backend_server).jobs()[-1]["frames"] == list(range(1, SEGMENT + 1))
    assert _params(tmp_path / "auto")["vace_control"] == "pose_over_depth"
    assert _generate(backend_server, folder, tmp_path / "depth", *WAN, "--vace-control", "depth") == 0
    assert _params(tmp_path / "depth")["vace_control"] == "depth"
    auto, depth = _pixels(tmp_path / "auto", range(1, 10)), _pixels(tmp_path / "depth", range(1, 10))
    assert any(not np.array_equal(auto[f], depth[f]) for f in range(1, 10))


@pytest.mark.parametrize("extra, message", [
    (["--segment", "8"], "--segment 8: a Wan VACE segment of 8 frames is too short"),
    (["--vace-control", "depth"], "the depth control video needs depth maps"),
])
def test_wan_settings_that_cannot_work_exit_2_before_sending(backend_server, poses, tmp_path, capsys, extra, message):
    jobs_before = len(_client(backend_server).jobs())
    assert _generate(backend_server, poses, tmp_path / "out", "--pipeline", "wan-vace", "--resolution", "maps",
                     *extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and len(_client(backend_server).jobs()) == jobs_before


@pytest.mark.parametrize("extra, message", [
    (["--pipeline", "frames", "--resolution", "720p"], "--resolution only goes with --pipeline wan-vace"),
    (["--pipeline", "animatediff", "--vace-control", "pose"], "--vace-control only goes with --pipeline wan-vace"),
    (["--resolution", "1080p"], "invalid choice: '1080p'"),
    (["--resolution", "720p"], "--resolution only goes with --pipeline wan-vace (not Auto)"),
])
def test_wan_flags_elsewhere_are_usage_errors(poses, tmp_path, capsys, extra, message):
    try:  # argparse exits; the command's own checks return the exit code
        code = batch.main(["generate", "--poses", str(poses), "--prompt", "x", "--out", str(tmp_path / "o"), *extra])
    except SystemExit as exit_info:
        code = exit_info.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_backend_without_wan_says_why():
    health = {"pipelines": ["animatediff", "frames"],
              "models": {"wan_model": "Wan-AI/Wan2.1-VACE-1.3B-diffusers",
                         "wan_unavailable": "it is not in the Hugging Face cache"}}
    with pytest.raises(generate_job.SettingsError, match=r"has no wan-vace pipeline \(it is not in the Hugging"):
        generate_job.check_backend_can({"pipeline": "wan-vace"}, None, health, "http://b")
    health["models"] = {}
    with pytest.raises(generate_job.SettingsError, match="serve --wan-model"):
        generate_job.check_backend_can({"pipeline": "wan-vace"}, None, health, "http://b")
    # Wan takes the reference image itself: no IP-Adapter needed.
    health = {"pipelines": ["wan-vace"], "has_ip_adapter": False}
    assert generate_job.check_backend_can({"pipeline": "wan-vace"}, Path("ref.png"), health, "http://b") == "wan-vace"


def test_panel_wan_settings_reach_the_backend(backend_server, demo_scene, tmp_path):
    _use_backend(backend_server)
    settings = demo_scene.posebridge.generate
    settings.output_dir = str(tmp_path / "panel")
    settings.steps, settings.prompt, settings.name = 2, "a man walking", "Wan take"
    settings.pipeline, settings.wan_resolution, settings.segment = "WAN_VACE", "maps", SEGMENT
    client = _client(backend_server)
    jobs_before = len(client.jobs())
    assert bpy.ops.posebridge.generate() == {"FINISHED"}
    params = _params(tmp_path / "panel")
    assert (params["pipeline"], params["resolution"], params["segment"], params["vace_control"]) == (
        "wan-vace", "maps", SEGMENT, "pose")
    assert [j["frames"] for j in client.jobs()[jobs_before:]] == UNITS
    strip = vse.find_strip(bpy.context.scene, "Wan take")
    assert strip is not None and strip.type == "IMAGE" and len(strip.elements) == FRAMES


def test_panel_wan_request_and_what_cannot_work(demo_scene, tmp_path):
    settings = demo_scene.posebridge.generate
    settings.output_dir = str(tmp_path / "panel")
    props = settings.bl_rna.properties
    assert [(i.identifier, i.value) for i in props["vace_control"].enum_items] == [
        ("AUTO", 0), ("POSE", 1), ("DEPTH", 2), ("POSE_OVER_DEPTH", 3)]
    assert [(i.identifier, i.value) for i in props["wan_resolution"].enum_items] == [
        ("480p", 0), ("720p", 1), ("maps", 2)]
    assert "16 fps" in props["pipeline"].enum_items["WAN_VACE"].description
    # Wan's params go only with Wan: another pipeline (or an older backend) would refuse them.
    settings.wan_resolution = "720p"
    assert "resolution" not in request_from_settings(bpy.context).params
    settings.pipeline = "WAN_VACE"
    request = request_from_settings(bpy.context)
    assert (request.params["pipeline"], request.params["resolution"], request.segment) == ("wan-vace", "720p", None)
    assert "vace_control" not in request.params  # Auto: the backend's choice
    settings.vace_control = "POSE_OVER_DEPTH"
    assert request_from_settings(bpy.context).params["vace_control"] == "pose_over_depth"
    demo_scene.posebridge.depth = False
    with pytest.raises(RuntimeError, match="pose over depth control video needs depth maps"):
        bpy.ops.posebridge.generate()
    settings.vace_control, settings.segment = "POSE", 8
    with pytest.raises(RuntimeError, match="at least 9 frames"):
        bpy.ops.posebridge.generate()
    assert not (tmp_path / "panel").exists()  # nothing rendered, nothing sent


def test_panel_draws_wan_settings_and_greys_animatediffs(demo_scene):
    from test_panels import RecordingLayout

    settings = demo_scene.posebridge.generate
    settings.pipeline = "WAN_VACE"
    drawn = []

    class Layout(RecordingLayout):
        """Records (property, whether its row is active) and the labels."""

        def _child(self, *_args, **_kwargs):
            child = Layout(self.seen)
            child.active = getattr(self, "active", True)
            return child

        row = column = box = split = _child

        def prop(self, data, name, **kwargs):
            super().prop(data, name, **kwargs)
            drawn.append((name, getattr(self, "active", True), kwargs.get("text")))

        def panel(self, idname, **kwargs):
            super().panel(idname, **kwargs)
            return self._child(), self._child()

        def label(self, text="", **_kwargs):
            drawn.append(("label", True, text))

    from posebridge.panels.generate import POSEBRIDGE_PT_generate

    panel = type("Drawn", (), {"layout": Layout([])})()
    POSEBRIDGE_PT_generate.draw(panel, bpy.context)
    active = {name: is_active for name, is_active, _text in drawn if name != "label"}
    texts = {name: text for name, _active, text in drawn}
    labels = " ".join(text for name, _active, text in drawn if name == "label")
    assert active["wan_resolution"] and active["segment"] and texts["segment"] == "Segment (0: 81)"
    assert not active["context_length"] and not active["context_stride"] and not active["batch"]
    assert not active["vace_control"]  # no depth maps rendered: only pose can be shown
    assert "trained at 16 fps" in labels and "your timing holds" in labels
    demo_scene.posebridge.depth = True
    drawn.clear()
    POSEBRIDGE_PT_generate.draw(panel, bpy.context)
    assert dict((n, a) for n, a, _t in drawn if n != "label")["vace_control"]
