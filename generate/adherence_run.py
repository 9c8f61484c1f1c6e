"""One pose-adherence check, client side: send the generated frames and their keypoints, follow
the backend's job, bring its report home.

    check = AdherenceCheck(BackendClient(url, token), generated_dir, keypoints_dir)
    check.start()                      # Blender: the HTTP work on a background thread
    ... on a timer: check.snapshot()   # state, progress, message, summary, error
    check.cancel()                     # stops the check and DELETEs the job on the backend

    status = check.run_blocking(print) # batch: the same work in the calling thread

Flow: pair the frames with their keypoints (generate/adherence.py) -> ``POST /adherence`` ->
poll the job -> ``GET /jobs/{id}/result`` -> adherence.json and adherence.png into the generated
folder (an older report is replaced; frames are never touched) -> the report's summary.
No ``/health`` first: an analysis job does not need the generation models, so a backend still
loading them can already check.
"""
from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from . import adherence
from .adherence import AdherenceError, AdherenceInputs, AdherenceSummary
from .client import BackendClient, BackendError, BackendRequestError, BackendUnavailable
from .run import CANCELLED, CHECKING, DONE, FAILED, FINISHED, IDLE, RUNNING

POLL_INTERVAL = 0.3
RETRIES = 2  # a poll that finds nobody is retried this often before the backend counts as gone
# The progress bar: reading and sending the frames, the backend's job, bringing the report home.
SEND_SHARE, JOB_SHARE = 0.05, 0.9


@dataclass(frozen=True)
class CheckStatus:
    """A consistent snapshot of a check, safe to read from any thread."""

    state: str
    progress: float  # 0..1
    message: str
    error: str | None = None
    job_id: str | None = None
    summary: AdherenceSummary | None = None  # once DONE

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


class _Cancelled(Exception):
    pass


