"""Pose extraction and adherence over real HTTP (docs/backend_api.md), and their commands.

The session's backend (tiny model, token) runs the extract and adherence jobs on pose2sim's
cam01.mp4 with MediaPipe; a second server, whose generation models cannot load, no token and a
0.3 MiB request limit, shows the analysis jobs do not need the models and keep the same guards.
"""
import http.client
import io
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("mediapipe")

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))
import adherence_shot  # noqa: E402
import backend_process  # noqa: E402
from test_extract_video import write_video  # noqa: E402
from test_server import call, call_json, job_body, png_b64, wait_until  # noqa: E402

from posebridge.pose.formats.readers import load_keypoints  # noqa: E402

CAM01_SIZE = (1080, 1920)
SHARED_DATA = TESTS.parent.parent / "shared" / "data"


@pytest.fixture(scope="module")
def data():
    """The shared data folder for module fixtures (the ``shared_data`` fixture is per test)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="module")
def cam01(data) -> bytes:
    return (data / "pose2sim" / "cam01.mp4").read_bytes()


def post_video(server, query: str, data: bytes, *, token=...):
    """(status, JSON body) of POST /extract?query with ``data`` as the raw body."""
    token = server.token if token is ... else token
    request = urllib.request.Request(server.url + "/extract?" + query, data=data, method="POST")
    request.add_header("Content-Type", "application/octet-stream")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def submitted(answer) -> dict:
    status, job = answer
    assert status == 201, job
    return job


def result_zip(server, job_id) -> zipfile.ZipFile:
    status, headers, data = call(server, "GET", f"/jobs/{job_id}/result")
    assert status == 200, data[:300]
    assert headers["Content-Type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(data))


def run_done(server, job) -> dict:
    finished = wait_until(server, job["id"], timeout=300)
    assert finished["state"] == "done", finished
    return finished


# --- extraction jobs ------------------------------------------------------------------------------


def test_health_lists_the_extractors(backend_server):
    status, health = call_json(backend_server, "GET", "/health", token=None)
    assert status == 200 and "mediapipe" in health["extractors"]


def test_extract_video_job_and_its_result_zip(backend_server, cam01, tmp_path):
    job = submitted(post_video(backend_server, "start=20&end=24&every=2&maps=true&name=cam01.mp4", cam01))
    assert job["kind"] == "extract" and job["name"] == "cam01.mp4" and job["frames"] == [20, 22, 24]
    assert job["params"]["extractor"] == "mediapipe" and job["params"]["fps"] == 60.0
    done = run_done(backend_server, job)
    assert done["frames_done"] == [20, 22, 24] and done["progress"] == 1.0 and done["error"] is None

    with result_zip(backend_server, job["id"]) as archive:
        names = sorted(archive.namelist())
        archive.extractall(tmp_path)
    assert names == sorted(
        ["extraction.json", "sequence.json", "world.json"]
        + [f"keypoints/frame_{n:04d}_keypoints.json" for n in (20, 22, 24)]
        + [f"maps/pose_{n:04d}.png" for n in (20, 22, 24)]
    )
    info = json.loads((tmp_path / "extraction.json").read_text())
    assert (info["video"], info["fps"], info["width"], info["height"], info["frames"]) == (
        "cam01.mp4", 60.0, *CAM01_SIZE, [20, 22, 24])
    seq = load_keypoints(tmp_path / "keypoints", canvas=CAM01_SIZE).sequence
    assert list(seq.frame_numbers) == [20, 22, 24] and (seq.part("body")[..., 2] > 0).sum() >= 3 * 12

    _, listing = call_json(backend_server, "GET", "/jobs")
    listed = next(j for j in listing["jobs"] if j["id"] == job["id"])
    assert listed["kind"] == "extract" and listed["state"] == "done"
    status, body = call_json(backend_server, "GET", f"/jobs/{job['id']}/frames/20")
    assert status == 404 and "/result" in body["detail"]


def test_cancel_keeps_the_frames_done_and_the_result_says_so(backend_server, cam01, tmp_path):
    job = submitted(post_video(backend_server, "maps=true&name=cam01.mp4", cam01))
    deadline = time.monotonic() + 120
    while call_json(backend_server, "GET", f"/jobs/{job['id']}")[1]["progress"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status, body = call_json(backend_server, "GET", f"/jobs/{job['id']}/result")
    assert status == 409 and "running" in body["detail"]
    assert call_json(backend_server, "DELETE", f"/jobs/{job['id']}")[0] == 200
    stopped = wait_until(backend_server, job["id"])
    assert stopped["state"] == "cancelled" and 0 < len(stopped["frames_done"]) < 100
    with result_zip(backend_server, job["id"]) as archive:
        info = json.loads(archive.read("extraction.json"))
        keypoints = sorted(n for n in archive.namelist() if n.startswith("keypoints/"))
    assert info["complete"] is False and info["frames"] == stopped["frames_done"]
    assert keypoints == [f"keypoints/frame_{n:04d}_keypoints.json" for n in stopped["frames_done"]]


def test_extraction_does_not_wait_behind_a_generation_job(backend_server, cam01):
    body = job_body(list(range(1, 21)), pipeline="frames", steps=500, batch=1)
    slow = submitted(call_json(backend_server, "POST", "/jobs", body))
    try:
        wait_until(backend_server, slow["id"], states=("running",))
        extract = submitted(post_video(backend_server, "start=0&end=1", cam01))
        assert extract["queue_position"] == 0
        run_done(backend_server, extract)
        assert call_json(backend_server, "GET", f"/jobs/{slow['id']}")[1]["state"] == "running"
    finally:
        call_json(backend_server, "DELETE", f"/jobs/{slow['id']}")
    assert wait_until(backend_server, slow["id"])["state"] == "cancelled"


def test_token_is_required(backend_server, cam01):
    assert post_video(backend_server, "end=1", cam01, token=None)[0] == 401
    status, body = post_video(backend_server, "end=1", cam01, token="wrong")
    assert status == 403 and body["detail"] == "wrong token"
    for path in ("/extract/frames", "/adherence"):
        assert call_json(backend_server, "POST", path, {}, token=None)[0] == 401
    assert call_json(backend_server, "GET", "/jobs/x/result", token=None)[0] == 401


def test_bad_requests_name_the_problem(backend_server, cam01):
    for query, code, needle in (
        ("extractor=openpose", 422, "query.extractor"),
        ("every=0", 422, "query.every"),
        ("start=-1", 422, "query.start"),
        ("start=5&end=3", 422, "end (3) is before start (5)"),
        ("evry=2&colour=red", 422, "query.colour: unknown parameter; query.evry: unknown parameter"),
        ("start=100&name=cam01.mp4", 400, "start 100 is past the end of cam01.mp4: its frames are 0..99"),
    ):
        status, body = post_video(backend_server, query, cam01)
        assert status == code and needle in body["detail"], (query, body)
    status, body = post_video(backend_server, "name=notes.mp4", b"these are not video bytes")
    assert status == 400 and "cannot read notes.mp4 as a video" in body["detail"]
    status, body = post_video(backend_server, "", b"")
    assert status == 400 and "empty body" in body["detail"]
    if "dwpose" not in call_json(backend_server, "GET", "/health")[1]["extractors"]:
        status, body = post_video(backend_server, "extractor=dwpose", cam01)
        assert status == 400 and "extractor 'dwpose' cannot run on this backend" in body["detail"]
        assert "dw-ll_ucoco_384.onnx" in body["detail"] or "yolox_l.onnx" in body["detail"]
    frame = {"frame": 1, "image": png_b64(np.zeros((8, 8, 3), np.uint8))}
    for path, body in (("/extract/frames", {"frames": [frame], "extractor": "openpose"}),
                       ("/adherence", {"generated": [frame], "keypoints": [], "extractor": "openpose"})):
        status, answer = call_json(backend_server, "POST", path, body)
        assert status == 422 and "extractor" in answer["detail"], answer
    status, answer = call_json(backend_server, "POST", "/extract/frames", {"frames": [frame, frame]})
    assert status == 400 and "duplicate frame numbers: 1" in answer["detail"]
    status, answer = call_json(backend_server, "POST", "/adherence", {
        "generated": [frame], "keypoints": [{"frame": 1, "document": {"people": "nobody"}}]})
    assert status == 400 and "keypoints frame 1" in answer["detail"]
    assert call_json(backend_server, "GET", "/jobs/nope/result")[0] == 404


# --- pictures and adherence ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def shot(data, tmp_path_factory):
    """Three pose2sim frames (scaled 0.4) as generated frames and their real keypoints."""
    return adherence_shot.build_shot(data, tmp_path_factory.mktemp("shot"), frames=(0, 36, 72))


def b64_file(path: Path) -> str:
    import base64

    return base64.b64encode(path.read_bytes()).decode()


def test_extract_frames_job(backend_server, shot, tmp_path):
    frames = [{"frame": n, "image": b64_file(shot / f"frame_{n:04d}.png")} for n in (72, 0, 36)]
    job = submitted(call_json(backend_server, "POST", "/extract/frames",
                              {"name": "shot", "frames": frames, "fps": 60, "maps": True, "body_only": True}))
    assert job["kind"] == "extract" and job["frames"] == [0, 36, 72]
    assert run_done(backend_server, job)["frames_done"] == [0, 36, 72]
    with result_zip(backend_server, job["id"]) as archive:
        archive.extractall(tmp_path)
    info = json.loads((tmp_path / "extraction.json").read_text())
    assert (info["width"], info["height"], info["fps"], info["video"]) == (432, 768, 60.0, "shot")
    assert info["people"] == [1, 1, 1] and sorted(p.name for p in (tmp_path / "maps").iterdir()) == [
        "pose_0000.png", "pose_0036.png", "pose_0072.png"]
    person = json.loads((tmp_path / "keypoints" / "frame_0036_keypoints.json").read_text())["people"][0]
    assert person["hand_left_keypoints_2d"] == []  # body only


def test_adherence_job_on_real_frames(backend_server, shot):
    keypoints = shot / "poses" / "keypoints"
    body = {
        "generated": [{"frame": n, "image": b64_file(shot / f"frame_{n:04d}.png")} for n in (0, 36, 72)],
        "keypoints": [{"frame": n, "document": json.loads((keypoints / f"pose_{n:04d}_keypoints.json").read_text())}
                      for n in (0, 36, 72)],
        "threshold": 0.4,
    }
    job = submitted(call_json(backend_server, "POST", "/adherence", body))
    assert job["kind"] == "adherence" and job["params"] == {"extractor": "mediapipe", "threshold": 0.4}
    assert run_done(backend_server, job)["frames_done"] == [0, 36, 72]
    with result_zip(backend_server, job["id"]) as archive:
        assert sorted(archive.namelist()) == ["adherence.json", "adherence.png"]
        report = json.loads(archive.read("adherence.json"))
        assert archive.read("adherence.png").startswith(b"\x89PNG")
    assert report["format"] == "posebridge-adherence" and report["threshold"] == 0.4
    assert [f["frame"] for f in report["frames"]] == [0, 36, 72]
    assert report["score"] >= 0.65, report


# --- without generation models; guards ------------------------------------------------------------


@pytest.fixture(scope="module")
def modelless_server(tmp_path_factory):
    """No token, a 0.3 MiB request limit, 4 frames a job, and generation models that cannot be had
    offline."""
    python = backend_process.backend_python()
    if python is None:
        pytest.skip("no backend Python")
    tmp = tmp_path_factory.mktemp("modelless")
    port = backend_process.free_port()
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--model", "posebridge-tests/no-such-model",
            "--device", "cpu", "--work-dir", str(tmp / "work"), "--max-request-mb", "0.3",
            "--max-frames", "4"]
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp / "empty-hf-home")}
    with open(tmp / "stdout.txt", "wb") as out, open(tmp / "stderr.txt", "wb") as err:
        process = subprocess.Popen(backend_process.backend_command(python, *args), cwd=tmp, stdout=out, stderr=err,
                                   env=backend_process._backend_env(tmp, env))
    server = backend_process.BackendProcess(process, port, None, tmp / "stdout.txt", tmp / "stderr.txt")
    try:
        deadline = time.monotonic() + backend_process.START_TIMEOUT
        while True:
            assert server.alive(), server.stderr_tail()
            try:
                if call_json(server, "GET", "/health")[1].get("status") == "error":
                    break
            except (OSError, ValueError):
                pass
            assert time.monotonic() < deadline, server.stderr_tail()
            time.sleep(0.2)
        yield server
    finally:
        server.stop()


def test_analysis_jobs_run_when_the_models_failed_to_load(modelless_server, tmp_path):
    status, health = call_json(modelless_server, "GET", "/health")
    assert status == 503 and health["status"] == "error" and "mediapipe" in health["extractors"]
    assert call_json(modelless_server, "POST", "/jobs", job_body([1]))[0] == 503
    clip = write_video(tmp_path / "clip.mp4", count=6, width=160, height=120, rate=25)
    job = submitted(post_video(modelless_server, "every=2&name=clip.mp4", clip.read_bytes()))
    done = run_done(modelless_server, job)
    assert done["frames_done"] == [0, 2, 4]
    with result_zip(modelless_server, job["id"]) as archive:
        info = json.loads(archive.read("extraction.json"))
    assert (info["width"], info["height"], info["fps"], info["people"]) == (160, 120, 25.0, [0, 0, 0])


def test_a_video_job_over_the_frame_limit_is_refused_and_leaves_nothing(modelless_server, tmp_path):
    clip = write_video(tmp_path / "clip.mp4", count=6, width=160, height=120, rate=25)
    status, body = post_video(modelless_server, "name=clip.mp4", clip.read_bytes())
    assert status == 413 and "too many frames: 6, the limit is 4" in body["detail"]
    work_dir = modelless_server.stdout_path.parent / "work"  # the fixture's --work-dir
    assert work_dir.is_dir() and not list(work_dir.glob("*.input"))  # the upload did not stay


def test_request_size_limit_and_host_check(modelless_server, cam01):
    assert len(cam01) > 0.3 * 2**20
    status, body = post_video(modelless_server, "name=cam01.mp4", cam01)
    assert status == 413 and "request too large" in body["detail"]
    host, port = modelless_server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest("POST", "/extract?end=1", skip_host=True)
        connection.putheader("Host", "evil.example")
        connection.putheader("Content-Length", "4")
        connection.endheaders(b"abcd")
        response = connection.getresponse()
        assert response.status == 403 and "is not this machine" in json.loads(response.read())["detail"]
    finally:
        connection.close()


# --- the commands ---------------------------------------------------------------------------------


def test_extract_command_end_to_end(shared_data, tmp_path):
    out = tmp_path / "out"
    done = backend_process.run_backend_command(
        tmp_path, "extract", str(shared_data / "pose2sim" / "cam01.mp4"), "--out", str(out),
        "--start", "30", "--end", "32", "--maps", "--body-only")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "extracted 3 frame(s) of cam01.mp4 (1080x1920, 60 fps) with mediapipe" in done.stdout
    assert sorted(p.name for p in (out / "maps").iterdir()) == ["pose_0030.png", "pose_0031.png", "pose_0032.png"]
    seq = load_keypoints(out / "keypoints", canvas=CAM01_SIZE).sequence
    assert list(seq.frame_numbers) == [30, 31, 32]


def test_adherence_command_end_to_end(shot, tmp_path):
    done = backend_process.run_backend_command(
        tmp_path, "adherence", "--generated", str(shot), "--keypoints", str(shot / "poses" / "keypoints"),
        "--out", str(tmp_path / "report"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pose adherence" in done.stdout and "over 3 frame(s)" in done.stdout
    assert json.loads((tmp_path / "report" / "adherence.json").read_text())["score"] >= 0.65
    assert (tmp_path / "report" / "adherence.png").is_file()


def test_command_usage_errors_exit_2_and_extraction_errors_exit_1(shared_data, tmp_path):
    video = str(shared_data / "pose2sim" / "cam01.mp4")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.json").write_text("{}")
    for args, needle in (
        (["extract", str(tmp_path / "missing.mp4"), "--out", "o"], "no such video file"),
        (["extract", video], "--out"),
        (["extract", video, "--out", "o", "--start", "5", "--end", "3"], "--end 3 is before --start 5"),
        (["extract", video, "--out", "o", "--every", "0"], "must be at least 1"),
        (["extract", video, "--out", "o", "--extractor", "openpose"], "unknown extractor 'openpose'"),
        (["extract", video, "--out", str(tmp_path / "full")], "is not an empty folder"),
        (["extract", video, "--out", "o", "--dwpose-dir", str(tmp_path / "none")], "--dwpose-dir: no such folder"),
        (["adherence", "--keypoints", str(tmp_path)], "--generated"),
        (["adherence", "--generated", str(tmp_path / "none"), "--keypoints", str(tmp_path)], "no such folder"),
        (["adherence", "--generated", str(tmp_path), "--keypoints", str(tmp_path), "--threshold", "2"],
         "between 0 and 1"),
    ):
        done = backend_process.run_backend_command(tmp_path, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert needle in done.stderr, (args, done.stderr)
    (tmp_path / "notes.mp4").write_text("not a video")
    done = backend_process.run_backend_command(tmp_path, "extract", str(tmp_path / "notes.mp4"), "--out", "o")
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1].startswith(
        "posebridge-backend extract: error: cannot read notes.mp4 as a video"), done.stderr
    done = backend_process.run_backend_command(tmp_path, "extract", video, "--out", "o2", "--start", "100")
    assert done.returncode == 1 and "start 100 is past the end of cam01.mp4" in done.stderr
