"""One generation, client side: plan the output folder, send what is missing, save what comes back.

    run = GenerationRun(BackendClient(url, token), out_dir, control_frames(poses_dir), params)
    run.start()                      # Blender: HTTP work on a background thread
    ... on a timer: run.snapshot()   # state, progress, message, frames_written, error
    run.cancel()                     # stops the run and DELETEs the job on the backend

    status = run.run_blocking(print) # batch: the same work in the calling thread

Flow: ``/health`` (its model ids are part of the settings that decide whether an existing frame
is still right) -> ``job_folder.plan`` -> submit only the frames to make -> poll the job every
``poll_interval`` seconds -> download each newly finished frame and write it at once (a crash
keeps it) -> done. When nothing is left to make, the run ends without submitting a job; it still
asks ``/health`` first, because without the backend's model ids "already done" cannot be told
from "made with another model".

The backend dying mid-job, or failing the job, ends the run with a message saying how many
frames are saved and that running again makes only the missing ones; saved frames are never
removed.

Temporal pipelines (animatediff, wan-vace) make a job's frames together, as one video, so the
work is cut differently (generate/videos.py): each unbroken run of frames to make is one video,
or one job per segment, made one after another. A job whose frame just before it is already made
(an earlier segment, or frames kept from an earlier run) gets up to ``lead`` of those frames as
lead frames: the backend continues the video from them, so the join does not jump. AnimateDiff's
segment is its new frames (none given: the whole run as one video); Wan VACE's is its clip
length, lead frames included, 81 unless given, so a Wan shot longer than that is always cut. A
segment's frames land when it finishes; a crash keeps every finished segment, and the next run
goes on from the first segment not made.
"""
from __future__ import annotations

import threading
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Callable

from . import job_folder
from .client import BackendClient, BackendError, BackendRequestError, BackendUnavailable, submit_when_free
from .controls import ControlFolderError, ControlFrame
from .planning import plan_generation
from .run_state import CANCELLED, CHECKING, DONE, FAILED, FINISHED, IDLE, POLL_INTERVAL, RETRIES, RUNNING, RunStatus
from .videos import CuttingError, cutting, lead_frames, video_units

class _Cancelled(Exception):
    pass


class _JobEnded(Exception):
    """The backend's job ended without all its frames: failed, cancelled there, or forgotten."""

    def __init__(self, state: str, text: str):
        super().__init__(text)
        self.state = state


