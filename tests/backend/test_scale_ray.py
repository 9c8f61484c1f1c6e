"""serve --ray: a real local Ray cluster with two CPU generator replicas behind the usual HTTP API.

A 48-frame job is split over both replicas and gives the frames a single process makes (same
seed, inputs and torch threads) bit for bit; a replica killed mid-unit by its process id is
replaced and the job still ends with every frame once, the same frames; cancel stops a job and
the next one runs; the token guards the ingress; a wan-vace job comes back clip by clip; an ingress killed and restarted by Ray answers
for the finished jobs from its records. Skips when the backend venv has no Ray.
"""
import base64
import os
import signal
import time

import numpy as np
import pytest

pytest.importorskip("torch")

from test_server import call, call_json, download, job_body, submit, wait_until  # noqa: E402

from posebridge.backend.jobs import DONE, FrameInput, JobQueue  # noqa: E402
from posebridge.backend.pipelines import GenerateParams  # noqa: E402

NUMBERS = list(range(1, 49))
BODY = job_body(NUMBERS, shifts=[i % 24 for i in range(len(NUMBERS))], pipeline="frames", batch=4, steps=4, seed=7)


@pytest.fixture(scope="module")
def server(ray_backend_server):
    return ray_backend_server


@pytest.fixture(scope="module")
def single_process_frames(server, tmp_path_factory):
    """BODY's frames made in this process by the ordinary queue, with one torch thread as each
    CPU replica has."""
    import torch

    from posebridge.backend.model_loading import load_tiny_fallback

    models = load_tiny_fallback(str(server.model_dir), dict(device="cpu"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    queue = JobQueue(models, tmp_path_factory.mktemp("single"))
    queue.start()
    try:
        inputs = [FrameInput(f["frame"], base64.b64decode(f["pose"])) for f in BODY["frames"]]
        job = queue.submit(inputs, GenerateParams(**BODY["params"]))
        assert queue.wait(job.id, 600)["state"] == DONE
        from test_jobs import read_png

        return {n: read_png(job.frame_path(n)) for n in NUMBERS}
    finally:
        queue.stop()
        torch.set_num_threads(threads)


def unit_log(server) -> list[tuple[int, int]]:
    """(replica pid, first frame) of every unit started so far."""
    path = server.unit_pids / "units.log"
    lines = path.read_text().split("\n") if path.exists() else []
    return [tuple(map(int, line.split())) for line in lines if line]


def assert_frames(server, job, expected):
    assert job["state"] == "done", job
    assert job["frames_done"] == NUMBERS  # each frame once, in order
    for number in NUMBERS:
        np.testing.assert_array_equal(download(server, job["id"], number), expected[number], err_msg=f"frame {number}")


def test_health_names_the_replicas_models(server):
    status, health = call_json(server, "GET", "/health", token=None)
    assert status == 200 and health["status"] == "ready", health
    assert health["device"] == "cpu" and "frames" in health["pipelines"]


def test_token_is_enforced_on_the_ingress(server):
    assert call(server, "GET", "/jobs", token=None)[0] == 401
    assert call(server, "GET", "/jobs", token="wrong")[0] == 403
    assert call(server, "GET", "/jobs")[0] == 200


def test_a_job_split_over_both_replicas_gives_the_single_process_frames(server, single_process_frames):
    before = len(unit_log(server))
    job = wait_until(server, submit(server, BODY)["id"], timeout=300)
    assert_frames(server, job, single_process_frames)
    units = unit_log(server)[before:]
    assert sorted(first for _, first in units) == [1, 13, 25, 37]  # 4 units of 3 batches
    assert len({pid for pid, _ in units}) == 2, units  # both replicas worked


def test_a_replica_killed_mid_unit_is_replaced_and_the_job_completes(server, single_process_frames):
    before = len(unit_log(server))
    job_id = submit(server, BODY)["id"]
    deadline = time.monotonic() + 120
    while not (busy := list(server.unit_pids.glob("*.busy"))):
        assert time.monotonic() < deadline, "no replica started a unit"
        time.sleep(0.01)
    victim = int(busy[0].stem)
    os.kill(victim, signal.SIGKILL)
    job = wait_until(server, job_id, timeout=300)
    assert_frames(server, job, single_process_frames)
    units = unit_log(server)[before:]
    lost = [first for pid, first in units if pid == victim]
    assert lost and units.count((victim, lost[-1])) == 1
    retried = [first for pid, first in units if first == lost[-1] and pid != victim]
    assert retried == [lost[-1]], units  # the lost unit ran once more, on another replica
    # Ray started a new replica in the dead one's place: the next job runs on two replicas again.
    deadline = time.monotonic() + 120
    while True:
        before = len(unit_log(server))
        again = wait_until(server, submit(server, BODY)["id"], timeout=300)
        assert_frames(server, again, single_process_frames)
        pids = {pid for pid, _ in unit_log(server)[before:]}
        if len(pids) == 2:
            break
        assert time.monotonic() < deadline, "the killed replica was not replaced"
    assert victim not in pids


def test_cancel_stops_the_job_and_the_next_one_runs(server, single_process_frames):
    long_job = job_body(list(range(1, 97)), pipeline="frames", batch=4, steps=8, seed=7)
    job_id = submit(server, long_job)["id"]
    wait_until(server, job_id, states=("running",), timeout=120)
    status, cancelled = call_json(server, "DELETE", f"/jobs/{job_id}")
    assert status == 200
    cancelled = wait_until(server, job_id, timeout=120)
    assert cancelled["state"] == "cancelled", cancelled
    done = cancelled["frames_done"]
    assert done == list(range(1, len(done) + 1)) and len(done) < 96  # a prefix, in order
    job = wait_until(server, submit(server, BODY)["id"], timeout=300)
    assert_frames(server, job, single_process_frames)


def test_a_wan_job_runs_clip_after_clip_on_a_replica(server):
    """A wan-vace job longer than its segment: clips streamed back one by one through Ray."""
    from test_wan_vace import http_body

    body = http_body(20)
    body["params"]["segment"] = 9
    job = wait_until(server, submit(server, body)["id"], timeout=300)
    assert job["state"] == "done", job
    assert job["frames_done"] == list(range(1, 21))
    assert download(server, job["id"], 20).shape == (48, 64, 3)


def test_a_restarted_ingress_answers_for_finished_jobs(server, single_process_frames):
    job = wait_until(server, submit(server, BODY)["id"], timeout=300)
    assert job["state"] == "done"
    ingress = int((server.unit_pids / "ingress.pid").read_text())
    os.kill(ingress, signal.SIGKILL)
    deadline = time.monotonic() + 180
    while True:  # the proxy answers 5xx (or not at all) until Ray has started a new ingress
        try:
            status, again = call_json(server, "GET", f"/jobs/{job['id']}")
            if status == 200:
                break
        except (OSError, ValueError):
            pass
        assert time.monotonic() < deadline, "the ingress did not come back"
        time.sleep(0.5)
    assert int((server.unit_pids / "ingress.pid").read_text()) != ingress
    assert again["state"] == "done" and again["frames_done"] == NUMBERS
    assert_frames(server, again, single_process_frames)
    assert_frames(server, wait_until(server, submit(server, BODY)["id"], timeout=300), single_process_frames)