class AdherenceCheck:
    """Check the generated frames in ``generated_dir`` against the keypoints in ``keypoints_dir``
    (``pose_NNNN_keypoints.json``, beside the pose maps) with the backend's ``extractor``;
    ``threshold`` None leaves the flagging threshold to the backend."""

    def __init__(self, client: BackendClient, generated_dir, keypoints_dir, *,
                 extractor: str = adherence.DEFAULT_EXTRACTOR, threshold: float | None = None,
                 poll_interval: float = POLL_INTERVAL):
        self.client = client
        self.generated_dir = Path(generated_dir)
        self.keypoints_dir = Path(keypoints_dir)
        self.extractor = extractor
        self.threshold = threshold
        self.poll_interval = float(poll_interval)
        self.inputs: AdherenceInputs | None = None
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._callback: Callable[[CheckStatus], None] | None = None
        self._job_id: str | None = None
        self._job_finished = True
        self._status = CheckStatus(IDLE, 0.0, "not started")

    # -- what the UI reads (any thread) --------------------------------------------------------

    def snapshot(self) -> CheckStatus:
        with self._lock:
            return self._status

    finished = property(lambda self: self.snapshot().finished)

    def notes(self) -> list[str]:
        """What the check left out (frames without keypoints, pose frames not generated)."""
        return self.inputs.notes() if self.inputs is not None else []

    # -- driving it ----------------------------------------------------------------------------

    def start(self) -> None:
        """Run in a daemon thread; poll ``snapshot()`` from a timer. Never blocks."""
        if self._thread is not None or self.snapshot().state != IDLE:
            raise RuntimeError("this adherence check was already started")
        self._thread = threading.Thread(target=self._run_guarded, name="posebridge-adherence", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the background check ends (True) or ``timeout`` passes (False)."""
        if self._thread is None:
            return self.finished
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def cancel(self) -> None:
        """Ask the check to stop; its own thread DELETEs the job, so this never waits."""
        self._cancel.set()

    def run_blocking(self, progress_callback: Callable[[CheckStatus], None] | None = None) -> CheckStatus:
        """The whole check in this thread, ``progress_callback(status)`` on every change. Ctrl+C
        cancels the backend job, then re-raises KeyboardInterrupt."""
        if self._thread is not None or self.snapshot().state != IDLE:
            raise RuntimeError("this adherence check was already started")
        self._callback = progress_callback
        try:
            self._run_guarded()
        except KeyboardInterrupt:
            self._cancel.set()
            self._cancel_remote()
            self._update(state=CANCELLED, message="interrupted")
            raise
        finally:
            self._callback = None
        return self.snapshot()

    # -- the work ------------------------------------------------------------------------------

    def _update(self, **changes) -> None:
        with self._lock:
            if "progress" in changes:  # never backwards
                changes["progress"] = min(1.0, max(self._status.progress, float(changes["progress"])))
            self._status = replace(self._status, **changes)
            status = self._status
        if self._callback is not None:
            self._callback(status)

    def _fail(self, text: str) -> None:
        self._update(state=FAILED, message=text, error=text)

    def _run_guarded(self) -> None:
        try:
            self._work()
        except _Cancelled:
            self._update(state=CANCELLED, message="adherence check cancelled; the frames are untouched")
        except (AdherenceError, BackendError) as error:
            self._fail(str(error))
        except OSError as error:  # the generated folder: full disk, no permission
            self._fail(f"cannot write the report into {self.generated_dir}: {error.strerror or error}")
        except Exception as error:  # a bug: say so rather than leave the UI polling a dead thread
            traceback.print_exc()
            self._fail(f"the adherence check stopped by an unexpected error: {type(error).__name__}: {error}")

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            self._cancel_remote()
            raise _Cancelled()

    def _cancel_remote(self) -> None:
        job_id = self._job_id
        if job_id is None or self._job_finished:
            return
        self._job_finished = True
        try:
            self.client.cancel(job_id)
        except BackendError:
            pass  # gone, or the job ended meanwhile: nothing left to stop

    def _work(self) -> None:
        self._update(state=CHECKING, message=f"reading the frames in {self.generated_dir}")
        self.inputs = adherence.gather_inputs(self.generated_dir, self.keypoints_dir)
        body = adherence.adherence_body(self.inputs, self.extractor, self.threshold)
        self._check_cancel()
        count = len(self.inputs.frames)
        self._update(progress=SEND_SHARE / 2, message=f"sending {count} frame(s) to {self.client.url}")
        try:
            job = self.client.submit_adherence(body)
        except BackendRequestError as error:
            if error.status in (404, 405):
                raise BackendError(f"the backend at {self.client.url} has no pose-adherence check "
                                   "(POST /adherence): update it", url=error.url, status=error.status) from None
            raise
        del body
        self._job_id, self._job_finished = str(job["id"]), False
        self._update(state=RUNNING, job_id=self._job_id, progress=SEND_SHARE)
        status = self._follow(job, count)
        if status.get("state") != DONE:
            self._job_finished = True
            if status.get("state") == CANCELLED:
                raise BackendError(f"the adherence job {self._job_id} was cancelled on the backend")
            reason = status.get("error") or "no reason given"
            raise BackendError(f"the backend failed the adherence check (job {self._job_id}): {reason}")
        self._job_finished = True
        self._update(progress=SEND_SHARE + JOB_SHARE, message="downloading the report")
        archive = self._call(self.client.download_result, self._job_id)
        self._check_cancel()
        written = adherence.unpack_report(archive, self.generated_dir)
        summary = adherence.read_summary(self.generated_dir)
        if summary is None:
            raise AdherenceError(f"{written[0]}: the report could not be read back")
        self._update(state=DONE, progress=1.0, summary=summary, message=summary.text())

    def _follow(self, status: dict, count: int) -> dict:
        """Poll the job until it ends; its last status."""
        job_id = self._job_id
        while status.get("state") not in FINISHED:
            fraction = float(status.get("progress") or 0.0)
            if status.get("queue_position"):
                message = f"waiting for {status['queue_position']} job(s) ahead on the backend"
            else:
                message = f"detecting the pose in {count} generated frame(s): {int(fraction * 100)}%"
            self._update(progress=SEND_SHARE + JOB_SHARE * fraction, message=message)
            self._cancel.wait(self.poll_interval)
            self._check_cancel()
            try:
                status = self._call(self.client.status, job_id)
            except BackendRequestError as error:
                if error.status == 404:  # a new backend process on the same port forgot the job
                    self._job_finished = True
                    raise BackendError(f"the backend at {self.client.url} no longer knows job {job_id} "
                                       "(was it restarted?)") from None
                raise
        return status

    def _call(self, function, *args):
        """A read-only request, retried a little when nobody answers."""
        for attempt in range(RETRIES + 1):
            try:
                return function(*args)
            except BackendUnavailable:
                if attempt == RETRIES:
                    raise
                self._cancel.wait(self.poll_interval)
