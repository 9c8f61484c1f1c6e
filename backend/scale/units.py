"""How a job is cut into work units for several replicas (pure: no torch, no Ray).

Per-frame jobs (pipeline "frames") split into runs of whole batches counted from the job's first
frame. A frame depends on its seed, control, number and parameters, and, to the last bit of
floating point, on the batch it is denoised with (backend/pipelines/frames.py); cutting only on
batch boundaries gives every frame the same batch companions it has in a single-process job, so
the frames are identical. Temporal jobs are one unit: AnimateDiff denoises all windows together
at every step, and a Wan VACE clip continues from the last frames of the clip before it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..pipelines import is_temporal


@dataclass(frozen=True)
class Unit:
    """Frames ``start:stop`` of a job's inputs (indices, not frame numbers)."""

    index: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def plan_units(pipeline: str, count: int, batch: int, replicas: int, per_replica: int = 2) -> list[Unit]:
    """Units for ``count`` frames: ``per_replica`` units for each replica where there are batches
    enough (so a fast replica takes more of them and none waits long for the slowest), each a
    whole number of batches, their sizes at most one batch apart."""
    if count < 1 or batch < 1 or replicas < 1 or per_replica < 1:
        raise ValueError(f"cannot plan {count} frames in batches of {batch} over {replicas} replicas")
    if is_temporal(pipeline):
        return [Unit(0, 0, count)]
    batches = math.ceil(count / batch)
    units = min(batches, replicas * per_replica)
    per_unit, extra = divmod(batches, units)  # the first ``extra`` units take one batch more
    out, start = [], 0
    for index in range(units):
        stop = min(count, start + (per_unit + (index < extra)) * batch)
        out.append(Unit(index, start, stop))
        start = stop
    return out
