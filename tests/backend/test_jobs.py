"""The job queue on the real tiny model: order, PNG frames on disk, progress, cancel, failures."""
import dataclasses
import threading

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")
from PIL import Image  # noqa: E402

from posebridge.backend.jobs import (  # noqa: E402
    CANCELLED,
    DONE,
    FAILED,
    QUEUED,
    FrameInput,
    JobQueue,
    frame_filename,
)
from posebridge.backend.pipelines import GenerateParams, generate  # noqa: E402
from frames_of import frames_of  # noqa: E402

SIZE = 64
PARAMS = dict(prompt="a dancer", seed=5, steps=2, batch=2)


def pose(shift: int) -> np.ndarray:
    """A pose-map-like image: a few coloured bars on black, moved right by ``shift``."""
    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    img[8:56, 20 + shift : 24 + shift] = (255, 0, 0)
    img[20:24, 8 + shift : 40 + shift] = (0, 255, 0)
    return img


def png_bytes(image: np.ndarray) -> bytes:
    import io

    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def frames_for(numbers, shifts=None, depth=False):
    shifts = shifts or [3 * i for i in range(len(numbers))]
    ramp = np.tile(np.linspace(0, 255, SIZE).astype(np.uint8)[:, None, None], (1, SIZE, 3))
    return [
        FrameInput(n, png_bytes(pose(s)), png_bytes(ramp) if depth else None) for n, s in zip(numbers, shifts)
    ]


@pytest.fixture
def queue(pipe, tmp_path):
    q = JobQueue(pipe, tmp_path / "work")
    q.start()
    yield q
    q.stop()


