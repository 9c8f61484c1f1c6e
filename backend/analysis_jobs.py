"""The analysis job queue: pose extraction and adherence checks, beside the generation queue.

    queue = AnalysisQueue(work_dir)
    queue.start()
    job = queue.submit("extract", work, name="clip.mp4", params={...}, input_dir=upload_folder)
    queue.status(job.id)    # {"kind": "extract", "state": "running", "progress": 0.4, ...}
    queue.cancel(job.id)

``work(job)`` does the job: it writes into ``job.folder`` (``work_dir/<job id>/``, the folder
``GET /jobs/{id}/result`` zips), reports ``job.report(done, total)`` and asks ``job.cancelled()``
between steps; it may return the frame numbers it finished. Raising ends the job "failed" with
the message, or "cancelled" once a cancel was asked for (a cancel that comes after the last step
also ends it "cancelled", as in backend/jobs.py). ``input_dir`` (the uploaded video, the posted
frames) is removed when the job ends: only the results stay, until the server stops.

One worker thread, submission order, the same states and status keys as the generation queue
(backend/jobs.py) plus ``kind``. It needs no generation model: analysis jobs run while the models
load, after they failed to, and never wait behind a generation job.
"""
from __future__ import annotations

import os
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .extract.base import ExtractionError
from .extract.run import ExtractionCancelled

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED_STATES = (DONE, FAILED, CANCELLED)
EXTRACT, ADHERENCE = "extract", "adherence"
KINDS = (EXTRACT, ADHERENCE)


@dataclass
class AnalysisJob:
    id: str
    kind: str
    name: str
    params: dict
    folder: Path
    work: Callable | None
    input_dir: Path | None = None
    state: str = QUEUED
    frames: list[int] = field(default_factory=list)
    frames_done: list[int] = field(default_factory=list)
    progress: float = 0.0
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel_requested: bool = False

    def cancelled(self) -> bool:
        return self.cancel_requested

    def report(self, done: int, total: int) -> None:
        """Progress ``done`` of ``total`` steps (never goes back; a plain float store is atomic)."""
        if total > 0:
            self.progress = max(self.progress, min(1.0, done / total))


class AnalysisQueue:
    def __init__(self, work_dir: str | os.PathLike):
        self.work_dir = Path(work_dir)
        self._jobs: dict[str, AnalysisJob] = {}
        self._waiting: list[str] = []
        self._current: AnalysisJob | None = None
        self._lock = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._work, name="posebridge-analysis", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Cancel the running job, end the worker."""
        with self._lock:
            self._stopping = True
            if self._current is not None:
                self._current.cancel_requested = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def new_job_id(self) -> str:
        return secrets.token_hex(8)

    def submit(self, kind: str, work: Callable, *, name: str = "", params: dict | None = None,
               input_dir=None, job_id: str | None = None, frames=()) -> AnalysisJob:
        """Queue ``work``; its output folder ``work_dir/<id>/`` is made now. ``job_id`` lets the
        caller name the job before submitting (its upload folder is named after it)."""
        if kind not in KINDS:
            raise ValueError(f"unknown job kind {kind!r}")
        job_id = job_id or self.new_job_id()
        folder = self.work_dir / job_id
        folder.mkdir(parents=True)
        job = AnalysisJob(job_id, kind, name, dict(params or {}), folder, work,
                          None if input_dir is None else Path(input_dir), frames=list(frames))
        with self._lock:
            self._jobs[job_id] = job
            self._waiting.append(job_id)
            self._lock.notify_all()
        return job

    def get(self, job_id: str) -> AnalysisJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> AnalysisJob | None:
        """Queued: cancelled at once. Running: stops before its next frame. None when unknown."""
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

    def status(self, job_id: str) -> dict | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else self._status(job)

    def statuses(self) -> list[dict]:
        with self._lock:
            return [self._status(job) for job in self._jobs.values()]

    def wait(self, job_id: str, timeout: float | None = None) -> dict | None:
        """Block until the job has finished (or the timeout passed); its status."""
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

    # --- internals (lock held where noted) ---------------------------------------------------

    def _status(self, job: AnalysisJob) -> dict:  # lock held
        position = 0
        if job.state == QUEUED:
            position = (1 if self._current is not None else 0) + self._waiting.index(job.id)
        return {
            "id": job.id,
            "kind": job.kind,
            "name": job.name,
            "state": job.state,
            "frames": list(job.frames),
            "frames_done": list(job.frames_done),
            "progress": round(job.progress, 4),
            "queue_position": position,
            "error": job.error,
            "params": dict(job.params),
            "created": job.created,
            "started": job.started,
            "finished": job.finished,
            "codec_seconds": 0.0,
        }

    def _finish(self, job: AnalysisJob, state: str, error: str | None = None) -> None:  # lock held
        job.state = state
        job.error = error
        job.finished = time.time()
        if state == DONE:
            job.progress = 1.0
        job.work = None
        if job.input_dir is not None:
            shutil.rmtree(job.input_dir, ignore_errors=True)
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
                frames = job.work(job)
            except Exception as exc:  # a failed job must not end the worker: report it, go on
                with self._lock:
                    if job.cancel_requested or isinstance(exc, ExtractionCancelled):
                        self._finish(job, CANCELLED)
                    else:
                        message = str(exc) if isinstance(exc, ExtractionError) else f"{type(exc).__name__}: {exc}"
                        self._finish(job, FAILED, message)
            else:
                with self._lock:
                    if frames is not None:
                        job.frames_done = [int(f) for f in frames]
                        job.frames = job.frames or list(job.frames_done)
                    self._finish(job, CANCELLED if job.cancel_requested else DONE)
            finally:
                with self._lock:
                    self._current = None
                    self._lock.notify_all()
