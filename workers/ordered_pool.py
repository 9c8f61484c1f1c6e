"""Work handed to workers with results taken back in submission order, the caller working too.

The pose-map job samples the rig on Blender's main thread (bpy allows nothing else) and hands
each frame's drawing, encoding and writing to worker processes (workers/processes.py), so that
the next chunk is sampled while they draw.

* Bounded: at most ``limit`` tasks are out at a time. Past that the calling thread does the
  next one itself (while the workers start up, and whenever it would otherwise wait), so it
  never idles; at most 2 x ``limit`` results wait to be taken, so memory stays flat.
* In order: ``finished`` and ``drain`` give results oldest first, so progress counts a prefix of
  the tasks.
* Settle: ``settle`` waits for every task handed over (at most ``limit``), so a cancelled job
  has finished exactly its first N frames; none is left half-done.
* A task's exception is raised by the call that takes its result, in order.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, wait
from typing import Callable, Iterator


def default_workers() -> int:
    """One worker per core this process may run on, at most 8 (beyond that the main thread's
    sampling is the limit)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


class OrderedPool:
    """Work handed to workers, or done on the calling thread; results taken in submission order.

    ``start(*args)`` hands work to a worker and returns its Future (WorkerProcesses.submit, an
    executor's submit); None: no workers, all work is done here. A worker task failing with
    one of ``fall_back_on`` (the workers broke: a process died or could not start) is done
    again here, and from then on everything is: ``fell_back`` keeps the error.
    """

    def __init__(self, start: Callable[..., Future] | None, limit: int = 1, fall_back_on: tuple = ()):
        self.start = start
        self.limit = max(1, limit)
        self.fall_back_on = fall_back_on
        self.fell_back: BaseException | None = None
        self._pending: deque[tuple[Future, Callable[[], object] | None]] = deque()

    def submit(self, here: Callable[[], object], *args) -> None:
        """Hand ``args`` to a worker, or, when there are none or ``limit`` tasks are already out
        (running or queued), do the same work now on this thread: ``here()``. Results wait to be
        taken in order; past 2 x ``limit`` of them (a slow oldest task) this waits for the oldest."""
        if len(self._pending) >= 2 * self.limit:
            wait([self._pending[0][0]])
        if self.start is not None and sum(not f.done() for f, _ in self._pending) < self.limit:
            self._pending.append((self.start(*args), here))
            return
        self._pending.append((_run_now(here), None))  # done here: nothing to fall back to

    def finished(self) -> Iterator:
        """Results of the oldest tasks that are already done, without waiting. Each is taken as
        it is yielded, so a task's exception is raised with nothing before it lost."""
        while self._pending and self._pending[0][0].done():
            yield self._take()

    def drain(self) -> Iterator:
        """Every remaining result, oldest first, waiting for each."""
        while self._pending:
            yield self._take()

    def settle(self) -> None:
        """Wait for every task handed over to end; their results (or errors) stay to be taken."""
        wait([future for future, _ in self._pending])

    def _take(self):
        future, here = self._pending.popleft()
        try:
            return future.result()
        except self.fall_back_on as error:
            if here is None:
                raise
            self.start, self.fell_back = None, error
            return here()


def _run_now(here: Callable[[], object]) -> Future:
    done: Future = Future()
    try:
        done.set_result(here())
    except Exception as error:  # kept for its turn, as a worker's would be
        done.set_exception(error)
    return done
