"""backend/scale: a job's units spread over two replicas (each with its own loaded tiny model)
give the single-process queue's frames bit for bit, listed in job order; a lost replica's unit
runs again once; cancel keeps the listed frames; a wan-vace job's clips are listed as each is
finished."""
import time

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from conftest import load_tiny  # noqa: E402
from test_jobs import PARAMS, frames_for, png_bytes, read_png  # noqa: E402
from test_wan_vace import FAST, CallSpy, poses  # noqa: E402

from posebridge.backend.jobs import CANCELLED, DONE, FAILED, FrameInput, JobQueue  # noqa: E402
from posebridge.backend.pipelines import GenerateParams  # noqa: E402
from posebridge.backend.scale.local_replica import LocalReplica, ReplicaLost  # noqa: E402
from posebridge.backend.scale.scaled_queue import ReplicaPool, ScaledJobQueue  # noqa: E402

NUMBERS = list(range(1, 13))  # 12 frames in batches of 2: units of 4, 4, 2 and 2 frames on two replicas


@pytest.fixture(scope="module")
def second_models(tiny_model):
    """A second copy of the tiny model: two replicas must not share one diffusers pipeline."""
    return load_tiny(tiny_model)


@pytest.fixture(scope="module")
def single_process_frames(pipe, tmp_path_factory):
    queue = JobQueue(pipe, tmp_path_factory.mktemp("single"))
    queue.start()
    try:
        job = queue.submit(frames_for(NUMBERS), GenerateParams(**PARAMS))
        assert queue.wait(job.id, 300)["state"] == DONE
        return {n: read_png(job.frame_path(n)) for n in NUMBERS}
    finally:
        queue.stop()


class FirstUnitLast(LocalReplica):
    """Holds the job's first unit back until the other units have finished (so the job's frames
    arrive out of order); records when units end."""

    def __init__(self, models, finished, others):
        super().__init__(models)
        self.finished, self.others = finished, others

    def run_unit(self, work, **hooks):
        if work.inputs[0].frame == NUMBERS[0]:
            deadline = time.monotonic() + 300
            while len(self.finished) < self.others and time.monotonic() < deadline:
                time.sleep(0.01)
        yield from super().run_unit(work, **hooks)
        self.finished.append(work.inputs[0].frame)


class Breaks(LocalReplica):
    """Its first unit fails (an error of the unit itself, not a lost replica)."""

    def run_unit(self, work, **hooks):
        raise MemoryError("out of memory in this unit")
        yield


class Dies(LocalReplica):
    """Loses ``times`` units (the replica process dying mid-unit, as Ray reports it)."""

    def __init__(self, models, times):
        super().__init__(models)
        self.times, self.lost = times, 0

    def run_unit(self, work, **hooks):
        if self.lost < self.times:
            self.lost += 1
            raise ReplicaLost("replica died")
        yield from super().run_unit(work, **hooks)


def run_job(replicas, tmp_path, params=PARAMS, on_status=None):
    pool = ReplicaPool(replicas)
    queue = ScaledJobQueue(replicas[0].models, tmp_path, pool.run_unit, concurrency=pool.size)
    queue.start()
    try:
        job = queue.submit(frames_for(NUMBERS), GenerateParams(**params))
        if on_status:
            on_status(queue, job)
        return queue.wait(job.id, 300), job
    finally:
        queue.stop()


def test_two_replicas_give_the_single_process_frames_in_job_order(pipe, second_models, single_process_frames, tmp_path):
    finished = []
    slow = FirstUnitLast(pipe, finished, others=3)
    fast = FirstUnitLast(second_models, finished, others=3)
    listed = []

    def watch(queue, job):
        while queue.status(job.id)["state"] not in (DONE, FAILED, CANCELLED):
            listed.append(list(queue.status(job.id)["frames_done"]))
            time.sleep(0.02)

    status, job = run_job([slow, fast], tmp_path, on_status=watch)
    assert status["state"] == DONE and status["frames_done"] == NUMBERS
    for n in NUMBERS:
        np.testing.assert_array_equal(read_png(job.frame_path(n)), single_process_frames[n])
    # frames_done only ever grew from the job's start, although the first unit came back last
    assert finished[-1] == NUMBERS[0] and len(finished) == 4
    assert all(seen == NUMBERS[: len(seen)] for seen in listed)
    assert sorted(p.name for p in job.folder.iterdir()) == [f"frame_{n:04d}.png" for n in NUMBERS]


