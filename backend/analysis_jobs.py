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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .extract.base import ExtractionError
from .extract.run import ExtractionCancelled
from .worker_queue import CANCELLED, DONE, FAILED, FINISHED_STATES, QUEUED, RUNNING, WorkerQueue

__all__ = ["AnalysisJob", "AnalysisQueue", "KINDS", "EXTRACT", "ADHERENCE",
           "QUEUED", "RUNNING", "DONE", "FAILED", "CANCELLED", "FINISHED_STATES"]
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


class AnalysisQueue(WorkerQueue):
    def __init__(self, work_dir: str | os.PathLike):
        super().__init__(work_dir, "posebridge-analysis")

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
        self._enqueue(job)
        return job

    # --- internals (lock held where noted) ---------------------------------------------------

    def _status(self, job: AnalysisJob) -> dict:  # lock held
        return {
            "id": job.id,
            "kind": job.kind,
            "name": job.name,
            "state": job.state,
            "frames": list(job.frames),
            "frames_done": list(job.frames_done),
            "progress": round(job.progress, 4),
            "queue_position": self._queue_position(job),
            "error": job.error,
            "params": dict(job.params),
            "created": job.created,
            "started": job.started,
            "finished": job.finished,
            "codec_seconds": 0.0,
        }

    def _run(self, job: AnalysisJob):
        return job.work(job)

    def _error_outcome(self, job: AnalysisJob, error: Exception) -> tuple[str, str | None]:  # lock held
        if job.cancel_requested or isinstance(error, ExtractionCancelled):
            return CANCELLED, None
        return FAILED, str(error) if isinstance(error, ExtractionError) else f"{type(error).__name__}: {error}"

    def _completed(self, job: AnalysisJob, frames) -> None:  # lock held
        if frames is not None:
            job.frames_done = [int(f) for f in frames]
            job.frames = job.frames or list(job.frames_done)

    def _release(self, job: AnalysisJob) -> None:  # lock held
        job.work = None
        if job.input_dir is not None:
            shutil.rmtree(job.input_dir, ignore_errors=True)
