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
loading them can already check. The thread, cancel and polling are backend_job.py's.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import adherence
from .adherence import AdherenceError, AdherenceInputs, AdherenceSummary
from .backend_job import POLL_INTERVAL, BackendJobRun, JobRunStatus, megabytes
from .client import BackendClient
from .run_state import CHECKING, DONE


@dataclass(frozen=True)
class CheckStatus(JobRunStatus):
    """A consistent snapshot of a check, safe to read from any thread."""

    summary: AdherenceSummary | None = None  # once DONE


class AdherenceCheck(BackendJobRun):
    """Check the generated frames in ``generated_dir`` against the keypoints in ``keypoints_dir``
    (``pose_NNNN_keypoints.json``, beside the pose maps) with the backend's ``extractor``;
    ``threshold`` None leaves the flagging threshold to the backend."""

    what = "adherence check"
    route = "POST /adherence"
    status_type = CheckStatus
    cancelled_text = "adherence check cancelled; the frames are untouched"
    job_share = 0.9  # the last 5%: bringing the report home

    def __init__(self, client: BackendClient, generated_dir, keypoints_dir, *,
                 extractor: str = adherence.DEFAULT_EXTRACTOR, threshold: float | None = None,
                 poll_interval: float = POLL_INTERVAL):
        super().__init__(client, poll_interval)
        self.generated_dir = Path(generated_dir)
        self.keypoints_dir = Path(keypoints_dir)
        self.extractor = extractor
        self.threshold = threshold
        self.inputs: AdherenceInputs | None = None
        self._request_bytes = 0

    def notes(self) -> list[str]:
        """What the check left out (frames without keypoints, pose frames not generated)."""
        return self.inputs.notes() if self.inputs is not None else []

    def _too_large(self) -> str:
        return (f"the frames ({megabytes(self._request_bytes)}) are over the backend's request limit "
                "(--max-request-mb): check fewer frames or raise --max-request-mb")

    def _job_progress(self, status: dict) -> tuple[float, str]:
        fraction = float(status.get("progress") or 0.0)
        return fraction, (f"detecting the pose in {len(self.inputs.frames)} generated frame(s): "
                          f"{int(fraction * 100)}%")

    def _error_text(self, error: Exception) -> str | None:
        if isinstance(error, AdherenceError):
            return str(error)
        if isinstance(error, OSError):  # the generated folder: full disk, no permission
            return f"cannot write the report into {self.generated_dir}: {error.strerror or error}"
        return super()._error_text(error)

    def _work(self) -> None:
        self._update(state=CHECKING, message=f"reading the frames in {self.generated_dir}")
        self.inputs = adherence.gather_inputs(self.generated_dir, self.keypoints_dir)
        # Encoded here, so the 413 message can say how large the request was.
        data = json.dumps(adherence.adherence_body(self.inputs, self.extractor, self.threshold)).encode("utf-8")
        self._request_bytes = len(data)
        self._check_cancel()
        count = len(self.inputs.frames)
        self._update(progress=self.send_share / 2, message=f"sending {count} frame(s) to {self.client.url}")
        job = self._submit(self.client.submit_adherence, data)
        del data
        self._follow(job)
        self._update(progress=self.send_share + self.job_share, message="downloading the report")
        archive = self._call(self.client.download_result, self.snapshot().job_id)
        self._check_cancel()
        written = adherence.unpack_report(archive, self.generated_dir)
        summary = adherence.read_summary(self.generated_dir)
        if summary is None:
            raise AdherenceError(f"{written[0]}: the report could not be read back")
        self._update(state=DONE, progress=1.0, summary=summary, message=summary.text())
