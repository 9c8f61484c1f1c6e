"""One pose extraction, client side: send the video, follow the job, fetch the result zip.

    run = ExtractionRun(BackendClient(url, token), "clip.mp4", extractor="mediapipe", end=11)
    run.start()                      # Blender: the HTTP work on a background thread
    ... on a timer: run.snapshot()   # state, progress, message, error
    run.cancel()                     # stops the run and DELETEs the job on the backend
    run.result                       # the zip's bytes once the state is DONE

The UI thread never waits on the network: ``cancel`` only sets a flag, and the run's own thread
tells the backend. A backend that stops answering, or fails the job, ends the run FAILED with
its reason; nothing is written to disk here (render/extract_job.py unpacks the result).
"""
from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

from .client import BackendClient, BackendError, BackendRequestError, BackendUnavailable

IDLE, SENDING, RUNNING, DONE, FAILED, CANCELLED = "idle", "sending", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
POLL_INTERVAL = 0.3
# A status poll that finds nobody is retried this often before the backend counts as gone.
RETRIES = 2
# The share of the progress the upload takes (the rest is the backend's own progress).
SEND_SHARE = 0.05


@dataclass(frozen=True)
class ExtractionStatus:
    """A consistent snapshot of a run, safe to read from any thread."""

    state: str
    progress: float  # 0..1
    message: str
    error: str | None
    job_id: str | None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


class _Cancelled(Exception):
    pass


class ExtractionRun:
    """Extract the poses of ``video`` on the backend (``BackendClient.submit_extract``'s options)."""

    def __init__(self, client: BackendClient, video, *, extractor: str = "mediapipe", every: int = 1,
                 start: int | None = None, end: int | None = None, maps: bool = False,
                 poll_interval: float = POLL_INTERVAL):
        self.client = client
        self.video = Path(video)
        self.options = dict(extractor=extractor, every=every, start=start, end=end, maps=maps)
        self.poll_interval = float(poll_interval)
        self.result: bytes | None = None
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._job_open = False  # a job on the backend that has not ended yet
        self._status = ExtractionStatus(IDLE, 0.0, "not started", None, None)

    def snapshot(self) -> ExtractionStatus:
        with self._lock:
            return self._status

    @property
    def finished(self) -> bool:
        return self.snapshot().finished

    def start(self) -> None:
        """Run on a daemon thread; poll ``snapshot()``. Never blocks."""
        if self._thread is not None or self.snapshot().state != IDLE:
            raise RuntimeError("this extraction run was already started")
        self._thread = threading.Thread(target=self.run, name="posebridge-extract", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Until the background run ends (True) or ``timeout`` passes (False)."""
        if self._thread is None:
            return self.finished
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def cancel(self) -> None:
        """Ask the run to stop; its own thread DELETEs the job (this never waits on the network)."""
        self._cancel.set()

    def run(self) -> ExtractionStatus:
        """The whole run in the calling thread (``start`` runs it on its own); its last status."""
        try:
            self._work()
        except _Cancelled:
            self._update(state=CANCELLED, message="cancelled; the job on the backend was cancelled"
                         if self.snapshot().job_id else "cancelled before the video was sent")
        except BackendUnavailable as error:
            text = str(error) if self.snapshot().job_id is None else (
                f"the backend at {self.client.url} stopped answering during the extraction")
            self._update(state=FAILED, message=text, error=text)
        except BackendError as error:
            self._update(state=FAILED, message=str(error), error=str(error))
        except Exception as error:  # a bug: say so rather than leave the UI polling a dead thread
            traceback.print_exc()
            text = f"the extraction stopped by an unexpected error: {type(error).__name__}: {error}"
            self._update(state=FAILED, message=text, error=text)
        return self.snapshot()

    # -- the work ------------------------------------------------------------------------------

    def _update(self, **changes) -> None:
        with self._lock:
            if "progress" in changes:  # never goes back
                changes["progress"] = min(1.0, max(self._status.progress, float(changes["progress"])))
            self._status = replace(self._status, **changes)

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            self._cancel_remote()
            raise _Cancelled()

    def _cancel_remote(self) -> None:
        job_id = self.snapshot().job_id
        if job_id is None or not self._job_open:
            return
        self._job_open = False
        try:
            self.client.cancel(job_id)
        except BackendError:
            pass  # gone, or the job ended meanwhile: nothing left to stop

    def _work(self) -> None:
        self._update(state=SENDING, message=f"sending {self.video.name} to the backend at {self.client.url}")
        self._check_cancel()
        try:
            job = self.client.submit_extract(self.video, **self.options)
        except BackendRequestError as error:
            if error.status in (404, 405):  # no such route: a backend from before extraction
                raise BackendError(f"the backend at {self.client.url} cannot extract poses (it has no "
                                   "POST /extract: update it)", url=self.client.url, status=error.status) from None
            if error.detail:  # an unreadable video, a frame range outside it, an extractor it lacks
                raise BackendError(f"the backend at {self.client.url} refused {self.video.name}: {error.detail}",
                                   url=self.client.url, status=error.status) from None
            raise
        job_id = str(job["id"])
        self._job_open = True
        self._update(state=RUNNING, job_id=job_id, progress=SEND_SHARE,
                     message=f"extracting poses from {self.video.name}")
        status = job
        while True:
            self._check_cancel()
            state = status.get("state")
            if state == DONE:
                self._job_open = False
                break
            if state in (FAILED, CANCELLED):
                self._job_open = False
                reason = status.get("error") or "no reason given"
                if state == CANCELLED:
                    raise BackendError(f"the extraction job {job_id} was cancelled on the backend")
                raise BackendError(f"the backend could not extract poses from {self.video.name}: {reason}")
            progress = float(status.get("progress") or 0.0)
            self._update(progress=SEND_SHARE + (1 - SEND_SHARE) * progress,
                         message=f"extracting poses from {self.video.name}: {int(progress * 100)}%")
            self._cancel.wait(self.poll_interval)
            self._check_cancel()
            status = self._status_of(job_id)
        self._update(message=f"downloading the extraction of {self.video.name}")
        self.result = self._call(self.client.download_result, job_id)
        self._update(state=DONE, progress=1.0, message=f"extracted poses from {self.video.name}")

    def _status_of(self, job_id: str) -> dict:
        try:
            return self._call(self.client.status, job_id)
        except BackendRequestError as error:
            if error.status == 404:  # a new backend process on the same port forgot the job
                self._job_open = False
                raise BackendError(f"the backend at {self.client.url} no longer knows job {job_id} "
                                   "(was it restarted?)", url=self.client.url) from None
            raise

    def _call(self, function, *args):
        """A read-only request, retried a little when nobody answers (see RETRIES)."""
        for attempt in range(RETRIES + 1):
            try:
                return function(*args)
            except BackendUnavailable:
                if attempt == RETRIES:
                    raise
                self._cancel.wait(self.poll_interval)
