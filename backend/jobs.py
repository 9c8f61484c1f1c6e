"""The generation job queue: jobs run one at a time, in submission order, on one worker thread.

    queue = JobQueue(pipe, work_dir)
    queue.start()
    job = queue.submit([FrameInput(1, pose_png_bytes), ...], GenerateParams(steps=20), name="shot010")
    queue.status(job.id)      # {"state": "running", "frames_done": [1], "progress": 0.3, ...}
    queue.cancel(job.id)
    queue.stop()

Each job writes its finished frames as ``frame_NNNN.png`` (RGB) into ``work_dir/<job id>/`` as
they finish, so they can be downloaded while the job runs, and stay after a cancel or a failure.
A job that raises is marked "failed" with the message, and the next job runs.

Per-frame jobs (pipeline "frames") hold their frames as given (PNG bytes or PIL images) and decode
them a batch at a time, so a long job does not hold all its decoded images in memory; since every
frame starts from the same noise, running a job batch by batch gives the same frames as one call.

Temporal jobs (pipelines "animatediff", "wan-vace") denoise all their frames together: no frame
is final before the last step. Their frames are written into ``work_dir/<job id>/.staging/`` as
they are decoded and only then moved into place and listed as done, all at once: a job that fails
or is cancelled lists no frame, so a client never takes a frame of an unfinished video. A wan-vace
job longer than its segment is made clip after clip: each clip's frames are published when it
finishes (the pipeline's segment_done hook), so a failure keeps the finished clips.

Nothing here knows about HTTP (backend/server.py maps it), so it is tested directly.
"""

from __future__ import annotations

import io
import os
import secrets
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..pose.formats.atomic_file import write_bytes_atomic
from . import job_records
from .pipelines import EncodedFrames, GenerateParams, GenerationCancelled, generate, is_temporal, on_white, rgb8

from .worker_queue import CANCELLED, DONE, FAILED, FINISHED_STATES, QUEUED, RUNNING, WorkerQueue

__all__ = ["FrameInput", "Job", "JobQueue", "frame_filename",
           "QUEUED", "RUNNING", "DONE", "FAILED", "CANCELLED", "FINISHED_STATES"]

# Test-only fault: with this variable set to a frame number, a job fails just before the batch
# holding that frame (the server passes it to JobQueue.fail_at_frame). Lets tests make a real
# server process fail a job midway; unset in normal use.
FAIL_AT_FRAME_ENV = "POSEBRIDGE_BACKEND_TEST_FAIL_AT_FRAME"


def frame_filename(frame: int) -> str:
    """``frame_0001.png``; negative numbers keep their sign: ``frame_-005.png``."""
    return f"frame_{frame:04d}.png"


def fail_at_frame_from_env() -> int | None:
    value = os.environ.get(FAIL_AT_FRAME_ENV, "").strip()
    return int(value) if value else None


@dataclass
class FrameInput:
    """One frame of a job: its number, its pose image, its depth image (or None). Images are
    encoded image bytes (PNG) or PIL images; they are decoded when their batch runs."""

    frame: int
    pose: Any
    depth: Any = None
    given: Any = None  # a lead frame's generated image: the video continues from it


@dataclass
class Job:
    """One job's record. Read it through JobQueue.status(): the worker changes it under the
    queue's lock."""

    id: str
    name: str
    frames: list[int]
    params: GenerateParams
    folder: Path
    state: str = QUEUED
    frames_done: list[int] = field(default_factory=list)
    progress: float = 0.0
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel_requested: bool = False
    inputs: list[FrameInput] | None = None  # dropped once the job has finished
    reference: Any = None  # the identity reference (PNG bytes or PIL image); dropped at the end
    # Time spent decoding control PNGs and encoding frame PNGs: the backend's share of
    # "transport and encoding" (the rest of started..finished is the pipeline itself).
    codec_seconds: float = 0.0
    key: str | None = None  # the client's Idempotency-Key: a repeated submit gets this job back

    def frame_path(self, frame: int) -> Path:
        return self.folder / frame_filename(frame)


def _decode(image):
    """PIL RGB image from encoded bytes or a PIL image."""
    from PIL import Image

    if isinstance(image, (bytes, bytearray, memoryview)):
        with Image.open(io.BytesIO(image)) as opened:
            return rgb8(opened)
    return image


def decode_reference_image(reference):
    """The identity reference (PNG bytes, PIL image or None) as PIL RGB, transparency made white
    (pipelines.on_white)."""
    from PIL import Image

    if reference is None or isinstance(reference, Image.Image):
        return on_white(reference)
    with Image.open(io.BytesIO(reference)) as opened:
        return rgb8(on_white(opened))