def read_png(path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        return np.asarray(image)


def test_frame_filename_pads_and_keeps_the_sign():
    assert frame_filename(1) == "frame_0001.png"
    assert frame_filename(12345) == "frame_12345.png"
    assert frame_filename(0) == "frame_0000.png"
    assert frame_filename(-5) == "frame_-005.png"


def test_job_writes_every_frame_as_png_matching_generate(queue, pipe):
    frames = frames_for([-1, 0, 1])
    job = queue.submit(frames, GenerateParams(**PARAMS), name="shot010")
    status = queue.wait(job.id, timeout=120)
    assert status["state"] == DONE and status["error"] is None
    assert status["name"] == "shot010"
    assert status["frames"] == status["frames_done"] == [-1, 0, 1]
    assert status["progress"] == 1.0 and status["queue_position"] == 0
    assert status["started"] >= status["created"] and status["finished"] >= status["started"]
    names = sorted(p.name for p in job.folder.iterdir())
    assert names == ["frame_-001.png", "frame_0000.png", "frame_0001.png"]
    # Batch by batch, lazily decoded: the very frames one generate() call gives.
    expected = frames_of(generate(pipe, [pose(0), pose(3), pose(6)], None, GenerateParams(**PARAMS)))
    for number, want in zip([-1, 0, 1], expected):
        got = read_png(queue.finished_frame_path(job.id, number))
        assert got.shape == (SIZE, SIZE, 3)
        np.testing.assert_array_equal(got, want)


def test_jobs_run_one_at_a_time_in_submission_order(queue):
    first = queue.submit(frames_for([1, 2, 3]), GenerateParams(**PARAMS))
    second = queue.submit(frames_for([1, 2]), GenerateParams(**{**PARAMS, "seed": 6}))
    a, b = queue.wait(first.id, 120), queue.wait(second.id, 120)
    assert a["state"] == b["state"] == DONE
    assert a["finished"] <= b["started"]
    assert [s["id"] for s in queue.statuses()] == [first.id, second.id]


def test_progress_counts_denoising_steps(pipe, tmp_path):
    seen = []

    def recording_generate(*args, on_progress, **kwargs):
        def step(done, total):
            on_progress(done, total)
            seen.append(queue.status(job_id)["progress"])

        return generate(*args, on_progress=step, **kwargs)

    queue = JobQueue(pipe, tmp_path, generate_fn=recording_generate)
    queue.start()
    try:
        job_id = queue.submit(frames_for([1, 2]), GenerateParams(**{**PARAMS, "steps": 4, "batch": 1})).id
        assert queue.wait(job_id, 120)["state"] == DONE
    finally:
        queue.stop()
    # Two frames of four steps each: progress moves an eighth per step.
    assert seen == pytest.approx([0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0])


def test_cancel_running_job_stops_at_a_step_and_keeps_finished_frames(pipe, tmp_path):
    """The cancel comes during the third frame's first step (batch 1): two frames stay."""

    def cancelling_generate(*args, on_progress, **kwargs):
        def step(done, total):
            on_progress(done, total)
            if len(queue.status(job_id)["frames_done"]) == 2:
                queue.cancel(job_id)

        return generate(*args, on_progress=step, **kwargs)

    queue = JobQueue(pipe, tmp_path, generate_fn=cancelling_generate)
    queue.start()
    try:
        job_id = queue.submit(frames_for([1, 2, 3, 4]), GenerateParams(**{**PARAMS, "batch": 1})).id
        status = queue.wait(job_id, 120)
        assert status["state"] == CANCELLED
        assert status["frames_done"] == [1, 2]
        assert sorted(p.name for p in (tmp_path / job_id).iterdir()) == ["frame_0001.png", "frame_0002.png"]
        assert queue.finished_frame_path(job_id, 3) is None
        # The queue goes on.
        after = queue.submit(frames_for([1]), GenerateParams(**PARAMS))
        assert queue.wait(after.id, 120)["state"] == DONE
    finally:
        queue.stop()


def test_cancel_queued_job_at_once(pipe, tmp_path):
    started, release = threading.Event(), threading.Event()

    def blocking_generate(*args, **kwargs):
        started.set()
        release.wait(60)
        return generate(*args, **kwargs)

    queue = JobQueue(pipe, tmp_path, generate_fn=blocking_generate)
    queue.start()
    try:
        running = queue.submit(frames_for([1]), GenerateParams(**PARAMS))
        assert started.wait(60)
        waiting = queue.submit(frames_for([1]), GenerateParams(**PARAMS))
        behind = queue.submit(frames_for([1]), GenerateParams(**PARAMS))
        assert queue.status(waiting.id)["state"] == QUEUED
        assert queue.status(waiting.id)["queue_position"] == 1
        assert queue.status(behind.id)["queue_position"] == 2
        queue.cancel(waiting.id)
        status = queue.status(waiting.id)
        assert status["state"] == CANCELLED and status["frames_done"] == []
        assert queue.status(behind.id)["queue_position"] == 1
        release.set()
        assert queue.wait(running.id, 120)["state"] == DONE
        assert queue.wait(behind.id, 120)["state"] == DONE
        assert queue.status(waiting.id)["state"] == CANCELLED
        assert queue.cancel("no-such-job") is None
    finally:
        release.set()
        queue.stop()


def test_failing_job_keeps_its_frames_and_the_next_job_runs(pipe, tmp_path):
    queue = JobQueue(pipe, tmp_path, fail_at_frame=3)
    queue.start()
    try:
        failing = queue.submit(frames_for([1, 2, 3, 4]), GenerateParams(**{**PARAMS, "batch": 1}))
        nxt = queue.submit(frames_for([7, 8]), GenerateParams(**PARAMS))
        status = queue.wait(failing.id, 120)
        assert status["state"] == FAILED
        assert "test fault at frame 3" in status["error"]
        assert status["frames_done"] == [1, 2]
        assert read_png(queue.finished_frame_path(failing.id, 2)).shape == (SIZE, SIZE, 3)
        assert queue.wait(nxt.id, 120)["state"] == DONE
    finally:
        queue.stop()


def test_model_error_at_run_time_fails_the_job(pipe, tmp_path):
    """A real error from the pipeline (depth frames, but no depth ControlNet loaded)."""
    pose_only = dataclasses.replace(pipe, pose_depth_pipe=None)
    queue = JobQueue(pose_only, tmp_path)
    queue.start()
    try:
        job = queue.submit(frames_for([1, 2], depth=True), GenerateParams(**PARAMS))
        status = queue.wait(job.id, 120)
        assert status["state"] == FAILED
        assert "without a depth ControlNet" in status["error"]
        ok = queue.submit(frames_for([1, 2]), GenerateParams(**PARAMS))
        assert queue.wait(ok.id, 120)["state"] == DONE
    finally:
        queue.stop()


def test_pose_and_depth_job(queue):
    job = queue.submit(frames_for([1, 2], depth=True), GenerateParams(**PARAMS))
    status = queue.wait(job.id, 120)
    assert status["state"] == DONE and status["frames_done"] == [1, 2]


def test_submit_refuses_an_empty_job(queue):
    with pytest.raises(ValueError, match="empty job"):
        queue.submit([], GenerateParams(**PARAMS))


def test_16_bit_grey_controls_keep_their_levels():
    """16-bit depth maps (depth_NNNN.png --depth-bits 16) reach the ControlNet as their top 8
    bits, not clipped to white as a plain convert("RGB") would."""
    import io

    import numpy as np
    from PIL import Image

    from posebridge.backend.jobs import _decode

    ramp = (np.arange(64, dtype=np.uint32)[None, :].repeat(8, 0) * 1024).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, format="PNG")
    decoded = np.asarray(_decode(buffer.getvalue()))
    assert decoded.shape == (8, 64, 3)
    np.testing.assert_array_equal(decoded[:, :, 0], (ramp >> 8).astype(np.uint8))
    np.testing.assert_array_equal(decoded[:, :, 0], decoded[:, :, 2])


