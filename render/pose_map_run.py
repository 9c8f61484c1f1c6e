"""Running the pose-map job: sample on Blender's main thread, draw and write in worker processes.

``run_job`` samples the characters a chunk of frames at a time (bpy: the main thread only) and
hands each frame to worker processes (workers/) that draw, encode and write it
(draw/map_frame.py) while the main thread samples the next chunk. It yields progress as frames
finish, in frame order, so the modal operator can update the status bar and stop on ESC, and the
batch command can print progress. Closing the generator (cancel) waits for the few frames
handed over (a chunk at most): the first N frames are on disk, whole, and the report says N. A
write that fails (disk full, folder gone) ends the job with a JobError naming the folder; the
frames before it stay.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Iterator

import numpy as np

from ..draw.map_frame import MapFrame, to_plain, write_map_frame
from ..workers.ordered_pool import OrderedPool, default_workers
from ..workers.processes import WorkerError, WorkerProcesses
from ..pose.formats import comfyui
from ..pose.keypoints import KeypointSequence
from .depth_maps import DepthFrames
from .occlusion import SurfaceFrames, chunk_frames
from .pose_maps import JobError, PoseMapJob, _sample

CHUNK_FRAMES = 16
# Shorter jobs are drawn on Blender's thread: starting a worker process (a Python importing
# numpy) takes about as long as drawing this many frames.
MIN_FRAMES_FOR_WORKERS = 48
# The progress bar's share of the depth-range pass (a cheaper second pass over the frames).
RANGE_SHARE = 0.2


@dataclass
class JobReport:
    frames_written: int = 0
    people_per_frame: list[int] = field(default_factory=list)
    cancelled: bool = False
    depth_range: object = None  # the DepthRange the depth maps were encoded with
    unevaluated: list[str] = field(default_factory=list)  # rendered objects missing from depth
    hidden: int = 0  # keypoints (of the parts written, over all frames) occlusion removed
    workers_failed: str | None = None  # why the worker processes stopped drawing, if they did
    write_error: str | None = None  # a frame that could not be written before a cancel took effect

    def summary(self, job: PoseMapJob) -> str:
        state = "Cancelled after" if self.cancelled else "Wrote"
        names = ", ".join(f"{c.armature.name} ({c.preset_label})" for c in job.characters)
        empty = sum(1 for n in self.people_per_frame if n == 0)
        tail = f"; {empty} frame(s) with nobody in view" if empty else ""
        if job.depth is not None and self.depth_range is not None:
            tail += (f"; {job.depth.describe()}, {self.depth_range.near:.3g} to "
                     f"{self.depth_range.far:.3g} from the camera")
        if job.occlusion:
            tail += f"; {self.hidden} keypoint(s) hidden by geometry"
        if self.unevaluated:
            tail += (f"; not in the depth maps because hidden in the viewport: "
                     f"{', '.join(self.unevaluated)}")
        if job.left_out:
            tail += f"; left out: {', '.join(job.left_out)}"
        if self.write_error:
            tail += f"; {self.write_error}"
        if self.workers_failed:
            tail += f"; drawn on Blender's thread after the worker processes failed ({self.workers_failed})"
        what = "pose and depth map(s)" if job.depth is not None else "pose map(s)"
        return (
            f"{state} {self.frames_written} {what} {job.width}x{job.height} to "
            f"{job.output_dir} for {names}{tail}"
        )


def run_job(scene, job: PoseMapJob, report: JobReport | None = None, workers: int | None = None) -> Iterator[float]:
    """Render the job; yields the finished fraction after every frame (handed over or written).

    ``workers``: processes drawing and writing beside this thread (default: one per core but
    one, at most 7, for jobs of MIN_FRAMES_FOR_WORKERS frames or more; 0 does it all on the
    calling thread). Should the processes fail (one dies, or cannot start), the rest is drawn
    on this thread and the report says why. The scene's frame is never left changed: sampling
    restores it after every chunk.
    """
    report = report if report is not None else JobReport()
    if workers is None:
        # This thread samples, and draws whenever the workers are all busy: one core is its.
        workers = default_workers() - 1 if len(job.frames) >= MIN_FRAMES_FOR_WORKERS else 0
    run = _Run(job, report)
    processes = _start_workers(workers, report)
    depth, start = None, 0.0
    step = chunk_frames(job.width, job.height, CHUNK_FRAMES) if job.occlusion else CHUNK_FRAMES
    # Enough out for the workers to draw while this thread samples the next chunk; past it this
    # thread draws too. Memory stays a chunk or two of frames.
    pool = OrderedPool(processes.submit if processes else None, limit=step, fall_back_on=(WorkerError,))
    failed = False
    try:
        if job.depth is not None:
            depth = DepthFrames(job.depth, [c.armature for c in job.characters], job.width, job.height)
            if depth.range is None:
                start = RANGE_SHARE
                for fraction in depth.measure(scene, job.frames, job.camera):
                    yield fraction * start
            report.depth_range, report.unevaluated = depth.range, depth.reader.unevaluated
        # Occlusion reads the depth pass's raster when there is one, else rasterises its own
        # (one reader for the job: rigid meshes are read once).
        surface_frames = None
        if job.occlusion and depth is None:
            surface_frames = SurfaceFrames([c.armature for c in job.characters], job.width, job.height)
        total = len(job.frames)
        for first in range(0, total, step):
            frames = job.frames[first:first + step]
            images: dict[int, object] = {}
            surfaces = {} if job.occlusion else None
            if depth is not None:
                hook = depth.collector(images, surfaces)
            else:
                hook = surface_frames.collector(surfaces) if surface_frames else None
            seq, hidden = _sample(scene, job, frames, hook, surfaces)
            report.hidden += hidden
            run.chunks.append(seq)
            for index in range(len(frames)):
                item = run.map_frame(seq, index, images.get(index))
                if processes is None:
                    pool.submit(partial(write_map_frame, item))
                else:  # while the processes are busy (or still starting), this thread draws too
                    pool.submit(partial(write_map_frame, item), to_plain(item))
                for frame in pool.finished():
                    run.finished(frame)
                # After every frame, finished or not: the UI gets its turn (ESC, redraws) even
                # while the workers start up and this thread draws frames ahead of theirs.
                yield start + (1.0 - start) * report.frames_written / total
        for frame in pool.drain():
            yield start + (1.0 - start) * run.finished(frame) / total
    except GeneratorExit:
        report.cancelled = True
        pool.settle()  # the few frames handed over are finished and counted
        run.take_finished(pool)
        raise
    except OSError as error:  # a frame's files: that frame is as it was, the ones before it written
        failed = True
        pool.settle()
        raise JobError(run.write_failure(error, later=_count_finished(pool))) from None
    except BaseException:
        failed = True
        raise
    finally:
        pool.settle()
        if processes is not None:
            processes.close()
        if pool.fell_back is not None:
            report.workers_failed = str(pool.fell_back)
            _remove_temporaries(job)  # a worker killed mid-write leaves its temporary file
        run.write_sequence(quiet=failed or report.cancelled)


class _Run:
    """The job's bookkeeping: the chunks sampled, which frames are finished, the report."""

    def __init__(self, job: PoseMapJob, report: JobReport):
        self.job, self.report = job, report
        self.chunks: list[KeypointSequence] = []
        self._next = (0, 0)  # (chunk, index in it) of the next frame to finish

    def map_frame(self, seq: KeypointSequence, index: int, depth) -> MapFrame:
        job = self.job
        frame = int(seq.frame_numbers[index])
        return MapFrame(seq, index, job.pose_path(frame), job.depth_path(frame), job.output_dir / "keypoints",
                        job.style, job.parts, depth)

    def finished(self, frame: int) -> int:
        """Count a frame written (they come in order); returns how many are."""
        report = self.report
        chunk_number, index = self._next
        chunk = self.chunks[chunk_number]
        assert int(chunk.frame_numbers[index]) == frame, "frames must finish in order"
        self._next = (chunk_number, index + 1) if index + 1 < chunk.frame_count else (chunk_number + 1, 0)
        report.people_per_frame.append(int((chunk.data[index, :, :, 2] > 0).any(axis=1).sum()))
        report.frames_written += 1
        return report.frames_written

    def take_finished(self, pool: OrderedPool) -> None:
        """After a cancel: count the frames that did finish, up to the first that failed."""
        try:
            for frame in pool.finished():
                self.finished(frame)
        except OSError as error:
            self.report.write_error = self.write_failure(error, later=_count_finished(pool))

    def write_failure(self, error: OSError, later: int = 0) -> str:
        """The sentence for a frame whose files could not be written: which frame, the folder,
        the reason, and what is on disk."""
        folder = Path(error.filename).parent if error.filename else self.job.output_dir
        written = self.report.frames_written
        frame = self.job.frames[written] if written < len(self.job.frames) else None
        what = f"frame {frame}" if frame is not None else "the keypoint sequence"
        text = (f"cannot write {what} to {folder}: {error.strerror or error}; the {written} frame(s) before it "
                "are written whole")
        if later:
            text += f", and {later} after it that were already under way"
        return text

    def write_sequence(self, quiet: bool) -> None:
        """ComfyUI's POSE_KEYPOINT file for the frames written so far. ``quiet``: the job is
        already failing; a second failure here must not hide the first."""
        count = self.report.frames_written
        if not count:
            return
        data = np.concatenate([c.data for c in self.chunks])[:count]
        frames = np.concatenate([c.frame_numbers for c in self.chunks])[:count]
        seq = KeypointSequence(self.chunks[0].layout, data, self.chunks[0].canvas, frames)
        try:
            comfyui.write_sequence(seq, self.job.output_dir / "keypoints" / "sequence.json", parts=self.job.parts)
        except OSError as error:
            if not quiet:
                raise JobError(self.write_failure(error)) from None


def _start_workers(count: int, report: JobReport) -> WorkerProcesses | None:
    """The worker processes, or None (all on this thread) when there are none to start or they
    cannot start (the report says why)."""
    if not count:
        return None
    try:
        return WorkerProcesses("draw.map_frame:write_plain", count)
    except WorkerError as error:
        report.workers_failed = str(error)
        return None


def _count_finished(pool: OrderedPool) -> int:
    """Take every result left (all settled), counting the ones that did not fail."""
    count = 0
    while True:
        try:
            for _ in pool.drain():
                count += 1
            return count
        except Exception:  # that one failed; drain goes on with the next
            continue


def _remove_temporaries(job: PoseMapJob) -> None:
    """The job's own temporary files (atomic_file's ``.NAME.HEX.tmp``) left in its folders."""
    for folder in (job.output_dir, job.output_dir / "keypoints"):
        for path in folder.glob(".*.tmp"):
            if path.name.startswith((".pose_", ".depth_")):
                path.unlink(missing_ok=True)


def render_pose_maps(scene, job: PoseMapJob, workers: int | None = None) -> JobReport:
    """Run the whole job at once (batch command, scripts)."""
    report = JobReport()
    for _ in run_job(scene, job, report, workers):
        pass
    return report