def decode_controls(pipeline: str, inputs: list[FrameInput]):
    """(poses, depths or None, known lead frames {index: image}) for generate(). Decoded now for
    the frames pipeline (a batch at a time); for a temporal job (all its frames at once) kept
    encoded and decoded as the pipeline reads them, so a long shot is not held as images."""
    known = {i: _decode(f.given) for i, f in enumerate(inputs) if f.given is not None}
    if not is_temporal(pipeline):
        poses = [_decode(f.pose) for f in inputs]
        return poses, None if inputs[0].depth is None else [_decode(f.depth) for f in inputs], known
    size = _decode(inputs[0].pose).size
    poses = EncodedFrames([f.pose for f in inputs], _decode, size)
    depths = None if inputs[0].depth is None else EncodedFrames([f.depth for f in inputs], _decode, size)
    return poses, depths, known


class FrameWriteError(OSError):
    """A generated frame could not be written: names the folder and the reason."""


def write_frame_png(frame, path: Path) -> None:
    """Write whole or not at all (atomic_file): a download never sees half a PNG, and a full
    disk or a folder gone leaves no temporary file behind, only a FrameWriteError naming it."""
    from PIL import Image

    encoded = io.BytesIO()
    Image.fromarray(frame, "RGB").save(encoded, format="PNG")
    try:
        write_bytes_atomic(path, encoded.getvalue())
    except OSError as error:
        raise FrameWriteError(f"cannot write {path.name} to the work folder {path.parent}: "
                              f"{error.strerror or error}") from None


class QueueFull(RuntimeError):
    """As many jobs are waiting as the queue takes (serve --max-queued)."""

    def __init__(self, waiting: int):
        super().__init__(f"{waiting} jobs are waiting already")
        self.waiting = waiting