def test_a_restarted_queue_answers_for_recorded_jobs(pipe, tmp_path):
    """Records in the work folder: a finished job's status and frames survive a restart; a job
    that had not finished comes back failed, saying why, with the frames it had finished."""
    work = tmp_path / "work"
    first = JobQueue(pipe, work)
    first.start()
    params = GenerateParams(**{**PARAMS, "prompts": {1: "a dancer", 3: "a runner"}})
    done = first.submit(frames_for([1, 2, 3]), params, name="shot010", key="client-key-1")
    before = first.wait(done.id, 120)
    first.stop()
    assert before["state"] == DONE
    # A job the backend never ran (its worker stopped first): recorded at submit, frames lost.
    unfinished = first.submit(frames_for([7, 8]), GenerateParams(**PARAMS))
    (work / unfinished.id / frame_filename(7)).write_bytes(png_bytes(pose(0)))  # as if 7 was made
    (work / ".records" / "0badc0de.json").write_text("{")  # a torn record is skipped

    again = JobQueue(pipe, work)
    again.start()
    try:
        after = again.status(done.id)
        assert after == {**before, "queue_position": 0}
        assert again.get(done.id).params.prompts == {1: "a dancer", 3: "a runner"}
        np.testing.assert_array_equal(read_png(again.finished_frame_path(done.id, 3)),
                                      read_png(work / done.id / frame_filename(3)))
        assert again.job_for_key("client-key-1") is again.get(done.id)  # a resubmit still finds it
        stopped = again.status(unfinished.id)
        assert stopped["state"] == FAILED and "stopped before this job finished" in stopped["error"]
        assert stopped["frames_done"] == [7]
        assert [s["id"] for s in again.statuses()] == [done.id, unfinished.id]
        # and the queue still runs new jobs
        new = again.submit(frames_for([1]), GenerateParams(**PARAMS))
        assert again.wait(new.id, 120)["state"] == DONE
    finally:
        again.stop()


def test_a_key_gives_one_job_and_a_full_queue_refuses_more(pipe, tmp_path):
    """Idempotency keys: a submit repeated with its key gets the first job back, also from
    threads racing; max_waiting bounds the jobs waiting (QueueFull), not the one running."""
    from concurrent.futures import ThreadPoolExecutor

    from posebridge.backend.jobs import QueueFull

    queue = JobQueue(pipe, tmp_path)  # not started: every job waits
    with ThreadPoolExecutor(4) as pool:
        jobs = list(pool.map(lambda _: queue.submit(frames_for([1]), GenerateParams(**PARAMS), key="same"),
                             range(8)))
    assert len({job.id for job in jobs}) == 1 and len(queue.statuses()) == 1
    other = queue.submit(frames_for([1]), GenerateParams(**PARAMS), key="other", max_waiting=2)
    assert other.id != jobs[0].id and queue.waiting() == 2
    with pytest.raises(QueueFull, match="2 jobs are waiting"):
        queue.submit(frames_for([1]), GenerateParams(**PARAMS), max_waiting=2)
    assert queue.submit(frames_for([1]), GenerateParams(**PARAMS), key="other", max_waiting=2) is other
    queue.cancel(other.id)
    assert queue.submit(frames_for([1]), GenerateParams(**PARAMS), max_waiting=2).id not in (jobs[0].id, other.id)


def test_a_full_disk_fails_the_job_naming_the_work_folder(queue, monkeypatch):
    """ENOSPC on the fourth frame (simulated where every frame is written: no test machine lets
    a disk fill): the job fails with the folder and the reason, the three frames before stay
    whole and listed, and no temporary file is left."""
    import errno
    import os

    import posebridge.backend.jobs as jobs_module

    real, written = jobs_module.write_bytes_atomic, []

    def fills_up(path, data):
        if len(written) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, data)
        written.append(path)

    monkeypatch.setattr(jobs_module, "write_bytes_atomic", fills_up)
    job = queue.submit(frames_for([1, 2, 3, 4, 5]), GenerateParams(**{**PARAMS, "batch": 1}))
    status = queue.wait(job.id, timeout=120)
    assert status["state"] == FAILED
    assert f"work folder {job.folder}" in status["error"] and "No space left on device" in status["error"]
    assert status["frames_done"] == [1, 2, 3]
    for number in (1, 2, 3):
        assert read_png(job.frame_path(number)).shape == (SIZE, SIZE, 3)
    assert sorted(p.name for p in job.folder.iterdir() if p.name.startswith(".")) == []


def test_a_work_folder_gone_mid_job_fails_the_job_naming_it(queue):
    """The job's folder turns into a file while it runs (a real OS error): the job fails naming
    the folder; the frames it had finished are listed and whole where they went."""
    job = queue.submit(frames_for(list(range(1, 13))), GenerateParams(**{**PARAMS, "batch": 1}))
    while not queue.status(job.id)["frames_done"]:
        assert queue.status(job.id)["state"] in (QUEUED, "running")
    moved = job.folder.with_name(job.folder.name + "-moved")
    job.folder.rename(moved)
    job.folder.write_text("not a folder any more")
    status = queue.wait(job.id, timeout=120)
    assert status["state"] == FAILED and f"work folder {job.folder}" in status["error"]
    assert 1 <= len(status["frames_done"]) < 12
    for number in status["frames_done"]:
        path = moved / frame_filename(number)
        if path.exists():  # written before the move (the last may have gone in after it)
            assert read_png(path).shape == (SIZE, SIZE, 3)
