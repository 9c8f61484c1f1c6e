"""BackendClient against a real backend process (tiny model, CPU), plus the failures that need
no backend at all. The server tests skip when no backend Python exists (``backend_server``)."""
import base64
import http.server
import socket
import threading
import time

import numpy as np
import pytest

from posebridge.generate.client import (
    BackendAuthError,
    BackendClient,
    BackendError,
    BackendRequestError,
    BackendUnavailable,
    encode_frame,
)
from posebridge.generate.controls import ControlFrame, control_frames
from posebridge.draw.png import read_png, write_png


def write_poses(folder, frames, size=64, prefix="pose"):
    folder.mkdir(parents=True, exist_ok=True)
    for f in frames:
        image = np.random.default_rng(abs(f) + 7).integers(0, 255, (size, size, 3), dtype=np.uint8)
        write_png(folder / f"{prefix}_{f:04d}.png", image)
    return folder


def wait_finished(client, job_id):
    while True:
        status = client.status(job_id)
        if status["state"] in ("done", "failed", "cancelled"):
            return status
        time.sleep(0.1)


@pytest.fixture
def client(backend_server):
    return BackendClient(backend_server.url, backend_server.token)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


# -- without a backend -------------------------------------------------------------------------

def test_nothing_listening_is_backend_unavailable_naming_the_url():
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(BackendUnavailable, match=f"no backend at {url} — is it running?") as caught:
        BackendClient(url, timeout=2).health()
    assert isinstance(caught.value, BackendError) and caught.value.url == url


def test_a_server_that_never_answers_times_out_as_unavailable():
    with socket.socket() as sock:  # listens, never accepts or answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(BackendUnavailable, match=r"answered within 0.3 s — is it running\?"):
            BackendClient(url, timeout=0.3).health()


def test_bad_urls_are_refused_up_front():
    for url in ("127.0.0.1:8765", "ftp://host", "http://", "http://host:notaport"):
        with pytest.raises(BackendError, match="backend URL"):
            BackendClient(url)
    assert BackendClient("http://127.0.0.1:8765/").url == "http://127.0.0.1:8765"
    assert BackendClient("https://gpu.example/posebridge/").url == "https://gpu.example/posebridge"


def test_submit_waits_long_other_calls_time_out_quickly(monkeypatch, tmp_path):
    """The backend decodes every frame before it answers POST /jobs: submit must outwait that
    (SUBMIT_TIMEOUT), while health/status keep the client's short timeout."""
    from posebridge.generate import client as client_module

    used = []

    class NoConnection:
        def __init__(self, host, port, timeout):
            used.append(timeout)

        def request(self, *args, **kwargs):
            raise ConnectionRefusedError

        def close(self):
            pass

    monkeypatch.setattr(client_module.http.client, "HTTPConnection", NoConnection)
    client = BackendClient("http://127.0.0.1:9", timeout=5)
    poses = write_poses(tmp_path / "poses", [1])
    for call in (client.health, lambda: client.status("x"), lambda: client.submit({}, control_frames(poses))):
        with pytest.raises(BackendUnavailable):
            call()
    # submit asks twice (the second time with the same Idempotency-Key): its answer may be what was lost
    assert used == [5, 5, client_module.SUBMIT_TIMEOUT, client_module.SUBMIT_TIMEOUT]
    assert client_module.SUBMIT_TIMEOUT >= 600
    assert BackendClient("http://127.0.0.1:9", timeout=900).submit_timeout == 900  # never shorter


def test_frames_are_sent_as_the_files_own_png_bytes(tmp_path):
    poses = write_poses(tmp_path / "poses", [3])
    depth = write_poses(tmp_path / "depth", [3], prefix="depth")
    [frame] = control_frames(poses, depth)
    entry = encode_frame(frame)
    assert entry["frame"] == 3
    assert base64.b64decode(entry["pose"]) == (poses / "pose_0003.png").read_bytes()
    assert base64.b64decode(entry["depth"]) == (depth / "depth_0003.png").read_bytes()
    assert "depth" not in encode_frame(ControlFrame(3, frame.pose))


