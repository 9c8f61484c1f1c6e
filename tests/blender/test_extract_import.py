"""Extract and Import in real Blender: a real video (pose2sim cam01.mp4, 60 fps, 1080x1920) sent
to a real backend process (MediaPipe on the CPU), the result unpacked into a new folder, the keys
at the scene's 24 fps, the video as a movie strip and the camera's background. Through the batch
command, the panel's operator and the step generator (cancel); plus the parts that need no
backend (resampled import, strip and clip placement)."""
from __future__ import annotations

import json
import socket
import time

import bpy
import pytest

import posebridge
from posebridge import batch
from posebridge.generate.client import BackendClient
from posebridge.render import extract_job, import_job, vse
from posebridge.render.background_clip import add_background_clip
from posebridge.render.demo_shot import build_demo_shot
from posebridge.render.job_steps import Waiting
from test_generate import _use_backend  # the add-on's preferences point at a test backend

SHOT_FRAMES = 4
LAST_VIDEO_FRAME = 11  # video frames 0..11 (0.183 s at 60 fps): grid frames 0..4 at 24 fps
KEYS = 5


@pytest.fixture
def clip(shared_data):
    return shared_data / "pose2sim" / "cam01.mp4"


@pytest.fixture
def shot(tmp_path):
    """The demo shot (24 fps), registered, saved so // means tmp_path."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    posebridge.register()
    scene = bpy.context.scene
    build_demo_shot(scene, frame_count=SHOT_FRAMES, resolution=(256, 256))
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    yield bpy.context.scene
    posebridge.unregister()


def _armature(scene):
    return scene.objects["DemoCharacter"]


def _user_strip(scene, frames=100):
    """A colour strip on channel 1 over the whole range: the user's, never to be replaced."""
    collection = vse.strips_collection(scene)
    ends = {"length": frames} if bpy.app.version >= (5, 0, 0) else {"frame_end": 1 + frames}
    return collection.new_effect(name="User", type="COLOR", channel=1, frame_start=1, **ends)


