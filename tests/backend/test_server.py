"""The backend service as a real process over real HTTP (urllib), on the tiny model.

One server per module with small limits (--max-frames 6, --max-request-mb 1), and a second one
started pose-only with the test fault hook (POSEBRIDGE_BACKEND_TEST_FAIL_AT_FRAME=3).
"""
import base64
import http.client
import io
import json
import struct
import subprocess
import sys
import time
import zlib
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
from PIL import Image  # noqa: E402

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))
import backend_process  # noqa: E402

REPO = TESTS.parent
TOKEN = "s3cret-token"
SIZE = 64
FAST = {"steps": 2, "seed": 11, "prompt": "a dancer"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if backend_process.backend_python() is None:
        pytest.skip("no backend Python")
    with backend_process.start_backend(
        tmp_path_factory.mktemp("server"),
        token=TOKEN,
        extra_args=("--max-frames", "6", "--max-request-mb", "1", "--batch", "2"),
    ) as proc:
        yield proc


@pytest.fixture(scope="module")
def faulty_server(tmp_path_factory):
    """Pose only, no token, and every job fails just before its frame 3."""
    if backend_process.backend_python() is None:
        pytest.skip("no backend Python")
    with backend_process.start_backend(
        tmp_path_factory.mktemp("faulty"),
        extra_args=("--depth-controlnet", "none", "--batch", "1"),
        env={"POSEBRIDGE_BACKEND_TEST_FAIL_AT_FRAME": "3"},
    ) as proc:
        yield proc


# --- HTTP helpers -------------------------------------------------------------------------------


def call(server, method, path, body=None, *, token=..., raw: bytes | None = None):
    """(status, headers, body bytes). token=... uses the server's token; None sends none."""
    token = server.token if token is ... else token
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read()


def call_json(server, method, path, body=None, **kwargs):
    status, _, data = call(server, method, path, body, **kwargs)
    return status, json.loads(data)


def wait_until(server, job_id, states=("done", "failed", "cancelled"), timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        status, job = call_json(server, "GET", f"/jobs/{job_id}")
        assert status == 200, job
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']}"
        time.sleep(0.05)


def png_b64(image: np.ndarray) -> str:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def pose(shift: int, size=(SIZE, SIZE)) -> np.ndarray:
    img = np.zeros((size[1], size[0], 3), np.uint8)
    img[8:56, 20 + shift : 24 + shift] = (255, 0, 0)
    img[20:24, 8 + shift : 40 + shift] = (0, 255, 0)
    return img


def depth(size=(SIZE, SIZE)) -> np.ndarray:
    ramp = np.linspace(0, 255, size[1]).astype(np.uint8)
    return np.tile(ramp[:, None, None], (1, size[0], 3))


def job_body(numbers, shifts=None, *, with_depth=False, **params):
    shifts = shifts if shifts is not None else [4 * i for i in range(len(numbers))]
    frames = []
    for n, s in zip(numbers, shifts):
        frame = {"frame": n, "pose": png_b64(pose(s))}
        if with_depth:
            frame["depth"] = png_b64(depth())
        frames.append(frame)
    return {"name": "test", "params": {**FAST, **params}, "frames": frames}


def submit(server, body):
    status, job = call_json(server, "POST", "/jobs", body)
    assert status == 201, job
    return job


def download(server, job_id, frame) -> np.ndarray:
    status, headers, data = call(server, "GET", f"/jobs/{job_id}/frames/{frame}")
    assert status == 200, data
    assert headers["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        return np.asarray(image)


def run_job(server, body) -> tuple[dict, list[np.ndarray]]:
    job = wait_until(server, submit(server, body)["id"])
    assert job["state"] == "done", job
    return job, [download(server, job["id"], n) for n in job["frames"]]


# --- health, auth, schema -----------------------------------------------------------------------


def test_health_is_open_and_ready(server):
    status, health = call_json(server, "GET", "/health", token=None)
    assert status == 200
    assert health["status"] == "ready"
    assert health["device"] == "cpu" and health["dtype"] == "fp32"
    assert health["has_depth"] is True
    assert set(health["models"]) == {
        "model", "pose_controlnet", "depth_controlnet", "motion_adapter", "ip_adapter", "wan_model"}
    assert health["pipelines"] == ["animatediff", "frames", "wan-vace"]  # the default first
    assert health["wan_loaded"] is False  # loads on the first wan-vace job
    assert health["has_ip_adapter"] is True and health["max_context_length"] == 32
    assert health["version"] == backend_version()
    assert "PoseBridge backend listening on http://127.0.0.1:" in server.stdout_text()


def test_token_missing_401_wrong_403(server):
    for path in ("/jobs", "/jobs/x", "/openapi.json"):
        status, body = call_json(server, "GET", path, token=None)
        assert status == 401 and "Authorization: Bearer" in body["detail"]
        status, body = call_json(server, "GET", path, token="wrong")
        assert status == 403 and body["detail"] == "wrong token"
    status, _, _ = call(server, "POST", "/jobs", job_body([1]), token=None)
    assert status == 401
    assert call_json(server, "GET", "/jobs")[0] == 200


def test_openapi_schema_is_published(server):
    status, schema = call_json(server, "GET", "/openapi.json")
    assert status == 200
    paths = schema["paths"]
    assert {"/health", "/jobs", "/jobs/{job_id}", "/jobs/{job_id}/frames/{frame}"} <= set(paths)
    assert {"get", "post"} <= set(paths["/jobs"]) and "delete" in paths["/jobs/{job_id}"]
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    params = schema["components"]["schemas"]["JobParams"]
    assert params["additionalProperties"] is False
    assert {"prompt", "seed", "steps", "pose_scale", "batch", "width"} <= set(params["properties"])


# --- jobs ---------------------------------------------------------------------------------------


def test_job_runs_and_frames_download_as_png(server):
    job, frames = run_job(server, job_body([-1, 0, 1], with_depth=True))
    assert job["frames"] == job["frames_done"] == [-1, 0, 1]
    assert job["progress"] == 1.0 and job["error"] is None and job["queue_position"] == 0
    assert job["params"]["batch"] == 2  # the server's --batch
    assert all(f.shape == (SIZE, SIZE, 3) for f in frames)
    work = next(Path(server.stdout_path).parent.glob(f"work/{job['id']}"))
    assert sorted(p.name for p in work.iterdir()) == ["frame_-001.png", "frame_0000.png", "frame_0001.png"]
    _, listing = call_json(server, "GET", "/jobs")
    assert job["id"] in [j["id"] for j in listing["jobs"]]


def test_width_and_height_set_the_output_size(server):
    _, frames = run_job(server, job_body([1], width=72, height=56))
    assert frames[0].shape == (56, 72, 3)


def test_same_seed_and_poses_give_identical_frames_other_poses_other_frames(server):
    _, first = run_job(server, job_body([1, 2], [0, 8]))
    _, again = run_job(server, job_body([1, 2], [0, 8]))
    _, other = run_job(server, job_body([1, 2], [16, 24]))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    for a, c in zip(first, other):
        assert np.abs(a.astype(int) - c.astype(int)).mean() > 1.0


def test_jobs_run_in_submission_order(server):
    first = submit(server, job_body([1, 2, 3]))
    second = submit(server, job_body([1, 2], seed=12))
    assert second["queue_position"] in (0, 1)
    a, b = wait_until(server, first["id"]), wait_until(server, second["id"])
    assert a["state"] == b["state"] == "done"
    assert a["finished"] <= b["started"]


def test_cancel_running_and_queued_jobs(server):
    slow = {"steps": 500, "batch": 1}  # long enough to still be running when cancelled
    running = submit(server, job_body([1, 2, 3, 4, 5, 6], **slow))
    queued = submit(server, job_body([1, 2], **slow))
    assert queued["state"] == "queued" and queued["queue_position"] >= 1

    status, cancelled = call_json(server, "DELETE", f"/jobs/{queued['id']}")
    assert status == 200 and cancelled["state"] == "cancelled" and cancelled["frames_done"] == []

    wait_until(server, running["id"], states=("running",))
    status, _ = call_json(server, "DELETE", f"/jobs/{running['id']}")
    assert status == 200
    stopped = wait_until(server, running["id"])
    assert stopped["state"] == "cancelled"
    for n in stopped["frames_done"]:
        assert download(server, running["id"], n).shape == (SIZE, SIZE, 3)
    for n in set(stopped["frames"]) - set(stopped["frames_done"]):
        assert call(server, "GET", f"/jobs/{running['id']}/frames/{n}")[0] == 404

    # The queue goes on, and the cancelled jobs stay cancelled.
    run_job(server, job_body([1]))
    assert call_json(server, "GET", f"/jobs/{queued['id']}")[1]["state"] == "cancelled"
    assert call_json(server, "GET", f"/jobs/{running['id']}")[1]["frames_done"] == stopped["frames_done"]


def test_unknown_job_and_frame_404(server):
    status, body = call_json(server, "GET", "/jobs/nope")
    assert status == 404 and "nope" in body["detail"]
    assert call_json(server, "DELETE", "/jobs/nope")[0] == 404
    job, _ = run_job(server, job_body([1]))
    status, body = call_json(server, "GET", f"/jobs/{job['id']}/frames/99")
    assert status == 404 and "not in the job" in body["detail"]


# --- bad input ----------------------------------------------------------------------------------


def expect_error(server, body, code, *needles, raw=None):
    status, _, data = call(server, "POST", "/jobs", body, raw=raw)
    detail = json.loads(data)["detail"]
    assert status == code, (status, detail)
    for needle in needles:
        assert needle in detail, detail


def test_not_an_image(server):
    body = job_body([1, 2])
    body["frames"][1]["pose"] = base64.b64encode(b"hello, not a png").decode()
    expect_error(server, body, 400, "frame 2 pose: not a PNG image")
    body["frames"][1]["pose"] = "%%% not base64 %%%"
    expect_error(server, body, 400, "frame 2", "not an image")


def bilevel_png(width: int, height: int) -> bytes:
    """A black 1-bit PNG of any size, written row by row: 12000x12000 is ~20 KB of PNG (and
    ~18 MB of zeros streamed through zlib) but would be 144 MB and more once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the packed bits
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def encoded(image: np.ndarray, fmt: str) -> str:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format=fmt)
    return base64.b64encode(out.getvalue()).decode()


def test_oversized_png_is_refused_before_it_is_decoded(server):
    big = base64.b64encode(bilevel_png(12000, 12000)).decode()
    assert len(big) < 100_000  # far under the test server's 1 MiB request limit
    body = job_body([1, 2, 3])
    body["frames"][2]["pose"] = big
    expect_error(server, body, 400, "frame 3 pose: 12000x12000 is larger than 4096x4096")
    # One side over is enough; 20000x20000 also trips Pillow's own decompression bomb error.
    body["frames"][2]["pose"] = base64.b64encode(bilevel_png(4104, 64)).decode()
    expect_error(server, body, 400, "frame 3 pose: 4104x64 is larger than 4096x4096")
    body["frames"][2]["pose"] = base64.b64encode(bilevel_png(20000, 20000)).decode()
    expect_error(server, body, 400, "frame 3 pose", "larger than 4096x4096")
    body = job_body([1], with_depth=True)
    body["frames"][0]["depth"] = big
    expect_error(server, body, 400, "frame 1 depth: 12000x12000 is larger than 4096x4096")
    assert call_json(server, "GET", "/health")[0] == 200  # and it still serves


def test_only_png_control_images_are_accepted(server):
    for fmt in ("JPEG", "BMP", "TIFF", "GIF"):
        body = job_body([1, 2, 3])
        body["frames"][2]["pose"] = encoded(pose(8), fmt)
        expect_error(server, body, 400, "frame 3 pose: not a PNG image")
    body = job_body([1], with_depth=True)
    body["frames"][0]["depth"] = encoded(depth(), "JPEG")
    expect_error(server, body, 400, "frame 1 depth: not a PNG image")


def test_pose_depth_size_mismatch(server):
    body = job_body([1], with_depth=True)
    body["frames"][0]["depth"] = png_b64(depth((32, 32)))
    expect_error(server, body, 400, "pose/depth size mismatch", "64x64", "32x32")


def test_frames_of_different_sizes(server):
    body = job_body([1, 2])
    body["frames"][1]["pose"] = png_b64(pose(0, (72, 64)))
    expect_error(server, body, 400, "different sizes", "frame 2 is 72x64")


def test_depth_for_some_frames_only(server):
    body = job_body([1, 2], with_depth=True)
    del body["frames"][1]["depth"]
    expect_error(server, body, 400, "every frame or none")


def test_size_not_a_multiple_of_8(server):
    body = job_body([1])
    body["frames"][0]["pose"] = png_b64(pose(0, (60, 64)))
    expect_error(server, body, 400, "multiple of 8")


def test_unknown_parameter_names_the_field(server):
    expect_error(server, job_body([1], stepz=3), 422, "params.stepz", "unknown parameter")
    body = job_body([1])
    body["colour"] = "red"
    expect_error(server, body, 422, "colour", "unknown parameter")
    body = job_body([1])
    body["frames"][0]["normal"] = "x"
    expect_error(server, body, 422, "frames.0.normal", "unknown parameter")


def test_bad_values_name_the_field(server):
    expect_error(server, job_body([1], steps=0), 422, "params.steps", "greater than or equal to 1")
    expect_error(server, job_body([1], width=63), 422, "params.width", "multiple of 8")
    expect_error(server, job_body([1], control_start=0.8, control_end=0.2), 422, "control_start")
    expect_error(server, job_body([1], depth_start=0.7, depth_end=0.3), 422, "depth_start")
    expect_error(server, job_body([1], seed=-1), 422, "params.seed")
    expect_error(server, None, 422, "", raw=b"{not json")


def test_empty_job_and_duplicate_frames(server):
    expect_error(server, job_body([]), 400, "empty job")
    expect_error(server, job_body([1, 2, 1, 2]), 400, "duplicate frame numbers: 1, 2")


def test_too_many_frames_413(server):
    expect_error(server, job_body(list(range(7)), [0] * 7), 413, "too many frames", "7", "6")


def _connection(server) -> http.client.HTTPConnection:
    host, port = server.url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=60)


def test_too_large_body_413_by_content_length_before_reading(server):
    """Only the headers are sent: the server answers from Content-Length alone."""
    connection = _connection(server)
    try:
        connection.putrequest("POST", "/jobs")
        connection.putheader("Authorization", f"Bearer {server.token}")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(2 * 2**20))
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413
        assert "request too large" in json.loads(response.read())["detail"]
    finally:
        connection.close()


def test_too_large_body_413_by_counting_bytes(server):
    """Chunked, so no Content-Length: the server counts the bytes as they come. Just over the
    1 MiB limit is sent (all of it is read, so the server's close is clean)."""
    connection = _connection(server)
    try:
        connection.putrequest("POST", "/jobs")
        connection.putheader("Authorization", f"Bearer {server.token}")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        piece = b"x" * 65536
        for _ in range(16):
            connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        connection.send(b"10\r\n" + b"y" * 16 + b"\r\n")  # 16 bytes over; no final chunk
        response = connection.getresponse()
        assert response.status == 413
        assert "request too large" in json.loads(response.read())["detail"]
    finally:
        connection.close()
    assert call_json(server, "GET", "/health")[0] == 200  # and it still serves


def test_a_body_under_the_limit_is_read(server):
    body = job_body([1])
    body["name"] = "n" * 100  # a normal request through the counting path
    assert call(server, "POST", "/jobs", body)[0] == 201


# --- the pose-only, faulty server ---------------------------------------------------------------


def test_failing_job_keeps_its_finished_frames_and_the_next_runs(faulty_server):
    failing = submit(faulty_server, job_body([1, 2, 3, 4], pipeline="frames"))
    after = submit(faulty_server, job_body([5, 6]))
    job = wait_until(faulty_server, failing["id"])
    assert job["state"] == "failed"
    assert "test fault at frame 3" in job["error"]
    assert job["frames_done"] == [1, 2]
    assert download(faulty_server, job["id"], 2).shape == (SIZE, SIZE, 3)
    status, body = call_json(faulty_server, "GET", f"/jobs/{job['id']}/frames/3")
    assert status == 404 and "not finished" in body["detail"]
    assert wait_until(faulty_server, after["id"])["state"] == "done"


def test_failing_temporal_job_lists_no_frame_and_the_next_runs(faulty_server):
    """An animatediff job has no final frame before its last step: failing halfway through the
    denoising, it lists none and leaves none in its folder."""
    failing = submit(faulty_server, job_body([1, 2, 3, 4], pipeline="animatediff", steps=4))
    after = submit(faulty_server, job_body([5, 6], pipeline="animatediff"))
    job = wait_until(faulty_server, failing["id"])
    assert job["state"] == "failed" and "mid-denoising" in job["error"]
    assert job["frames_done"] == []
    assert 0.2 <= job["progress"] < 0.95
    status, body = call_json(faulty_server, "GET", f"/jobs/{job['id']}/frames/1")
    assert status == 404 and "not finished" in body["detail"]
    done = wait_until(faulty_server, after["id"])
    assert done["state"] == "done" and done["frames_done"] == [5, 6]


def test_depth_without_depth_controlnet(faulty_server):
    assert call_json(faulty_server, "GET", "/health")[1]["has_depth"] is False
    expect_error(faulty_server, job_body([1], with_depth=True), 400, "without a depth ControlNet")


def test_no_token_server_is_open(faulty_server):
    assert call_json(faulty_server, "GET", "/jobs", token=None)[0] == 200


def get_with_host(server, path, host, token=None):
    """(status, JSON body) of GET path sent to the server's socket with this Host header."""
    connection = _connection(server)
    try:
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", host)
        if token:
            connection.putheader("Authorization", f"Bearer {token}")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_no_token_server_refuses_other_host_names_dns_rebinding(faulty_server):
    """A page on evil.example whose DNS now says 127.0.0.1 reaches the port, but its requests
    still carry Host: evil.example."""
    port = faulty_server.port
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}", "localhost.evil.example"):
        for path in ("/jobs", "/health", "/openapi.json"):
            status, body = get_with_host(faulty_server, path, host)
            assert status == 403, (host, path, body)
            assert f"Host header {host!r} is not this machine" in body["detail"]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LocalHost", f"[::1]:{port}", "127.0.0.2", "[::1]"):
        assert get_with_host(faulty_server, "/jobs", host)[0] == 200, host


def test_token_server_takes_any_host_with_the_token(server):
    assert get_with_host(server, "/jobs", "gpu-box.example:8765", token=server.token)[0] == 200
    assert get_with_host(server, "/jobs", "gpu-box.example:8765")[0] == 401


def test_host_header_parsing():
    from posebridge.backend.guards import LocalHostGuard, host_of

    assert host_of("LocalHost:8765") == "localhost"
    assert host_of("[::1]:8765") == host_of("[::1]") == host_of("::1") == "::1"
    assert host_of("127.0.0.1") == "127.0.0.1"
    for bad in ("[::1", "[::1]x", "[::1]:", "127.0.0.1:80x", "host:"):
        assert host_of(bad) is None, bad
    guard = LocalHostGuard(None, bound_host="backend.lan")
    for ok in ("localhost", "localhost:1", "127.0.0.1:9", "127.9.9.9", "[::1]:1", "BACKEND.lan:8765"):
        assert guard.allowed(ok), ok
    for bad in ("evil.example", "", "[::2]:1", "0.0.0.0", "10.0.0.1:8765", "[::1]evil", "::1]:80"):
        assert not guard.allowed(bad), bad


# --- the command --------------------------------------------------------------------------------


def backend_version() -> str:
    from posebridge import backend

    return backend.__version__


def test_versions_agree():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    manifest = tomllib.loads((REPO / "blender_manifest.toml").read_text())["version"]
    assert backend_version() == project == manifest


def test_cli_refuses_non_loopback_host_without_token(tmp_path):
    done = backend_process.run_backend_command(tmp_path, "serve", "--host", "0.0.0.0", "--port", "0")
    assert done.returncode == 2
    assert "refusing to listen on 0.0.0.0" in done.stderr and "--token" in done.stderr


def test_cli_usage_errors_exit_2(tmp_path):
    for args, needle in (
        (["serve", "--port", "99999"], "port must be"),
        (["serve", "--model", str(tmp_path / "missing.safetensors")], "no such file"),
        (["serve", "--batch", "0"], "at least 1"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ):
        done = backend_process.run_backend_command(tmp_path, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert needle in done.stderr, (args, done.stderr)


def test_backend_exits_when_its_parent_pid_is_gone(tmp_path):
    """--parent-pid: the backend Blender started must not outlive Blender, even after a crash."""
    if backend_process.backend_python() is None:
        pytest.skip("no backend Python")
    parent = subprocess.Popen(["sleep", "60"])
    try:
        backend = backend_process.start_backend(tmp_path, extra_args=("--parent-pid", str(parent.pid)))
    except BaseException:
        parent.kill()
        parent.wait()
        raise
    with backend:
        time.sleep(3)  # a few polls while the parent lives: it stays up
        assert backend.alive()
        parent.kill()
        parent.wait()  # reaped: the PID is gone, as after a crash
        try:
            code = backend.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("the backend was still running 20 s after its parent exited")
    assert code == 0  # a graceful shutdown, as on SIGTERM
    assert f"parent process {parent.pid} has exited" in backend.stderr_tail()


def test_parent_pid_that_does_not_exist_is_a_usage_error(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    done = backend_process.run_backend_command(tmp_path, "serve", "--parent-pid", str(gone.pid), "--port", "0")
    assert done.returncode == 2
    assert f"--parent-pid {gone.pid}: no such process" in done.stderr


def test_make_tiny_model_writes_the_model_set_file(tmp_path):
    model = backend_process.make_tiny_model(tmp_path)
    names = json.loads((model / "posebridge-models.json").read_text())
    assert names == {
        "base": "base", "openpose": "controlnet-openpose", "depth": "controlnet-depth",
        "motion_adapter": "motion-adapter", "ip_adapter": "ip-adapter", "wan_vace": "wan-vace",
        "preview_lora": "preview-lora.safetensors",
    }
    assert (model / "wan-vace" / "model_index.json").is_file()
    assert (model / names.pop("preview_lora")).is_file()
    for folder in names.values():
        assert (model / folder).is_dir()
    assert (model / "base" / "model_index.json").is_file()


def test_pyproject_installs_the_command():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["posebridge-backend"] == "posebridge.backend.cli:main"
    setuptools = project["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"posebridge": "."}
    assert "posebridge.backend" in setuptools["packages"]
    extra = " ".join(project["project"]["optional-dependencies"]["backend"])
    for name in ("torch", "diffusers", "transformers", "accelerate", "fastapi", "uvicorn", "pillow"):
        assert name in extra


def test_loopback_hosts():
    from posebridge.backend.cli import is_loopback

    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.10", "10.0.0.1"):
        assert not is_loopback(host), host


def test_token_from_environment_and_model_set_resolution(monkeypatch, tmp_path):
    from posebridge.backend.cli import build_parser
    from posebridge.backend.model_choice import resolve_models
    from posebridge.backend.model_set import write_model_set

    monkeypatch.setenv("POSEBRIDGE_BACKEND_TOKEN", "from-env")
    parser = build_parser()
    for name in ("b", "p", "d", "m"):
        (tmp_path / name).mkdir()
    write_model_set(tmp_path, "b", "p", "d", motion_adapter="m")
    args = parser.parse_args(["serve", "--model", str(tmp_path)])
    assert args.token == "from-env"
    keys = ("model", "pose_controlnet", "depth_controlnet", "motion_adapter")
    expected = dict(zip(keys, (str((tmp_path / n).resolve()) for n in "bpdm")), ip_adapter=None, wan_model=None,
                    union_controlnet=None, preview_lora=None, family="sd15")
    assert resolve_models(args, parser) == expected  # the set names no IP-Adapter nor Wan: none is loaded
    args = parser.parse_args(["serve", "--model", str(tmp_path), "--depth-controlnet", "none",
                              "--motion-adapter", "none", "--ip-adapter", str(tmp_path / "d")])
    chosen = resolve_models(args, parser)
    assert chosen["depth_controlnet"] is None and chosen["motion_adapter"] is None
    assert chosen["ip_adapter"] == str(tmp_path / "d")
    # A plain model (no set file) takes the published adapters by default.
    args = parser.parse_args(["serve", "--model", "some/hub-model"])
    chosen = resolve_models(args, parser)
    assert chosen["motion_adapter"] == "guoyww/animatediff-motion-adapter-v1-5-3"
    assert chosen["ip_adapter"] == "h94/IP-Adapter"
    assert chosen["wan_model"] == "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
    args = parser.parse_args(["serve", "--model", "some/hub-model", "--wan-model", "none"])
    assert resolve_models(args, parser)["wan_model"] is None


def test_fallback_tiny_model_serves_when_the_models_are_not_available(tmp_path):
    """Offline with an empty Hugging Face cache, the default models cannot load: with
    --fallback-tiny-model the backend makes and serves the tiny set, and says so in /health."""
    if backend_process.backend_python() is None:
        pytest.skip("no backend Python")
    fallback = tmp_path / "fallback-model"
    with backend_process.start_backend(
        tmp_path / "run", model_dir="stable-diffusion-v1-5/stable-diffusion-v1-5",
        extra_args=("--fallback-tiny-model", str(fallback)),
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty-hf-home")},
    ) as server:
        with urllib.request.urlopen(server.url + "/health", timeout=10) as response:
            health = json.loads(response.read())
        stderr = server.stderr_tail()
    assert health["status"] == "ready" and health["models"]["fallback"] == "tiny"
    assert health["models"]["model"] == str((fallback / "base").resolve())
    assert (fallback / "posebridge-models.json").is_file()
    assert "is not available" in stderr and "tiny random-weight" in stderr


# --- LoRAs ---------------------------------------------------------------------------------------


def test_a_job_with_a_lora_over_http(server, tmp_path, tiny_model):
    """params.loras names files on the backend's machine: the frames change with the LoRA, go
    back without it, and a file that is not there is refused at once, naming the field."""
    from conftest import load_tiny
    from test_loras import write_kohya_lora

    lora = write_kohya_lora(load_tiny(tiny_model), tmp_path / "style.safetensors", seed=9)
    _, plain = run_job(server, job_body([1], pipeline="frames"))
    _, styled = run_job(server, job_body([1], pipeline="frames", loras=[{"source": lora, "weight": 1.0}]))
    _, again = run_job(server, job_body([1], pipeline="frames"))
    assert np.abs(styled[0].astype(int) - plain[0]).mean() > 1.0
    np.testing.assert_array_equal(again[0], plain[0])
    missing = str(tmp_path / "gone.safetensors")
    status, answer = call_json(server, "POST", "/jobs", job_body([1], loras=[{"source": missing}]))
    assert status == 400 and answer["detail"].startswith("params.loras.0.source: no such file")
    status, answer = call_json(server, "POST", "/jobs", job_body([1], loras=[{"source": lora, "weight": 7}]))
    assert status == 422 and "params.loras.0.weight" in answer["detail"]
