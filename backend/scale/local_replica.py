"""A generator replica: the loaded models, and one work unit at a time run through them.

The scaled queue (``scaled_queue``) hands a replica a ``UnitWork``: the job's parameters, the unit's
frames as given (PNG bytes, lead frames included) and the identity reference. The replica decodes
them exactly as the single-process queue does (``jobs.decode_controls``) and returns the unit's
frames. Here the replica lives in this process; a Ray Serve deployment wraps the same class so
each replica process loads the models once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..jobs import FrameInput, decode_controls, decode_reference_image
from ..pipelines import GenerateParams, generate


class ReplicaLost(RuntimeError):
    """The replica running a unit went away (its process or node died): the unit may be retried
    on another replica. Errors of the unit itself (bad input, out of memory) are not this."""


@dataclass
class UnitWork:
    params: GenerateParams
    inputs: list[FrameInput]
    reference: Any = None  # PNG bytes, a PIL image or None


class LocalReplica:
    """Runs units on ``models`` (backend.models.load_models' result) in this process."""

    def __init__(self, models, generate_fn: Callable = generate):
        self.models = models
        self.generate_fn = generate_fn

    def run_unit(self, work: UnitWork, should_stop: Callable[[], bool] | None = None,
                 on_progress: Callable[[int, int], Any] | None = None,
                 on_segment_done: Callable[[], Any] | None = None):
        """Yield (index in ``work.inputs``, uint8 RGB frame) as frames become final;
        ``on_segment_done()`` after each finished clip of a pipeline that makes clips (wan-vace)."""
        poses, depths, known = decode_controls(work.params.pipeline, work.inputs)
        yield from self.generate_fn(
            self.models,
            poses,
            depths,
            work.params,
            reference=decode_reference_image(work.reference),
            frame_numbers=[f.frame for f in work.inputs],
            known=known,
            on_progress=on_progress,
            should_stop=should_stop,
            on_segment_done=on_segment_done,
        )
