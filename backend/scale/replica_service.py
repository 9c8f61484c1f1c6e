"""A generator replica as a service: the models loaded once, units streamed back as events.

``GeneratorService`` is what each Ray Serve generator replica runs (backend/scale/ray_app.py), kept
free of Ray so it is tested by itself. ``run_unit`` is an async generator: the unit runs on a
worker thread (torch blocks) and its events come back through the replica's event loop, so the
caller sees each denoising step and each frame as it happens, and cancelling the stream (Ray Serve
cancels the async generator) stops the unit at its next step.

Events: ``("progress", done, total)`` at most every PROGRESS_INTERVAL_S, ``("frame", index, frame)`` for each finished
frame (index in the unit's inputs, uint8 RGB array), ``("segment",)`` after each finished clip of a
pipeline that makes clips (wan-vace).
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from ..model_info import ModelInfo
from .local_replica import LocalReplica, UnitWork

# Test-only: a folder where each replica keeps <pid>.busy while it runs a unit (so a test can kill a
# replica that is mid-unit by its process id) and adds "<pid> <first frame>" to units.log; the
# ingress writes its own to ingress.pid (note_ingress_pid).
UNIT_PIDS_ENV = "POSEBRIDGE_BACKEND_TEST_UNIT_PIDS"

_END = object()
# Each streamed event costs the replica, Ray and the ingress a few milliseconds: progress goes out
# at most this often (and at a unit's last step), not at every denoising step.
PROGRESS_INTERVAL_S = 0.25


class GeneratorService:
    def __init__(self, load, threads: int | None = None):
        """``load()`` returns the LoadedModels (backend.model_loading.ModelLoad); ``threads``: torch's
        CPU threads in this process."""
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.models = load()
        self.replica = LocalReplica(self.models)
        # One unit at a time on these models (their pipelines and schedulers are shared): Serve
        # frees a cancelled request's slot at once, before its unit has reached a step and stopped.
        self._running = threading.Lock()

    def describe(self) -> ModelInfo:
        return ModelInfo.of(self.models)

    async def run_unit(self, work: UnitWork):
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()

        def send(event) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        last_progress = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if done >= total or now - last_progress[0] >= PROGRESS_INTERVAL_S:
                last_progress[0] = now
                send(("progress", done, total))

        def produce() -> None:
            try:
                with self._running:
                    if stop.is_set():
                        return  # cancelled while the unit before it stopped
                    frames = self.replica.run_unit(
                        work, should_stop=stop.is_set, on_progress=progress, on_segment_done=lambda: send(("segment",)))
                    for index, frame in frames:
                        send(("frame", index, frame))
                send(_END)
            except BaseException as exc:  # handed to the caller, raised there
                send(exc)

        busy = _mark_busy(work)
        worker = threading.Thread(target=produce, name="posebridge-unit", daemon=True)
        worker.start()
        try:
            while (event := await events.get()) is not _END:
                if isinstance(event, BaseException):
                    raise event
                yield event
        finally:
            stop.set()  # cancelled or abandoned: the unit stops at its next step
            await asyncio.to_thread(worker.join)
            if busy is not None:
                busy.unlink(missing_ok=True)


def note_ingress_pid() -> None:
    folder = os.environ.get(UNIT_PIDS_ENV)
    if folder:
        (Path(folder) / "ingress.pid").write_text(str(os.getpid()))


def _mark_busy(work: UnitWork) -> Path | None:
    folder = os.environ.get(UNIT_PIDS_ENV)
    if not folder:
        return None
    with open(Path(folder) / "units.log", "a", encoding="utf-8") as log:
        log.write(f"{os.getpid()} {work.inputs[0].frame}\n")
    path = Path(folder) / f"{os.getpid()}.busy"
    path.write_text("")
    return path
