"""The states a client-side run (generation, extraction, adherence) goes through, and the snapshot
of one that the UI reads from any thread."""
from __future__ import annotations

from dataclasses import dataclass

IDLE, CHECKING, RUNNING, DONE, FAILED, CANCELLED = "idle", "checking", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
POLL_INTERVAL = 0.3
# A status poll or download that finds nobody is retried this often (one poll interval apart)
# before the backend counts as gone: a busy CPU backend can miss one answer without being dead.
RETRIES = 2


@dataclass(frozen=True)
class RunStatus:
    """A consistent snapshot of a run, safe to read from any thread."""

    state: str
    progress: float  # 0..1 over the frames this run makes
    message: str
    frames_written: int  # frames saved by this run
    frames_to_make: int  # frames this run was to make (0 until planned)
    error: str | None
    job_id: str | None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED
