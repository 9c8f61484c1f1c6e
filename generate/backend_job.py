"""One analysis job on the backend, client side: what an extraction (extraction_run.py) and an
adherence check (adherence_run.py) share.

    run.start()                      # Blender: the HTTP work on a background thread
    ... on a timer: run.snapshot()   # state, progress, message, error, job_id
    run.cancel()                     # stops the run and DELETEs the job on the backend
    status = run.run_blocking(print) # batch: the same work in the calling thread

A subclass writes ``_work``: prepare, ``_submit`` the request, ``_follow`` the job until it is
done, then bring the result home. The UI thread never waits on the network: ``cancel`` only sets
a flag and the run's own thread tells the backend. A job cancelled on the backend by someone else
ends the run CANCELLED too (never FAILED: nothing went wrong, somebody stopped it); a backend that
stops answering, refuses the request or fails the job ends it FAILED with the reason.
"""
from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass, replace
from typing import Callable

from .client import BackendClient, BackendError, BackendRequestError, BackendUnavailable
from .run_state import CANCELLED, DONE, FAILED, FINISHED, IDLE, POLL_INTERVAL, RETRIES, RUNNING

MB = 2**20  # what --max-request-mb counts in


def megabytes(size: int) -> str:
    """``"12.3 MB"`` in --max-request-mb's units."""
    return f"{size / MB:.1f} MB"


@dataclass(frozen=True)
class JobRunStatus:
    """A consistent snapshot of a run, safe to read from any thread."""

    state: str
    progress: float  # 0..1, never goes back
    message: str
    error: str | None = None
    job_id: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


class Cancelled(Exception):
    """Stops ``_work``; the message (if any) replaces the subclass's ``cancelled_text``."""