class JobQueue(WorkerQueue):
    """Jobs in submission order and the one worker thread that runs them.

    generate_fn: backend.pipelines.generate or a stand-in with its signature (tests).
    fail_at_frame: see FAIL_AT_FRAME_ENV (tests only).
    """

    def __init__(
        self,
        pipe,
        work_dir: str | os.PathLike,
        *,
        generate_fn: Callable = generate,
        fail_at_frame: int | None = None,
    ):
        super().__init__(work_dir, "posebridge-jobs")
        self._keys: dict[str, str] = {}  # idempotency key -> job id
        self.pipe = pipe
        self.generate_fn = generate_fn
        self.fail_at_frame = fail_at_frame

    def start(self) -> None:
        """Start the worker, after taking back the jobs recorded in the work folder (a restart)."""
        for job in job_records.load(self.work_dir, Job):
            self._jobs[job.id] = job
            if job.key is not None:
                self._keys[job.key] = job.id
        super().start()

    # --- requests -------------------------------------------------------------------------------

    def submit(self, frames: list[FrameInput], params: GenerateParams, name: str = "", reference=None, *,
               key: str | None = None, max_waiting: int | None = None) -> Job:
        """Queue a job (frames already checked by the caller); return its record. reference:
        the identity reference image (PNG bytes or PIL image) or None. Frames with ``given``
        images (lead frames) come first; they condition a temporal job and are not made.
        key: the client's idempotency key; a job submitted with it before is returned instead of
        a new one. max_waiting: QueueFull when that many jobs are waiting already."""
        params.validate()
        if not frames or all(f.given is not None for f in frames):
            raise ValueError("empty job: no frames")
        with self._lock:  # one job per key, and the bound, even for submits that race
            known = self.job_for_key(key)
            if known is not None:
                return known
            if max_waiting is not None and len(self._waiting) >= max_waiting:
                raise QueueFull(len(self._waiting))
            job_id = secrets.token_hex(8)
            job = Job(
                id=job_id,
                name=name,
                frames=[f.frame for f in frames if f.given is None],
                params=params,
                folder=self.work_dir / job_id,
                inputs=list(frames),
                reference=reference,
                key=key,
            )
            job.folder.mkdir(parents=True)
            job_records.save(job, self.work_dir)
            if key is not None:
                self._keys[key] = job_id
            self._enqueue(job)
        return job

    def job_for_key(self, key: str | None) -> Job | None:
        """The job submitted with idempotency key ``key``, or None."""
        with self._lock:
            return self._jobs.get(self._keys.get(key)) if key is not None else None

    def finished_frame_path(self, job_id: str, frame: int) -> Path | None:
        """The PNG of a finished frame, or None (unknown job, frame not in it or not done)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or frame not in job.frames_done:
                return None
            return job.frame_path(frame)

    # --- internals (the caller holds the lock where noted) --------------------------------------

    def _status(self, job: Job) -> dict:  # lock held
        return {
            "id": job.id,
            "name": job.name,
            "state": job.state,
            "frames": list(job.frames),
            "frames_done": list(job.frames_done),
            "progress": round(job.progress, 4),
            "queue_position": self._queue_position(job),
            "error": job.error,
            "params": asdict(job.params),
            "created": job.created,
            "started": job.started,
            "finished": job.finished,
            "codec_seconds": round(job.codec_seconds, 4),
        }

    def _error_outcome(self, job: Job, error: Exception) -> tuple[str, str | None]:  # lock held
        if isinstance(error, GenerationCancelled):
            return CANCELLED, None
        return super()._error_outcome(job, error)

    def _release(self, job: Job) -> None:  # lock held: the job has just finished
        job.inputs = None
        job.reference = None
        try:
            job_records.save(job, self.work_dir)
        except OSError as exc:  # the job's outcome stands; only a restart would forget it
            print(f"PoseBridge backend: could not record job {job.id}: {exc}", file=sys.stderr, flush=True)

    def _run(self, job: Job) -> None:
        if is_temporal(job.params.pipeline):
            # The test fault strikes a temporal job halfway through denoising, as a crash would.
            fault = self.fail_at_frame is not None and any(f.frame == self.fail_at_frame for f in job.inputs)
            self._run_temporal(job, fail_midway=fault)
        else:
            self._run_frames(job)

    def _set_progress(self, job: Job, fraction: float) -> None:
        with self._lock:
            job.progress = max(job.progress, min(1.0, fraction))

    def _generate(self, job: Job, inputs: list[FrameInput], reference, on_progress, on_segment_done=None):
        """generate_fn over ``inputs`` (decoded here: the time counts as codec time)."""
        clock = time.perf_counter()
        poses, depths, known = decode_controls(job.params.pipeline, inputs)
        job.codec_seconds += time.perf_counter() - clock
        return self.generate_fn(
            self.pipe,
            poses,
            depths,
            job.params,
            reference=reference,
            frame_numbers=[f.frame for f in inputs],
            known=known,
            on_progress=on_progress,
            should_stop=lambda: job.cancel_requested,
            on_segment_done=on_segment_done,
        )

    def _run_frames(self, job: Job) -> None:
        """Run a per-frame job batch by batch, writing each frame as it finishes."""
        inputs = job.inputs
        total = len(inputs)
        batch = job.params.batch
        reference = decode_reference_image(job.reference)

        for first in range(0, total, batch):
            chunk = inputs[first : first + batch]
            if self.fail_at_frame is not None and any(f.frame == self.fail_at_frame for f in chunk):
                raise RuntimeError(f"test fault at frame {self.fail_at_frame} ({FAIL_AT_FRAME_ENV})")
            if job.cancel_requested:
                raise GenerationCancelled("cancelled between batches")

            def on_progress(done, work, first=first, count=len(chunk)):
                self._set_progress(job, (first + count * done / work) / total)

            for index, frame in self._generate(job, chunk, reference, on_progress):
                number = chunk[index].frame
                clock = time.perf_counter()
                write_frame_png(frame, job.frame_path(number))
                job.codec_seconds += time.perf_counter() - clock
                with self._lock:
                    job.frames_done.append(number)
                    job.progress = max(job.progress, (first + index + 1) / total)

    def _run_temporal(self, job: Job, fail_midway: bool = False) -> None:
        """Run a temporal job in one call; publish its frames only once all are written, or, for
        a pipeline that makes it in segments, once each segment's are."""
        inputs = job.inputs
        staging = job.folder / ".staging"
        written, published = [], []

        def on_progress(done, work):
            if fail_midway and done * 2 >= work:
                raise RuntimeError(f"test fault at frame {self.fail_at_frame} ({FAIL_AT_FRAME_ENV}), mid-denoising")
            self._set_progress(job, 0.95 * done / work)  # decoding and writing are the last 5%

        def publish():
            for number in written[len(published):]:
                os.replace(staging / frame_filename(number), job.frame_path(number))
            with self._lock:
                job.frames_done.extend(written[len(published):])
            published[:] = written

        frames = self._generate(job, inputs, decode_reference_image(job.reference), on_progress, on_segment_done=publish)
        staging.mkdir(exist_ok=True)  # after the request was checked: a refused one leaves no folder
        for index, frame in frames:
            number = inputs[index].frame
            clock = time.perf_counter()
            write_frame_png(frame, staging / frame_filename(number))
            job.codec_seconds += time.perf_counter() - clock
            written.append(number)
        if len(written) != len(job.frames):
            raise RuntimeError(f"the pipeline returned {len(written)} of {len(job.frames)} frames")
        publish()
        staging.rmdir()
