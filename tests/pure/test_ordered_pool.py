"""The pose-map job's pool: results in order, bounded with the caller working, errors in turn;
and the worker processes behind it: real children, their errors, their deaths."""
from __future__ import annotations

import errno
import os
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

import numpy as np
import pytest

from posebridge.draw.map_frame import MapFrame, to_plain, write_map_frame
from posebridge.draw.pose_map import PoseStyle
from posebridge.pose.keypoints import KeypointSequence
from posebridge.pose.layouts import OPENPOSE_FULL
from posebridge.workers.ordered_pool import OrderedPool, default_workers
from posebridge.workers.processes import WorkerError, WorkerProcesses


def _slow_echo(value, seconds):
    time.sleep(seconds)
    return value


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_results_come_in_submission_order(workers):
    taken = []
    with ThreadPoolExecutor(max(1, workers)) as threads:
        pool = OrderedPool(partial(threads.submit, _slow_echo) if workers else None, limit=4)
        for value in range(20):
            taken.extend(pool.finished())
            # Later tasks often finish first: the order must not follow.
            seconds = 0.004 * ((7 * value) % 5)
            pool.submit(partial(_slow_echo, value, seconds), value, seconds)
        taken.extend(pool.drain())
    assert taken == list(range(20))


def test_past_the_limit_the_caller_does_the_work():
    gate = threading.Event()
    caller = threading.get_ident()
    with ThreadPoolExecutor(1) as threads:
        pool = OrderedPool(threads.submit, limit=1)
        pool.submit(gate.wait, gate.wait)
        pool.submit(lambda: ("here", threading.get_ident()), threading.get_ident)
        assert list(pool.finished()) == [], "the first is still running: nothing is taken out of order"
        gate.set()
        assert list(pool.drain()) == [True, ("here", caller)]


def test_settle_finishes_what_was_handed_over():
    finished = []

    def task(value):
        time.sleep(0.01)
        finished.append(value)
        return value

    with ThreadPoolExecutor(2) as threads:
        pool = OrderedPool(threads.submit, limit=6)
        for value in range(6):
            pool.submit(partial(task, value), task, value)
        pool.settle()
        assert sorted(finished) == list(range(6))
        assert list(pool.finished()) == list(range(6))


def test_an_error_is_raised_in_its_turn_after_the_results_before_it():
    def task(value):
        if value == 3:
            raise OSError(28, "No space left on device", f"/out/pose_{value}.png")
        return value

    taken = []
    pool = OrderedPool(None)
    for value in range(6):
        pool.submit(partial(task, value))
    with pytest.raises(OSError, match="No space left"):
        for result in pool.drain():
            taken.append(result)
    assert taken == [0, 1, 2]


def test_broken_workers_hand_the_work_back_to_the_caller():
    class Broken(RuntimeError):
        pass

    handed = []

    def start(value):
        handed.append(value)
        failed: Future = Future()
        failed.set_exception(Broken("worker gone"))
        return failed

    pool = OrderedPool(start, limit=8, fall_back_on=(Broken,))
    for value in range(3):
        pool.submit(partial(str, value), value)
    assert list(pool.drain()) == ["0", "1", "2"]
    assert isinstance(pool.fell_back, Broken) and pool.start is None
    pool.submit(partial(str, 3), 3)
    assert list(pool.drain()) == ["3"] and handed == [0, 1, 2], "nothing more is handed to broken workers"


def test_defaults():
    assert 1 <= default_workers() <= 8


# --- worker processes ------------------------------------------------------------------------------

def _frame(tmp_path, number: int, people: int = 1) -> MapFrame:
    rng = np.random.default_rng(number)
    points = np.zeros((1, people, len(OPENPOSE_FULL), 3), np.float32)
    points[..., :2] = rng.uniform(10, 110, points[..., :2].shape)
    points[..., 2] = 1.0
    seq = KeypointSequence(OPENPOSE_FULL, points, (128, 96), np.array([number]))
    (tmp_path / "keypoints").mkdir(exist_ok=True)
    return MapFrame(seq, 0, tmp_path / f"pose_{number:04d}.png", tmp_path / f"depth_{number:04d}.png",
                    tmp_path / "keypoints", PoseStyle(), ("body", "hand_left", "hand_right", "face"))