class BackendJobRun:
    """The thread, status, cancel and polling of one backend job (see the module doc).

    Subclasses set ``what`` (the run in messages: "extraction"), ``route`` ("POST /extract")
    and ``status_type``, and write ``_work``, ``_too_large`` and, if they like, ``_refused``,
    ``_job_progress``, ``_failed_text`` and ``_error_text``."""

    what = "job"
    route = "POST /jobs"
    status_type = JobRunStatus
    cancelled_text = "cancelled"
    # The progress bar: the request, then the backend's job (the rest: bringing the result home).
    send_share, job_share = 0.05, 0.95

    def __init__(self, client: BackendClient, poll_interval: float = POLL_INTERVAL):
        self.client = client
        self.poll_interval = float(poll_interval)
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._callback: Callable | None = None
        self._job_open = False  # a job on the backend that has not ended yet
        self._status = self.status_type(IDLE, 0.0, "not started")

    # -- what the UI reads (any thread) --------------------------------------------------------

    def snapshot(self):
        with self._lock:
            return self._status

    @property
    def finished(self) -> bool:
        return self.snapshot().finished

    # -- driving it ----------------------------------------------------------------------------

    def _check_idle(self) -> None:
        if self._thread is not None or self.snapshot().state != IDLE:
            raise RuntimeError(f"this {self.what} was already started")

    def start(self) -> None:
        """Run on a daemon thread; poll ``snapshot()``. Never blocks."""
        self._check_idle()
        self._thread = threading.Thread(target=self.run, name=f"posebridge-{self.what}", daemon=True)
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

    def run(self):
        """The whole run in the calling thread (``start`` runs it on its own); its last status."""
        try:
            self._work()
        except Cancelled as cancelled:
            self._update(state=CANCELLED, message=str(cancelled) or self.cancelled_text)
        except Exception as error:
            text = self._error_text(error)
            if text is None:  # a bug: say so rather than leave the UI polling a dead thread
                traceback.print_exc()
                text = f"the {self.what} stopped by an unexpected error: {type(error).__name__}: {error}"
            self._update(state=FAILED, message=text, error=text)
        return self.snapshot()

    def run_blocking(self, progress_callback: Callable | None = None):
        """``run`` with ``progress_callback(status)`` on every change. Ctrl+C cancels the backend
        job, then re-raises KeyboardInterrupt."""
        self._check_idle()
        self._callback = progress_callback
        try:
            return self.run()
        except KeyboardInterrupt:
            self._cancel.set()
            self._cancel_remote()
            self._update(state=CANCELLED, message="interrupted")
            raise
        finally:
            self._callback = None

    # -- for the subclasses --------------------------------------------------------------------

    def _work(self) -> None:
        raise NotImplementedError

    def _too_large(self) -> str:
        """The message for a request over the backend's --max-request-mb (HTTP 413)."""
        raise NotImplementedError

    def _refused(self, error: BackendRequestError) -> str | None:
        """The message for another refusal (400, 422...); None keeps the client's own."""
        return None

    def _job_progress(self, status: dict) -> tuple[float, str]:
        """(0..1 of the job, message) of a running job's status."""
        fraction = float(status.get("progress") or 0.0)
        return fraction, f"{self.what}: {int(fraction * 100)}%"

    def _failed_text(self, job_id: str, reason: str) -> str:
        return f"the backend failed the {self.what} (job {job_id}): {reason}"

    def _error_text(self, error: Exception) -> str | None:
        """The FAILED message for an exception out of ``_work``; None for a bug."""
        if isinstance(error, BackendUnavailable) and self.snapshot().job_id is not None:
            return f"the backend at {self.client.url} stopped answering during the {self.what}"
        if isinstance(error, BackendError):
            return str(error)
        return None

    def _update(self, **changes) -> None:
        with self._lock:
            if "progress" in changes:  # never goes back
                changes["progress"] = min(1.0, max(self._status.progress, float(changes["progress"])))
            self._status = status = replace(self._status, **changes)
        if self._callback is not None:
            self._callback(status)

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            self._cancel_remote()
            raise Cancelled()

    def _cancel_remote(self) -> None:
        job_id = self.snapshot().job_id
        if job_id is None or not self._job_open:
            return
        self._job_open = False
        try:
            self.client.cancel(job_id)
        except BackendError:
            pass  # gone, or the job ended meanwhile: nothing left to stop

    def _submit(self, send, *args, **options) -> dict:
        """``send(*args, **options)`` (a client ``submit_*``): the new job's status; the run is
        RUNNING."""
        try:
            job = send(*args, **options)
        except BackendRequestError as error:
            if error.status in (404, 405):  # no such route: a backend from before this kind of job
                text = (f"the backend at {self.client.url} cannot run the {self.what} "
                        f"(it has no {self.route}): update it")
            elif error.status == 413:  # over --max-request-mb (the client sends Content-Length)
                text = self._too_large()
            else:
                text = self._refused(error)
            if text is None:
                raise
            raise BackendError(text, url=self.client.url, status=error.status) from None
        self._job_open = True
        self._update(state=RUNNING, job_id=str(job["id"]), progress=self.send_share)
        return job

    def _follow(self, status: dict) -> None:
        """Poll the job from ``status`` on until it ends: returns when it is done; Cancelled when
        it was cancelled (by us or on the backend), BackendError when it failed."""
        job_id = self.snapshot().job_id
        while status.get("state") not in FINISHED:
            if status.get("queue_position"):
                fraction, message = 0.0, f"waiting for {status['queue_position']} job(s) ahead on the backend"
            else:
                fraction, message = self._job_progress(status)
            self._update(progress=self.send_share + self.job_share * fraction, message=message)
            self._cancel.wait(self.poll_interval)
            self._check_cancel()
            status = self._status_of(job_id)
        self._job_open = False
        if status["state"] == CANCELLED:
            self._check_cancel()  # ours after all: our own words
            raise Cancelled(f"the {self.what} job {job_id} was cancelled on the backend (not from here)")
        if status["state"] != DONE:
            raise BackendError(self._failed_text(job_id, status.get("error") or "no reason given"),
                               url=self.client.url)

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
