"""A backend under load (issue 13): past --max-queued waiting jobs POST /jobs answers 429 with
Retry-After and the client says the backend is busy (and waits, cancellably); a submit repeated
with its Idempotency-Key, also one whose client gave up on the answer, gets the first job back.
Against a real backend process (tiny model, --max-queued 1); skips without a backend Python."""
import http.client
import json
import threading
import time
from urllib.parse import urlsplit

import numpy as np
import pytest

from posebridge.generate.client import BackendBusy, BackendClient, BackendError, encode_frame, submit_when_free
from posebridge.generate.controls import control_frames
from posebridge.draw.png import write_png

SLOW = {"prompt": "a dancer", "steps": 30, "batch": 1, "pipeline": "frames"}
QUICK = {"prompt": "a dancer", "steps": 1, "batch": 1, "pipeline": "frames"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, backend_server):  # backend_server: skips where there is no backend
    import backend_process

    with backend_process.start_backend(tmp_path_factory.mktemp("busy"), token=backend_process.TEST_TOKEN,
                                       extra_args=("--max-queued", "1")) as proc:
        yield proc


@pytest.fixture(scope="module")
def poses(tmp_path_factory):
    folder = tmp_path_factory.mktemp("poses")
    for frame in range(1, 25):
        image = np.zeros((64, 64, 3), np.uint8)
        image[8:56, 2 * frame:2 * frame + 6] = (255, 0, 0)
        write_png(folder / f"pose_{frame:04d}.png", image)
    return control_frames(folder)


@pytest.fixture
def client(server):
    client = BackendClient(server.url, server.token)
    yield client
    for job in client.jobs():  # leave the queue empty for the next test
        if job["state"] in ("queued", "running"):
            client.cancel(job["id"])
            wait_state(client, job["id"], ("done", "failed", "cancelled"))


def wait_state(client, job_id, states, timeout=120):
    deadline = time.monotonic() + timeout
    while (status := client.status(job_id))["state"] not in states:
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    return status


def test_a_full_queue_answers_busy_with_retry_after(client, poses, server):
    running = client.submit(SLOW, poses, name="long")
    wait_state(client, running["id"], ("running",))
    waiting = client.submit(QUICK, poses[:1], name="waits")
    with pytest.raises(BackendBusy) as busy:
        client.submit(QUICK, poses[:1], name="refused")
    assert busy.value.status == 429 and busy.value.retry_after == 10
    assert f"the backend at {server.url} is busy: the queue is full: 1 jobs are waiting (--max-queued 1)" in str(
        busy.value)
    assert "refused" not in [job["name"] for job in client.jobs()]  # nothing was queued
    client.cancel(waiting["id"])
    assert client.submit(QUICK, poses[:1], name="now there is room")["state"] == "queued"


def test_a_run_waits_while_the_backend_is_busy_and_a_cancel_ends_the_wait(client, poses):
    running = client.submit(SLOW, poses, name="long")
    wait_state(client, running["id"], ("running",))
    client.submit(QUICK, poses[:1], name="waits")
    said, cancel, outcome = [], threading.Event(), {}

    class Stop(Exception):
        pass

    def check_cancel():
        if cancel.is_set():
            raise Stop

    def wait_for_room():
        try:
            submit_when_free(lambda: client.submit(QUICK, poses[:1], name="patient"), cancel, said.append,
                             check_cancel)
        except Stop:
            outcome["cancelled"] = True

    thread = threading.Thread(target=wait_for_room)
    thread.start()
    deadline = time.monotonic() + 30
    while not said and time.monotonic() < deadline:
        time.sleep(0.02)
    cancel.set()
    thread.join(5)
    assert not thread.is_alive() and outcome == {"cancelled": True}
    assert "is busy" in said[0] and said[0].endswith("trying again in 10 s")


def test_a_repeated_submit_with_its_key_gets_the_first_job(client, poses):
    first = client.submit(QUICK, poses[:2], name="keyed", idempotency_key="shot010-take3")
    again = client.submit(QUICK, poses[:2], name="keyed", idempotency_key="shot010-take3")
    assert again["id"] == first["id"]
    assert [job["id"] for job in client.jobs() if job["name"] == "keyed"] == [first["id"]]
    other = client.submit(QUICK, poses[:2], name="keyed", idempotency_key="shot010-take4")
    assert other["id"] != first["id"]


def test_a_submit_the_client_abandoned_is_matched_by_its_key(client, poses, server):
    """The client sends the job and gives up before the answer (a timeout); sent again with the
    same key, it gets the job the first request made: one job, not two."""
    body = json.dumps({"name": "abandoned", "params": QUICK,
                       "frames": [encode_frame(frame) for frame in poses[:3]]}).encode()
    address = urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    connection.request("POST", "/jobs", body=body, headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {server.token}",
        "Idempotency-Key": "abandoned-1"})
    connection.close()  # no answer read: the client gave up
    deadline = time.monotonic() + 30
    while not [job for job in client.jobs() if job["name"] == "abandoned"]:
        assert time.monotonic() < deadline, "the abandoned submit never made a job"
        time.sleep(0.05)
    again = client.submit(QUICK, poses[:3], name="abandoned", idempotency_key="abandoned-1")
    assert [job["id"] for job in client.jobs() if job["name"] == "abandoned"] == [again["id"]]


@pytest.mark.parametrize("key", ["has space", "x" * 201, "naïve"])
def test_a_malformed_key_is_refused_naming_the_header(client, poses, key):
    with pytest.raises(BackendError, match="Idempotency-Key"):
        client.submit(QUICK, poses[:1], idempotency_key=key)
