"""One pose extraction, client side: send the video, follow the job, fetch the result zip.

    run = ExtractionRun(BackendClient(url, token), "clip.mp4", extractor="mediapipe", end=11)
    run.start()                      # Blender: the HTTP work on a background thread
    ... on a timer: run.snapshot()   # state, progress, message, error
    run.cancel()                     # stops the run and DELETEs the job on the backend
    run.result                       # the zip's bytes once the state is DONE

The thread, cancel and polling are backend_job.py's. A backend that stops answering, or fails
the job, ends the run FAILED with its reason; a job cancelled on the backend (from here or by
someone else) ends it CANCELLED. Nothing is written to disk here (render/extract_job.py
unpacks the result).
"""
from __future__ import annotations

from pathlib import Path

from .backend_job import POLL_INTERVAL, BackendJobRun, JobRunStatus, megabytes
from .client import BackendClient, BackendRequestError
from .run_state import CANCELLED, DONE, FAILED, FINISHED, IDLE, RUNNING  # noqa: F401 (the states, for callers)

SENDING = "sending"
ExtractionStatus = JobRunStatus


class ExtractionRun(BackendJobRun):
    """Extract the poses of ``video`` on the backend (``BackendClient.submit_extract``'s options)."""

    what = "extraction"
    route = "POST /extract"

    def __init__(self, client: BackendClient, video, *, extractor: str = "mediapipe", every: int = 1,
                 start: int | None = None, end: int | None = None, maps: bool = False,
                 poll_interval: float = POLL_INTERVAL):
        super().__init__(client, poll_interval)
        self.video = Path(video)
        self.options = dict(extractor=extractor, every=every, start=start, end=end, maps=maps)
        self.result: bytes | None = None

    @property
    def cancelled_text(self) -> str:
        return ("cancelled; the job on the backend was cancelled" if self.snapshot().job_id
                else "cancelled before the video was sent")

    def _too_large(self) -> str:
        try:
            size = f" ({megabytes(self.video.stat().st_size)})"
        except OSError:
            size = ""
        return (f"the video{size} is over the backend's request limit (--max-request-mb): "
                "raise it or trim the range")

    def _refused(self, error: BackendRequestError) -> str | None:
        if error.detail:  # an unreadable video, a frame range outside it, an extractor it lacks
            return f"the backend at {self.client.url} refused {self.video.name}: {error.detail}"
        return None

    def _job_progress(self, status: dict) -> tuple[float, str]:
        fraction = float(status.get("progress") or 0.0)
        return fraction, f"extracting poses from {self.video.name}: {int(fraction * 100)}%"

    def _failed_text(self, job_id: str, reason: str) -> str:
        return f"the backend could not extract poses from {self.video.name}: {reason}"

    def _work(self) -> None:
        self._update(state=SENDING, message=f"sending {self.video.name} to the backend at {self.client.url}")
        self._check_cancel()
        job = self._submit(self.client.submit_extract, self.video, **self.options)
        self._update(message=f"extracting poses from {self.video.name}")
        self._follow(job)
        self._update(message=f"downloading the extraction of {self.video.name}")
        self.result = self._call(self.client.download_result, self.snapshot().job_id)
        self._update(state=DONE, progress=1.0, message=f"extracted poses from {self.video.name}")