class GenerationRun:
    """Generate the missing frames of ``controls`` into ``out_dir`` with ``params``.

    ``overwrite`` also regenerates stale frames (made with other settings or controls).
    ``max_job_frames`` splits the work into jobs of at most that many frames (None: one job; a
    413 "request too large" answer halves the job size on its own).
    ``reference``: the identity reference image (a PNG file) or None. Temporal pipelines only:
    ``segment`` frames per job (None: the pipeline's default, see generate/videos.py), at most
    ``lead`` frames a job continues from (None: the pipeline's own, 4 AnimateDiff, 5 Wan VACE).
    """

    def __init__(
        self,
        client: BackendClient,
        out_dir,
        controls: list[ControlFrame],
        params: dict,
        *,
        overwrite: bool = False,
        name: str | None = None,
        poll_interval: float = POLL_INTERVAL,
        max_job_frames: int | None = None,
        reference=None,
        segment: int | None = None,
        lead: int | None = None,
    ):
        self.client = client
        self.out_dir = Path(out_dir)
        self.controls = list(controls)
        self.params = dict(params or {})
        self.overwrite = bool(overwrite)
        self.name = name or self.out_dir.name
        self.poll_interval = float(poll_interval)
        self.max_job_frames = max_job_frames
        self.reference = None if reference is None else Path(reference)
        if segment is not None and segment < 1:
            raise ValueError(f"segment must be at least 1 frame (got {segment})")
        self.segment = segment
        self.lead = None if lead is None else max(0, int(lead))
        self._videos: dict[str, dict] = {}  # temporal job id -> what its frames record as "video"
        self.plan: job_folder.Plan | None = None
        self.health: dict | None = None
        self.job_ids: list[str] = []  # every job this run submitted, in order
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._callback: Callable[[RunStatus], None] | None = None
        self._writer: job_folder.FrameWriter | None = None
        self._job_id: str | None = None
        self._job_finished = True
        self._status = RunStatus(IDLE, 0.0, "not started", 0, 0, None, None)

    # -- what the UI reads (any thread) --------------------------------------------------------

    def snapshot(self) -> RunStatus:
        with self._lock:
            return self._status

    state = property(lambda self: self.snapshot().state)
    progress = property(lambda self: self.snapshot().progress)
    message = property(lambda self: self.snapshot().message)
    frames_written = property(lambda self: self.snapshot().frames_written)
    error = property(lambda self: self.snapshot().error)
    finished = property(lambda self: self.snapshot().finished)

    @property
    def written_frames(self) -> list[int]:
        """Frame numbers this run saved so far, in the order they landed."""
        with self._lock:
            return list(self._writer.written) if self._writer else []

    # -- driving it ----------------------------------------------------------------------------

    def start(self) -> None:
        """Run in a daemon thread; poll ``snapshot()`` from a timer. Never blocks."""
        if self._thread is not None or self.state != IDLE:
            raise RuntimeError("this generation run was already started")
        self._thread = threading.Thread(target=self._run_guarded, name="posebridge-generate", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the background run ends (True) or ``timeout`` passes (False)."""
        if self._thread is None:
            return self.finished
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def cancel(self) -> None:
        """Ask the run to stop; it DELETEs its job on the backend from its own thread, so this
        call never waits on the network (the UI thread may call it)."""
        self._cancel.set()

    def run_blocking(self, progress_callback: Callable[[RunStatus], None] | None = None) -> RunStatus:
        """Do the whole run in this thread, calling ``progress_callback(status)`` on every change.
        Ctrl+C cancels the backend job, then re-raises KeyboardInterrupt."""
        if self._thread is not None or self.state != IDLE:
            raise RuntimeError("this generation run was already started; make a new one to run again")
        self._callback = progress_callback
        try:
            self._run_guarded()
        except KeyboardInterrupt:
            self._cancel.set()
            self._cancel_remote()
            self._finish(CANCELLED, "interrupted; " + self._saved_sentence())
            raise
        finally:
            self._callback = None
        return self.snapshot()

    # -- the work ------------------------------------------------------------------------------

    def _update(self, **changes) -> None:
        with self._lock:
            current = self._status
            if "progress" in changes:  # progress never goes back (a new job starts at 0)
                changes["progress"] = min(1.0, max(current.progress, float(changes["progress"])))
            self._status = replace(current, **changes)
            status = self._status
        if self._callback is not None:
            self._callback(status)

    def _finish(self, state: str, message: str, error: str | None = None) -> None:
        progress = {"progress": 1.0} if state == DONE else {}
        self._update(state=state, message=message, error=error, **progress)

    def _run_guarded(self) -> None:
        try:
            self._work()
        except _Cancelled:
            self._finish(CANCELLED, "cancelled; " + self._saved_sentence())
        except _JobEnded as ended:
            text = f"{ended}; {self._saved_sentence()}"
            self._finish(ended.state, text, None if ended.state == CANCELLED else text)
        except BackendUnavailable as error:
            if self._writer is None:  # nothing submitted yet: the client's own words say it best
                text = str(error)
            else:
                text = f"the backend at {self.client.url} stopped answering; " + self._saved_sentence()
            self._finish(FAILED, text, text)
        except (BackendError, ControlFolderError, CuttingError) as error:
            text = str(error) + (f"; {self._saved_sentence()}" if self._writer is not None else "")
            self._finish(FAILED, text, text)
        except OSError as error:  # the output folder: full disk, no permission
            text = f"cannot write into {self.out_dir}: {error.strerror or error}"
            if self._writer is not None:
                text += f"; {self._saved_sentence()}"
            self._finish(FAILED, text, text)
        except Exception as error:  # a bug: say so rather than leave the UI polling a dead thread
            traceback.print_exc()
            text = f"generation stopped by an unexpected error: {type(error).__name__}: {error}"
            self._finish(FAILED, text, text)

    def _saved_sentence(self) -> str:
        plan = self.plan
        if plan is None:
            return "no frames were saved"
        saved = len(plan.done) + (len(self._writer.written) if self._writer else 0)
        return (
            f"{saved} of {plan.total} frames are saved in {plan.out_dir}; "
            "run again to generate only the missing ones"
        )

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            self._cancel_remote()
            raise _Cancelled()

    def _cancel_remote(self) -> None:
        """DELETE the current job if it is still going, then save what it finished anyway."""
        job_id = self._job_id
        if job_id is None or self._job_finished:
            return
        self._job_finished = True
        try:
            status = self.client.cancel(job_id)
            self._save_new_frames(job_id, status)
        except BackendError:
            pass  # the backend is gone or the job ended meanwhile: nothing left to stop

    def _work(self) -> None:
        self._update(state=CHECKING, message=f"asking the backend at {self.client.url}")
        self._check_cancel()
        self.plan, self.health = plan_generation(
            self.client, self.out_dir, self.controls, self.params, self.reference, self.segment
        )
        plan = self.plan
        todo = plan.to_generate(self.overwrite)
        kept = "" if self.overwrite or not plan.stale else (
            f"; kept {len(plan.stale)} frame(s) made with other settings or pose maps (overwrite to replace them)"
        )
        if not todo:
            self._finish(DONE, f"all {len(plan.done)} frames are already in {plan.out_dir}{kept}")
            return
        pipeline = job_folder.effective_pipeline(self.params, self.health)
        cut = self._cutting(pipeline) if job_folder.is_temporal(pipeline) else None  # refused before sending
        self._check_cancel()
        info = {k: self.health.get(k) for k in ("device", "dtype", "version") if k in self.health}
        with self._lock:
            self._writer = job_folder.FrameWriter(plan, self.overwrite, info)
        self._update(state=RUNNING, frames_to_make=len(todo), message=f"sending {len(todo)} frame(s)")
        if cut is not None:
            self._make_videos(todo, cut)
            self._finish(DONE, f"generated {len(todo)} frame(s) into {plan.out_dir}{kept}")
            return
        pending = list(todo)
        size = self.max_job_frames or len(pending)
        while pending:
            chunk = pending[:size]
            try:
                job = self._submit(self.params, plan.control_frames(chunk), name=self.name,
                                   reference=self.reference)
            except BackendRequestError as error:
                if error.status == 413 and len(chunk) > 1:
                    size = max(1, len(chunk) // 2)  # too large for the backend: smaller jobs
                    continue
                raise
            self._follow(job, done_before=len(todo) - len(pending), todo=len(todo))
            pending = pending[len(chunk):]
        self._finish(DONE, f"generated {len(todo)} frame(s) into {plan.out_dir}{kept}")

    def _submit(self, *args, **options) -> dict:
        """client.submit, waiting (cancellable) while the backend's queue is full."""
        return submit_when_free(lambda: self.client.submit(*args, **options), self._cancel,
                                lambda text: self._update(message=text), self._check_cancel)

    def _cutting(self, pipeline: str):
        """How this run's videos are cut (generate/videos.py); CuttingError for a segment the
        pipeline cannot use."""
        context = self.params.get("context_length") or job_folder.PARAM_DEFAULTS["context_length"]
        return cutting(pipeline, self.segment or self.max_job_frames, self.lead,
                       context_length=int(context) if pipeline == "animatediff" else None)

    def _make_videos(self, todo: list[int], cut) -> None:
        """Temporal pipelines: one job per video unit, in order, each continuing from the frames
        made just before it."""
        plan = self.plan
        units = video_units(list(plan.controls), todo, cut.segment,
                            lead=cut.lead if cut.lead_in_segment else 0, usable=plan.done)
        # A Wan job is one clip, lead frames included: the backend is told the clip length, or it
        # would cut a job longer than its default (81) into clips of its own.
        params = {**self.params, "segment": cut.segment} if cut.lead_in_segment else self.params
        done_before = 0
        for unit in units:
            self._check_cancel()
            lead = self._lead_frames(unit[0], cut.lead)
            try:
                job = self._submit(
                    params, plan.control_frames(unit), name=self.name, reference=self.reference,
                    lead=[(plan.controls[f], job_folder.output_path(plan.out_dir, f)) for f in lead],
                )
            except BackendRequestError as error:
                if error.status == 413:
                    raise BackendRequestError(
                        f"{error}; a video of {len(unit)} frames is too large for one job on this backend:"
                        " set a segment length (frames per job) or raise the backend's limits",
                        url=error.url, status=error.status, detail=error.detail,
                    ) from None
                raise
            self._videos[job["id"]] = {"job": job["id"], "frames": [unit[0], unit[-1]], "lead": lead}
            self._follow(job, done_before=done_before, todo=len(todo))
            done_before += len(unit)

    def _lead_frames(self, first: int, most: int) -> list[int]:
        """The frames made with these settings (earlier, or by this run) that the video starting
        at ``first`` continues from."""
        usable = set(self.plan.done) | set(self._writer.written)
        return lead_frames(list(self.plan.controls), first, usable, most)

    def _call(self, function, *args):
        """A read-only request, retried a little when nobody answers (see RETRIES)."""
        for attempt in range(RETRIES + 1):
            try:
                return function(*args)
            except BackendUnavailable:
                if attempt == RETRIES:
                    raise
                self._cancel.wait(self.poll_interval)

    def _save_new_frames(self, job_id: str, status: dict) -> None:
        written = set(self._writer.written)
        for frame in status.get("frames_done", []):
            if frame not in written:
                png = self._call(self.client.download_frame, job_id, frame)
                with self._lock:
                    self._writer.write(frame, png, self._videos.get(job_id))
                self._update(frames_written=len(self._writer.written))

    def _follow(self, job: dict, done_before: int, todo: int) -> None:
        """Make a just-submitted job the current one (cancel deletes it), then poll it until it
        ends, saving its frames as they finish."""
        job_id, frames = job["id"], list(job.get("frames", []))
        self._job_id, self._job_finished = job_id, False
        self.job_ids.append(job_id)
        self._update(job_id=job_id)
        status = job
        while True:
            self._check_cancel()
            self._save_new_frames(job_id, status)
            state = status.get("state")
            job_progress = float(status.get("progress") or 0.0)
            saved = len(self._writer.written)
            progress = max(saved / todo, (done_before + job_progress * len(frames)) / todo)
            if status.get("queue_position"):
                message = f"waiting for {status['queue_position']} job(s) ahead on the backend"
            else:
                message = f"generating: {saved} of {todo} frame(s) saved"
            self._update(progress=progress, message=message)
            if state in FINISHED:
                self._job_finished = True
                missing = [f for f in frames if f not in set(status.get("frames_done", []))]
                if state == DONE and not missing:
                    return
                if state == CANCELLED:
                    raise _JobEnded(CANCELLED, f"job {job_id} was cancelled on the backend")
                reason = status.get("error") or (f"it ended without frame(s) {missing[:5]}" if missing else "no reason given")
                raise _JobEnded(FAILED, f"the backend failed job {job_id}: {reason}")
            self._cancel.wait(self.poll_interval)
            self._check_cancel()
            try:
                status = self._call(self.client.status, job_id)
            except BackendRequestError as error:
                if error.status == 404:  # a new backend process on the same port forgot the job
                    self._job_finished = True
                    raise _JobEnded(
                        FAILED, f"the backend at {self.client.url} no longer knows job {job_id} (was it restarted?)"
                    ) from None
                raise

