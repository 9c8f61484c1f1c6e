"""What every job queue of the backend shares: one worker thread, submission order, cancel, wait.

``JobQueue`` (generation, backend/jobs.py) and ``AnalysisQueue`` (extraction and adherence,
backend/analysis_jobs.py) differ only in what a job holds, how it runs and how its status reads;
they fill in ``_run``, ``_error_outcome``, ``_completed``, ``_release`` and ``_status``. A job is
any record with ``id``, ``state``, ``progress``, ``error``, ``started``, ``finished`` and
``cancel_requested``.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED_STATES = (DONE, FAILED, CANCELLED)


class WorkerQueue:
    def __init__(self, work_dir: str | os.PathLike, thread_name: str):
        self.work_dir = Path(work_dir)
        self._thread_name = thread_name
        self._jobs: dict = {}  # insertion order is submission order
        self._waiting: list[str] = []  # queued job ids, oldest first
        self._current = None
        self._lock = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # A daemon thread: stopping the server must not wait for a long job to finish.
        self._thread = threading.Thread(target=self._work, name=self._thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Cancel the running job, leave the queued ones, end the worker."""
        with self._lock:
            self._stopping = True
            if self._current is not None:
                self._current.cancel_requested = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    # --- requests -------------------------------------------------------------------------------

    def get(self, job_id: str):
        with self._lock:
            return self._jobs.get(job_id)

    def cancel(self, job_id: str):
        """Queued: cancelled at once. Running: asked to stop at its next step (state turns
        "cancelled" then). Finished: unchanged. None for an unknown id."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.state == QUEUED:
                self._waiting.remove(job_id)
                self._finish(job, CANCELLED)
            elif job.state == RUNNING:
                job.cancel_requested = True
            return job

    def waiting(self) -> int:
        """How many jobs wait for the worker."""
        with self._lock:
            return len(self._waiting)

    def status(self, job_id: str) -> dict | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else self._status(job)

    def statuses(self) -> list[dict]:
        """Every job's status, in submission order."""
        with self._lock:
            return [self._status(job) for job in self._jobs.values()]

    def wait(self, job_id: str, timeout: float | None = None) -> dict | None:
        """Block until the job has finished (or the timeout passed); return its status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                job = self._jobs.get(job_id)
                if job is None or job.state in FINISHED_STATES:
                    return None if job is None else self._status(job)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return self._status(job)
                self._lock.wait(left)

    # --- what a queue fills in ------------------------------------------------------------------

    def _run(self, job):
        """Do the job (outside the lock); what it returns goes to ``_completed``."""
        raise NotImplementedError

    def _error_outcome(self, job, error: Exception) -> tuple[str, str | None]:  # lock held
        """The state and message a job that raised ``error`` ends with."""
        return FAILED, f"{type(error).__name__}: {error}"

    def _completed(self, job, result) -> None:  # lock held
        """Record what a job that ran to its end returned."""

    def _release(self, job) -> None:  # lock held
        """Drop what a finished job no longer needs (its inputs)."""

    def _status(self, job) -> dict:  # lock held
        raise NotImplementedError

    # --- internals (the caller holds the lock where noted) --------------------------------------

    def _enqueue(self, job) -> None:
        with self._lock:
            self._jobs[job.id] = job
            self._waiting.append(job.id)
            self._lock.notify_all()

    def _queue_position(self, job) -> int:  # lock held
        if job.state != QUEUED:
            return 0
        busy = 1 if self._current is not None else 0
        return busy + self._waiting.index(job.id)

    def _finish(self, job, state: str, error: str | None = None) -> None:  # lock held
        job.state = state
        job.error = error
        job.finished = time.time()
        if state == DONE:
            job.progress = 1.0
        self._release(job)
        self._lock.notify_all()

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                job = self._jobs[self._waiting.pop(0)]
                job.state = RUNNING
                job.started = time.time()
                self._current = job
            try:
                result = self._run(job)
            except Exception as exc:  # a failed job must not end the worker: report it, go on
                with self._lock:
                    self._finish(job, *self._error_outcome(job, exc))
            else:
                with self._lock:
                    self._completed(job, result)
                    # A cancel that came after the last step still ends as "cancelled".
                    self._finish(job, CANCELLED if job.cancel_requested else DONE)
            finally:
                with self._lock:
                    self._current = None
                    self._lock.notify_all()