def test_a_worker_process_writes_exactly_what_this_process_writes(tmp_path):
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    with WorkerProcesses("draw.map_frame:write_plain", 2) as processes:
        futures = [processes.submit(to_plain(_frame(there, n, people=n % 3))) for n in range(1, 7)]
        assert [f.result(timeout=60) for f in futures] == list(range(1, 7))
    for n in range(1, 7):
        write_map_frame(_frame(here, n, people=n % 3))
    written = sorted(p.relative_to(here) for p in here.rglob("*") if p.is_file())
    assert written == sorted(p.relative_to(there) for p in there.rglob("*") if p.is_file())
    for path in written:
        assert (here / path).read_bytes() == (there / path).read_bytes(), path


def test_a_worker_os_error_comes_back_as_itself(tmp_path):
    item = _frame(tmp_path, 1)
    gone = MapFrame(item.seq, 0, tmp_path / "missing" / "pose_0001.png", item.depth_path, item.keypoints_dir,
                    item.style, item.parts)
    with WorkerProcesses("draw.map_frame:write_plain", 1) as processes:
        with pytest.raises(OSError) as raised:
            processes.submit(to_plain(gone)).result(timeout=60)
        assert raised.value.errno == errno.ENOENT and "missing" in raised.value.filename
        # The child keeps serving after an error.
        assert processes.submit(to_plain(item)).result(timeout=60) == 1


def test_any_other_worker_error_is_a_worker_error_naming_it():
    with WorkerProcesses("draw.map_frame:write_plain", 1) as processes:
        with pytest.raises(WorkerError, match="KeyError"):
            processes.submit({"not": "a frame"}).result(timeout=60)


def test_a_worker_that_dies_fails_its_tasks_instead_of_hanging(tmp_path):
    processes = WorkerProcesses("draw.map_frame:write_plain", 1)
    try:
        assert processes.submit(to_plain(_frame(tmp_path, 1))).result(timeout=60) == 1
        child = processes._children[0]
        os.kill(child.process.pid, signal.SIGKILL)
        with pytest.raises(WorkerError, match="ended unexpectedly"):
            processes.submit(to_plain(_frame(tmp_path, 2))).result(timeout=60)
        while child.ended is None:  # the reader has seen the end
            time.sleep(0.01)
        late = processes.submit(to_plain(_frame(tmp_path, 3)))
        assert late.done(), "a task for a child known gone fails at once, it never hangs"
        with pytest.raises(WorkerError, match="ended unexpectedly"):
            late.result()
    finally:
        processes.close()


def test_closed_workers_exit(tmp_path):
    processes = WorkerProcesses("draw.map_frame:write_plain", 2)
    children = [child.process for child in processes._children]
    assert processes.submit(to_plain(_frame(tmp_path, 1))).result(timeout=60) == 1
    processes.close()
    for child in children:
        assert child.wait(timeout=30) == 0


def test_results_waiting_behind_a_slow_oldest_task_are_bounded():
    gate = threading.Event()
    with ThreadPoolExecutor(1) as threads:
        pool = OrderedPool(threads.submit, limit=2)
        pool.submit(gate.wait, gate.wait)  # the oldest: blocks until the gate opens
        threading.Timer(0.3, gate.set).start()
        started = time.perf_counter()
        for value in range(6):  # done here, queued behind the oldest; the 4th waits for it
            pool.submit(partial(str, value), str, value)
        assert time.perf_counter() - started >= 0.25, "the caller waited instead of piling up results"
        assert list(pool.drain()) == [True, "0", "1", "2", "3", "4", "5"]