def test_a_lost_unit_runs_again_once_and_every_frame_comes_once(pipe, second_models, single_process_frames, tmp_path):
    dies = Dies(pipe, times=1)
    status, job = run_job([dies, LocalReplica(second_models)], tmp_path)
    assert status["state"] == DONE and status["frames_done"] == NUMBERS
    assert dies.lost == 1
    for n in NUMBERS:
        np.testing.assert_array_equal(read_png(job.frame_path(n)), single_process_frames[n])


def test_a_unit_lost_twice_fails_the_job_and_keeps_listed_frames(pipe, tmp_path):
    dying = Dies(pipe, times=99)
    status, job = run_job([dying], tmp_path)
    assert status["state"] == FAILED and "ReplicaLost" in status["error"]
    assert dying.lost == 2  # the first try and one retry
    assert status["frames_done"] == []


def test_a_failing_unit_fails_the_job_and_stops_the_others(pipe, second_models, tmp_path):
    status, job = run_job([Breaks(pipe), LocalReplica(second_models)], tmp_path, params={**PARAMS, "steps": 4})
    assert status["state"] == FAILED and "out of memory in this unit" in status["error"]
    done = status["frames_done"]
    assert len(done) < len(NUMBERS) and done == NUMBERS[: len(done)]


def test_cancel_stops_the_units_and_keeps_a_prefix(pipe, second_models, tmp_path):
    def cancel_after_first_frames(queue, job):
        deadline = time.monotonic() + 120
        while not queue.status(job.id)["frames_done"] and time.monotonic() < deadline:
            time.sleep(0.01)
        queue.cancel(job.id)

    status, job = run_job([LocalReplica(pipe), LocalReplica(second_models)], tmp_path,
                          params={**PARAMS, "steps": 4}, on_status=cancel_after_first_frames)
    assert status["state"] == CANCELLED
    done = status["frames_done"]
    assert 0 < len(done) < len(NUMBERS) and done == NUMBERS[: len(done)]
    assert not list(job.folder.glob(".*.tmp"))  # no half-written frame


class FailsThirdClip(CallSpy):
    def __call__(self, **kwargs):
        if len(self.calls) == 2:
            self.error = RuntimeError("the third clip failed")
        return super().__call__(**kwargs)


def test_a_wan_job_lists_each_clip_as_it_is_made_and_keeps_them_when_a_later_one_fails(wan_models, tmp_path,
                                                                                       monkeypatch):
    monkeypatch.setattr(wan_models.wan, "_pipe", FailsThirdClip(wan_models.wan.pipeline()))
    pool = ReplicaPool([LocalReplica(wan_models)])
    queue = ScaledJobQueue(wan_models, tmp_path, pool.run_unit, concurrency=1)
    queue.start()
    try:
        inputs = [FrameInput(n, png_bytes(image)) for n, image in enumerate(poses(20), start=1)]
        job = queue.submit(inputs, GenerateParams(**FAST, segment=9))
        status = queue.wait(job.id, 300)
    finally:
        queue.stop()
    assert status["state"] == FAILED and "the third clip failed" in status["error"]
    # Clips of 9 overlapping by the lead of 5: frames 1-9, then 10-13; the third clip's are lost.
    assert status["frames_done"] == list(range(1, 14))
    assert sorted(p.name for p in job.folder.glob("frame_*.png")) == [f"frame_{n:04d}.png" for n in range(1, 14)]
