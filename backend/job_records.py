"""Generation job records kept in the work folder, so a restarted backend still answers for them.

Each job's record is ``work_dir/.records/<id>.json``, written (atomically) when the job is
submitted and when it finishes. Its inputs are not kept: a restarted backend serves a finished
job's status and frames, but cannot run a job that had not finished. Such a job comes back
"failed" with a message saying so, listing the frames it had finished (the frame files in its
folder; a temporal job's unpublished ``.staging`` frames do not count).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from .pipelines import GenerateParams
from .worker_queue import FAILED, FINISHED_STATES

RECORDS = ".records"
_FIELDS = ("id", "name", "frames", "frames_done", "state", "progress", "error", "created", "started",
           "finished", "codec_seconds")
_OPTIONAL = ("key",)  # absent from records written before it was kept
STOPPED = "the backend stopped before this job finished; its finished frames are kept"


def save(job, work_dir: Path) -> None:
    folder = Path(work_dir) / RECORDS
    folder.mkdir(parents=True, exist_ok=True)
    record = {name: getattr(job, name) for name in _FIELDS + _OPTIONAL}
    record["params"] = asdict(job.params)
    temp = folder / f".{job.id}.json.tmp"
    temp.write_text(json.dumps(record), encoding="utf-8")
    os.replace(temp, folder / f"{job.id}.json")


def load(work_dir: Path, make_job) -> list:
    """Every recorded job, oldest first, as ``make_job(**fields)`` builds them; an unreadable
    record is skipped (it names no frame a client could be waiting for). A job recorded as
    queued or running is turned failed (``STOPPED``) and its record rewritten."""
    jobs = []
    for path in sorted((Path(work_dir) / RECORDS).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            params = record.pop("params")
            if params.get("prompts"):  # JSON keys are strings; the schedule's are frame numbers
                params["prompts"] = {int(k): v for k, v in params["prompts"].items()}
            job = make_job(params=GenerateParams(**params), folder=Path(work_dir) / record["id"],
                           **{name: record[name] for name in _FIELDS},
                           **{name: record[name] for name in _OPTIONAL if name in record})
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if job.state not in FINISHED_STATES:
            job.frames_done = [n for n in job.frames if job.frame_path(n).is_file()]
            job.state, job.error = FAILED, STOPPED
            save(job, work_dir)  # once: the next restart reads it as the failed job it now is
        jobs.append(job)
    return sorted(jobs, key=lambda job: job.created)
