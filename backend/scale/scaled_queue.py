"""The job queue of a scaled-out backend: each job's units run on several replicas at once.

``ScaledJobQueue`` keeps the single-process queue's records, states, folders, cancel and status
(backend/jobs.py) and changes only how a job runs: it is cut into units (``units.plan_units``),
``concurrency`` units run at a time through ``run_unit`` (a replica pool: ``ReplicaPool`` in this
process, a Ray Serve handle across processes and machines), and each finished frame of a
per-frame job is written as it arrives. ``frames_done`` lists frames in job order only: a frame
is listed once every frame before it is written, as in a single-process job, so a client reading
the status sees the job grow from its start.

A unit whose replica is lost (``ReplicaLost``) is run again once, on any replica; its frames are
the same (same seed, same inputs, same batch cut) and each is written and listed once. A second
loss, or any other error, fails the job and stops the other units at their next step; the frames
already listed stay.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from ..jobs import GenerationCancelled, Job, JobQueue, write_frame_png
from ..pipelines import is_temporal
from .local_replica import ReplicaLost, UnitWork
from .units import Unit, plan_units

RETRIES = 1  # a lost replica's unit runs once more, then the job fails


class ReplicaPool:
    """``run_unit`` over a fixed set of in-process replicas, each running one unit at a time. A
    replica that lost a unit goes back to the pool: in one process nothing died (the tests'
    stand-in for a lost process raises ReplicaLost and carries on)."""

    def __init__(self, replicas):
        self.size = len(replicas)
        self._free: queue.Queue = queue.Queue()
        for replica in replicas:
            self._free.put(replica)

    def run_unit(self, work: UnitWork, should_stop=None, on_progress=None, on_segment_done=None):
        """Yield the unit's (index, frame) as the replica makes them."""
        replica = self._free.get()
        try:
            yield from replica.run_unit(work, should_stop=should_stop, on_progress=on_progress,
                                        on_segment_done=on_segment_done)
        finally:
            self._free.put(replica)


class ScaledJobQueue(JobQueue):
    """JobQueue whose jobs run as units through ``run_unit(work, should_stop, on_progress,
    on_segment_done)``, an iterator of (index in work.inputs, frame), up to ``concurrency`` units
    at a time.

    ``models`` is what /health and the request checks read (the loaded models, or a description
    of a replica's): this queue never runs them itself.

    Temporal jobs are one unit whose frames are written and listed once the video is made (no
    frame of an unfinished video is served), or, for wan-vace, clip by clip as each is finished,
    as in the single-process queue: a failure in a later clip keeps the earlier ones.
    """

    def __init__(self, models, work_dir, run_unit: Callable, concurrency: int, *, per_replica: int = 2):
        super().__init__(models, work_dir)
        self.run_unit = run_unit
        self.concurrency = concurrency
        self.per_replica = per_replica

    def _run(self, job: Job) -> None:
        inputs = job.inputs
        temporal = is_temporal(job.params.pipeline)
        units = plan_units(job.params.pipeline, len(inputs), job.params.batch, self.concurrency, self.per_replica)
        arrived: set[int] = set()  # frame numbers written (listed or not); a job's numbers are unique
        unit_progress = [0.0] * len(units)
        order = [f.frame for f in inputs if f.given is None]
        failed = threading.Event()  # one unit failed: the others stop at their next step

        def should_stop():
            return job.cancel_requested or failed.is_set()

        def write(unit: Unit, index: int, frame) -> None:
            number = inputs[unit.start + index].frame
            with self._lock:
                if number in arrived:
                    return  # a retried unit's frame that had already come
            clock = time.perf_counter()
            write_frame_png(frame, job.frame_path(number))
            with self._lock:
                job.codec_seconds += time.perf_counter() - clock
                arrived.add(number)

        def publish() -> None:
            with self._lock:
                self._list_in_order(job, order, arrived)

        def attempt(unit: Unit) -> None:
            def on_progress(done, work):
                with self._lock:
                    unit_progress[unit.index] = done / work
                    fraction = sum(p * u.size for p, u in zip(unit_progress, units)) / len(inputs)
                self._set_progress(job, 0.95 * fraction)

            # A temporal unit's frames are final only as a whole video, or clip by clip for a
            # pipeline that makes clips: they wait here until then.
            waiting: list[tuple[int, object]] = []

            def flush() -> None:
                for index, frame in waiting:
                    write(unit, index, frame)
                waiting.clear()
                publish()

            work = UnitWork(job.params, inputs[unit.start:unit.stop], job.reference)
            results = self.run_unit(work, should_stop=should_stop, on_progress=on_progress,
                                    on_segment_done=flush if temporal else None)
            for index, frame in results:
                if temporal:
                    waiting.append((index, frame))
                else:
                    write(unit, index, frame)
                    publish()
            flush()

        def run(unit: Unit) -> None:
            try:
                for attempts_left in range(RETRIES, -1, -1):
                    if should_stop():
                        raise GenerationCancelled("cancelled before a unit started")
                    try:
                        return attempt(unit)
                    except ReplicaLost:
                        if attempts_left == 0:
                            raise
                        if job.cancel_requested:
                            raise GenerationCancelled("cancelled while a replica was lost") from None
            except BaseException:
                failed.set()  # here, on the unit's own thread, so queued units do not start
                raise

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="posebridge-unit") as pool:
            futures = [pool.submit(run, unit) for unit in units]
            for future in futures:
                # A cancel shows as GenerationCancelled in every unit; a failure first wins.
                error = future.exception()
                if error is not None and not isinstance(error, GenerationCancelled):
                    raise error
            for future in futures:
                future.result()
        if len(arrived) != len(order):
            raise RuntimeError(f"the replicas returned {len(arrived)} of {len(order)} frames")

    def _list_in_order(self, job: Job, order: list[int], arrived: set[int]) -> None:  # lock held
        """List every arrived frame whose predecessors are all listed."""
        while len(job.frames_done) < len(order) and order[len(job.frames_done)] in arrived:
            job.frames_done.append(order[len(job.frames_done)])
        job.progress = max(job.progress, len(job.frames_done) / len(order))