def test_something_else_on_the_port_is_not_taken_for_a_backend():
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>hello</html>")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(BackendError, match="did not answer like a PoseBridge backend"):
            BackendClient(url).health()
    finally:
        server.shutdown()
        server.server_close()


# -- against the backend -----------------------------------------------------------------------

def test_health_reports_ready_models_and_device(client):
    health = client.health()
    assert health["status"] == "ready"
    assert health["device"] == "cpu"
    assert set(health["models"]) >= {"model", "pose_controlnet"}


def test_submit_poll_and_download_frames(client, tmp_path):
    poses = write_poses(tmp_path / "poses", [-2, 5, 7])
    job = client.submit({"steps": 2, "seed": 1}, control_frames(poses), name="client-test")
    assert job["frames"] == [-2, 5, 7] and job["name"] == "client-test"
    assert job["state"] in ("queued", "running", "done")

    status = wait_finished(client, job["id"])
    assert status["state"] == "done" and status["frames_done"] == [-2, 5, 7]
    png = client.download_frame(job["id"], 5)
    out = tmp_path / "frame.png"
    out.write_bytes(png)
    image = read_png(out)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert any(j["id"] == job["id"] for j in client.jobs())


def test_submit_with_depth_maps(client, tmp_path):
    poses = write_poses(tmp_path / "poses", [1, 2])
    depth = write_poses(tmp_path / "depth", [1, 2], prefix="depth")
    job = client.submit({"steps": 2}, control_frames(poses, depth))
    assert wait_finished(client, job["id"])["frames_done"] == [1, 2]


def test_request_errors_carry_the_backends_detail(client, tmp_path):
    poses = write_poses(tmp_path / "poses", [1])
    with pytest.raises(BackendRequestError, match="params.steps") as caught:
        client.submit({"steps": 0}, control_frames(poses))
    assert caught.value.status == 422 and "steps" in caught.value.detail
    with pytest.raises(BackendRequestError, match="unknown parameter") as caught:
        client.submit({"stepz": 2}, control_frames(poses))
    assert "params.stepz" in caught.value.detail

    not_png = tmp_path / "bad" / "pose_0001.png"
    not_png.parent.mkdir()
    not_png.write_bytes(b"this is not an image")
    with pytest.raises(BackendRequestError) as caught:
        client.submit({"steps": 2}, [ControlFrame(1, not_png)])
    assert caught.value.status == 400

    with pytest.raises(BackendRequestError) as caught:
        client.status("no-such-job")
    assert caught.value.status == 404 and "no-such-job" in str(caught.value)


def test_download_of_a_frame_outside_the_job_is_a_request_error(client, tmp_path):
    job = client.submit({"steps": 2}, control_frames(write_poses(tmp_path / "poses", [1])))
    wait_finished(client, job["id"])
    with pytest.raises(BackendRequestError, match="not in the job") as caught:
        client.download_frame(job["id"], 99)
    assert caught.value.status == 404


def test_cancel_returns_the_jobs_status(client, tmp_path):
    job = client.submit({"steps": 2}, control_frames(write_poses(tmp_path / "poses", [1])))
    status = client.cancel(job["id"])
    assert status["id"] == job["id"]
    assert wait_finished(client, job["id"])["state"] in ("cancelled", "done")  # it may have finished first


def test_token_missing_and_token_rejected(backend_server, tmp_path):
    assert backend_server.token, "the session backend is started with a token"
    poses = control_frames(write_poses(tmp_path / "poses", [1]))
    # /health is open: a client can tell "no backend" from "wrong token".
    assert BackendClient(backend_server.url).health()["status"] == "ready"
    with pytest.raises(BackendAuthError, match="token missing") as caught:
        BackendClient(backend_server.url).submit({"steps": 2}, poses)
    assert caught.value.status == 401
    with pytest.raises(BackendAuthError, match="token rejected") as caught:
        BackendClient(backend_server.url, token="wrong").jobs()
    assert caught.value.status == 403