def _movie_strips(scene):
    return [s for s in vse.strips_collection(scene) if s.type == "MOVIE"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- without a backend -------------------------------------------------------------------------

def test_a_60_fps_clip_is_keyed_at_the_scenes_24_fps(shot, shared_data):
    """The real OpenPose output of cam01.mp4 (100 frames at 60 fps) as video frames: 40 keys at
    24 fps over the same 1.65 s, and the report says so."""
    summary = import_job.run_import(shot, import_job.ImportOptions(
        keypoints=str(shared_data / "pose2sim" / "cam01_json"), armature="DemoCharacter",
        canvas=(1080, 1920), source_fps=60.0))
    report = summary.report
    assert (report.first_frame, report.last_frame, report.frames) == (1, 40, 40)
    assert abs((report.last_frame - report.first_frame) / 24 - 99 / 60) < 1 / 24
    assert summary.notes[0] == "video 60 fps -> scene 24 fps: keys resampled by time"
    assert summary.grid_start == 0
    action = _armature(shot).animation_data.action
    assert tuple(round(f) for f in action.frame_range) == (1, 40)


def test_movie_strip_and_background_clip_line_up_with_the_keys(shot, clip):
    user = _user_strip(shot)
    movie, speed = vse.place_movie(shot, "cam01", clip, frame_start=-3, video_fps=60.0, frame_count=100)
    assert movie.channel == 2 and user.channel == 1 and user.frame_final_duration == 100
    # 100 video frames at 60 fps are 40 scene frames at 24 fps; the Speed strip plays them at 2.5x.
    assert (movie.frame_final_start, movie.frame_final_duration) == (-3, 40)
    assert speed.type == "SPEED" and speed.channel == 3 and speed.speed_factor == pytest.approx(2.5)
    assert (speed.frame_final_start, speed.frame_final_end) == (-3, 37)
    again, _ = vse.place_movie(shot, "cam01", clip, frame_start=-3, video_fps=60.0, frame_count=100)
    assert again.name != movie.name and again.channel == 4, "a second video never replaces the first"
    same_rate, none = vse.place_movie(shot, "same", clip, frame_start=1, video_fps=24.0, frame_count=100)
    assert none is None and same_rate.frame_final_duration == 100

    camera = shot.camera
    background = add_background_clip(shot, camera, clip, first_key_frame=1, video_frame=10, video_fps=60.0)
    entry = camera.data.background_images[-1]
    assert camera.data.show_background_images and entry.source == "MOVIE_CLIP"
    assert entry.clip.name == background.clip and entry.clip.frame_start == -9  # video frame 10 at scene frame 1
    assert "one video frame per scene frame" in background.note and "2.5x slower" in background.note


class _Recorder:
    """Stands in for the panel's layout: records what it draws (panels need a window to draw)."""

    def __init__(self):
        self.props, self.buttons = [], []

    def _child(self, *_args, **_kwargs):
        return self

    row = column = box = _child

    def prop(self, data, name, **_kwargs):
        assert name in data.bl_rna.properties, name
        self.props.append(name)

    def operator(self, idname, text=None, **_kwargs):
        self.buttons.append((idname, text))

    def label(self, **_kwargs):
        pass


def _draw_import_panel():
    from posebridge.panels.pose_maps import POSEBRIDGE_PT_import_pose

    layout = _Recorder()
    POSEBRIDGE_PT_import_pose.draw(type("Drawn", (), {"layout": layout})(), bpy.context)
    return layout


def test_the_panel_offers_extract_and_import_for_a_video(shot, clip):
    settings = shot.posebridge.importer
    settings.keypoints = "//keypoints"
    drawn = _draw_import_panel()
    assert drawn.buttons == [("posebridge.import_pose", None)] and "layout" in drawn.props
    assert "camera_tilt" in drawn.props  # the learned lift (default) says where the camera's tilt comes from
    settings.lift = "geometric"
    assert "camera_tilt" not in _draw_import_panel().props
    settings.lift = "learned"
    settings.keypoints = str(clip)
    drawn = _draw_import_panel()
    # Extract and Import, and the backend it goes to can be started from here too.
    assert drawn.buttons == [("posebridge.start_backend", "Start Local"), ("posebridge.import_pose", "Extract and Import")]
    assert {"extractor", "video_every", "use_video_range", "extract_dir", "add_movie_strip",
            "add_background"} <= set(drawn.props) and "layout" not in drawn.props


# -- against a real backend ----------------------------------------------------------------------

def _import_video(scene, clip, server, *extra):
    argv = ["import-pose", "--video", str(clip), "--armature", "DemoCharacter", "--backend", server.url,
            "--token", server.token, "--video-frames", f"0-{LAST_VIDEO_FRAME}", *map(str, extra)]
    return batch.main(argv, scene=scene)


def test_batch_extract_and_import_end_to_end_never_overwriting(shot, clip, backend_server, tmp_path, capsys):
    user = _user_strip(shot)
    old_action = _armature(shot).animation_data.action
    assert _import_video(shot, clip, backend_server) == 0
    output = capsys.readouterr().out
    folder = tmp_path / "posebridge_extract" / "cam01"
    info = json.loads((folder / "extraction.json").read_text())
    assert info["frames"] == list(range(LAST_VIDEO_FRAME + 1)) and info["fps"] == pytest.approx(60)
    assert len(list((folder / "keypoints").glob("frame_*_keypoints.json"))) == LAST_VIDEO_FRAME + 1
    assert "video 60 fps -> scene 24 fps: keys resampled by time" in output
    action = _armature(shot).animation_data.action
    assert action != old_action and tuple(round(f) for f in action.frame_range) == (1, KEYS)
    # 12 video frames span 11/60 s; the keys span 4/24 s, the grid frames inside it.
    assert (KEYS - 1) / 24 <= LAST_VIDEO_FRAME / 60 < KEYS / 24
    [movie] = _movie_strips(shot)
    assert movie.frame_final_start == 1 and movie.frame_final_duration == 40 and movie.channel == 2
    assert user.channel == 1 and user.frame_final_duration == 100
    camera = shot.camera.data
    assert camera.show_background_images and camera.background_images[-1].clip.frame_start == 1

    stamp = (folder / "extraction.json").stat().st_mtime_ns
    assert _import_video(shot, clip, backend_server, "--no-background") == 0
    assert (tmp_path / "posebridge_extract" / "cam01_2" / "extraction.json").is_file()
    assert (folder / "extraction.json").stat().st_mtime_ns == stamp, "the first result is untouched"
    assert len(_movie_strips(shot)) == 2 and movie.channel == 2, "the first strip stays where it was"
    assert len(camera.background_images) == 1
    assert _armature(shot).animation_data.action != action


def test_operator_extracts_and_imports_from_the_panels_settings(shot, clip, backend_server, tmp_path):
    _use_backend(backend_server)
    settings = shot.posebridge.importer
    settings.keypoints = str(clip)
    settings.armature = _armature(shot)
    # Video frames 10..21 (1/6 s to 0.35 s): grid frames 4..8 at 24 fps, so the video's time 0 is
    # 4 scene frames before the first key, and video frame 10 shows on it in the background.
    settings.use_video_range, settings.video_start, settings.video_end = True, 10, 10 + LAST_VIDEO_FRAME
    settings.extract_dir = str(tmp_path / "extracted")
    assert bpy.ops.posebridge.import_pose() == {"FINISHED"}
    assert (tmp_path / "extracted" / "cam01" / "extraction.json").is_file()
    action = _armature(shot).animation_data.action
    assert tuple(round(f) for f in action.frame_range) == (1, KEYS) and action.name.endswith("|cam01")
    [movie] = _movie_strips(shot)
    assert movie.frame_final_start == 1 - 4
    assert shot.camera.data.background_images[-1].clip.frame_start == 1 - 10


def test_cancel_mid_job_cancels_it_on_the_backend_and_leaves_no_action(shot, clip, backend_server, tmp_path):
    before = _armature(shot).animation_data.action
    actions = set(bpy.data.actions)
    request = extract_job.ExtractRequest(
        video=clip, backend_url=backend_server.url, token=backend_server.token,
        out_root=tmp_path / "extracted", options=import_job.ImportOptions(keypoints="", armature="DemoCharacter"))
    outcome = extract_job.ExtractOutcome()
    steps = extract_job.extract_steps(shot, request, outcome)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the backend has the job and works on it
        step = next(steps)
        assert isinstance(step, Waiting)
        if step.stage.startswith("extracting poses"):
            break
        time.sleep(0.02)
    steps.close()
    assert outcome.cancelled and outcome.text() == (
        "Extract and Import cancelled: the extraction job on the backend was cancelled; the rig is unchanged")
    client = BackendClient(backend_server.url, backend_server.token)
    job = [j for j in client.jobs() if j.get("kind") == "extract"][-1]
    for _ in range(100):
        if client.status(job["id"])["state"] == "cancelled":
            break
        time.sleep(0.1)
    assert client.status(job["id"])["state"] == "cancelled"
    assert _armature(shot).animation_data.action == before and set(bpy.data.actions) == actions
    assert not _movie_strips(shot) and not (tmp_path / "extracted").exists()


def test_a_job_cancelled_on_the_backend_by_someone_else_cancels_the_import(shot, clip, backend_server, tmp_path):
    """Not ESC: somebody DELETEs the job; the steps end early, the outcome says cancelled."""
    before = _armature(shot).animation_data.action
    request = extract_job.ExtractRequest(
        video=clip, backend_url=backend_server.url, token=backend_server.token,
        out_root=tmp_path / "extracted", options=import_job.ImportOptions(keypoints="", armature="DemoCharacter"))
    outcome = extract_job.ExtractOutcome()
    steps = extract_job.extract_steps(shot, request, outcome)
    client = BackendClient(backend_server.url, backend_server.token)
    deadline = time.monotonic() + 60
    for step in steps:
        assert isinstance(step, Waiting) and time.monotonic() < deadline
        if step.stage.startswith("extracting poses") and not outcome.job_id:
            outcome.job_id = [j for j in client.jobs() if j.get("kind") == "extract"][-1]["id"]
            client.cancel(outcome.job_id)
        time.sleep(0.02)
    assert outcome.cancelled and "was cancelled on the backend (not from here)" in outcome.text()
    assert outcome.text().endswith("; the rig is unchanged")
    assert _armature(shot).animation_data.action == before and not _movie_strips(shot)
    assert not (tmp_path / "extracted").exists()


@pytest.mark.parametrize("frames, message", [
    ("-5-10", "video frames start at 0, got '-5-10'"),
    ("10-5", "the end comes before the start in '10-5'"),
])
def test_video_frames_must_be_a_range_of_the_video(frames, message, capsys):
    with pytest.raises(SystemExit) as exit_info:  # a usage error before anything is sent
        batch.main(["import-pose", "--video", "clip.mp4", "--armature", "X", f"--video-frames={frames}"])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_the_extractor_keeps_its_saved_numbers(shot):
    """A .blend saves an enum's number: each item states its own, and they never change."""
    from posebridge import properties

    declared = eval(properties.POSEBRIDGE_PG_import.__annotations__["extractor"], vars(properties))  # a string
    assert all(len(item) == 4 for item in declared.keywords["items"])
    enum = shot.posebridge.importer.bl_rna.properties["extractor"]
    assert {item.identifier: item.value for item in enum.enum_items} == {"mediapipe": 0, "dwpose": 1}


def test_bad_video_and_absent_backend_are_named_and_change_nothing(shot, clip, tmp_path, capsys):
    before = _armature(shot).animation_data.action
    argv = ["import-pose", "--armature", "DemoCharacter", "--backend", f"http://127.0.0.1:{_closed_port()}"]
    assert batch.main(argv + ["--video", str(tmp_path / "missing.mp4")], scene=shot) == 2
    err = capsys.readouterr().err
    assert "--video" in err and "missing.mp4: no such file" in err
    assert batch.main(argv + ["--video", str(clip)], scene=shot) == 1
    err = capsys.readouterr().err
    assert "no backend at http://127.0.0.1:" in err and "is it running?" in err
    assert batch.main(["import-pose", "--keypoints", str(tmp_path), "--armature", "DemoCharacter",
                       "--extractor", "dwpose"], scene=shot) == 2
    assert "--extractor only goes with --video" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --video and --keypoints are exclusive
        batch.main(["import-pose", "--video", str(clip), "--keypoints", str(tmp_path), "--armature", "X"], scene=shot)
    assert _armature(shot).animation_data.action == before and not _movie_strips(shot)
    assert not (tmp_path / "posebridge_extract").exists()

    settings = shot.posebridge.importer
    settings.keypoints, settings.armature = str(tmp_path / "missing.mp4"), _armature(shot)
    settings.extract_dir = str(tmp_path / "extracted")
    with pytest.raises(RuntimeError, match="no such video file: .*missing.mp4"):  # the ERROR report
        bpy.ops.posebridge.import_pose()
    assert _armature(shot).animation_data.action == before
