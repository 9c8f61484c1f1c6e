"""How a temporal pipeline's run is cut into jobs (pure): each unbroken run of frames to make is
one video, or one job per segment, and a job continues from the frames made just before it (its
lead frames).

The pipelines count a segment differently. AnimateDiff: ``segment`` new frames per job (None:
each unbroken run as one video), and up to 4 lead frames, fewer than its context window. Wan
VACE: a segment is the model's clip length, 81 frames as trained, and it COUNTS the lead frames,
5 of them (the Wan VAE packs the first frame alone and then 4 frames per latent, so 1 + 4 lead
frames fill two latent frames exactly): the first job of a run makes 81 new frames, each later
one 76 new after 5 lead. A Wan shot is always cut, however long: it cannot be one job.
"""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_LEAD = 4  # AnimateDiff: lead frames a segment continues from
WAN_VACE = "wan-vace"
WAN_SEGMENT = 81  # Wan 2.1's clip length in training: frames per job, lead frames included
WAN_LEAD = 5  # 1 + 4: two whole latent frames of the Wan VAE
WAN_MIN_NEW = 4  # a Wan segment makes at least one latent frame's worth of new frames


class CuttingError(ValueError):
    """A segment length the pipeline cannot be cut into (the message says what would work)."""


@dataclass(frozen=True)
class Cutting:
    """How one pipeline's run is cut: ``segment`` frames per job (None: each unbroken run whole),
    up to ``lead`` lead frames per job, and whether the segment counts them (Wan VACE) or holds
    only new frames (AnimateDiff)."""

    segment: int | None
    lead: int
    lead_in_segment: bool


def segment_length(pipeline: str, segment: int | None) -> int | None:
    """The segment a run of ``pipeline`` uses when asked for ``segment`` (None or 0: the
    pipeline's default; AnimateDiff's default is no segments)."""
    if pipeline == WAN_VACE:
        return segment or WAN_SEGMENT
    return segment or None


def cutting(pipeline: str, segment: int | None = None, lead: int | None = None,
            context_length: int | None = None) -> Cutting:
    """The cutting of a ``pipeline`` run. ``lead`` None: the pipeline's own. CuttingError when a
    Wan segment leaves too few new frames after its lead frames."""
    if pipeline == WAN_VACE:
        lead = WAN_LEAD if lead is None else max(0, int(lead))
        segment = segment_length(pipeline, segment)
        if segment < lead + WAN_MIN_NEW:
            raise CuttingError(
                f"a Wan VACE segment of {segment} frames is too short: it counts its {lead} lead frames "
                f"(the previous segment's last ones) and needs at least {WAN_MIN_NEW} new frames, so at "
                f"least {lead + WAN_MIN_NEW} frames (0 or none: the default {WAN_SEGMENT})")
        return Cutting(segment, lead, True)
    lead = DEFAULT_LEAD if lead is None else max(0, int(lead))
    if context_length:
        # AnimateDiff's motion module sees one context window: the lead frames and at least one
        # new frame must fit in it.
        lead = min(lead, int(context_length) - 1)
    return Cutting(segment_length(pipeline, segment), max(0, lead), False)


def video_units(order: list[int], todo: list[int], segment: int | None, lead: int = 0,
                usable=()) -> list[list[int]]:
    """The jobs of a temporal run: each unbroken run of ``todo`` frames in ``order`` (frames that
    follow each other with no made frame between them) is one video, cut into pieces of
    ``segment`` frames when given.

    ``lead`` > 0: the segment counts the lead frames each job continues from (Wan VACE), up to
    ``lead`` of them: the frames right before it that are made already (``usable``) or by the
    jobs before it in this run. So a job after others makes ``segment - lead`` new frames, and
    a rerun after a crash cuts the rest of the shot as the first run would have.
    """
    if segment is not None and lead and segment <= lead:
        raise CuttingError(f"a segment of {segment} frames leaves no new frames after {lead} lead frames")
    wanted = set(todo)
    runs: list[list[int]] = []
    previous_wanted = False
    for frame in order:
        if frame in wanted:
            if previous_wanted:
                runs[-1].append(frame)
            else:
                runs.append([frame])
        previous_wanted = frame in wanted
    units = []
    for run in runs:
        if not segment:
            units.append(run)
            continue
        before = len(lead_frames(order, run[0], set(usable), lead)) if lead else 0
        start = 0
        while start < len(run):
            size = segment - min(lead, before)
            units.append(run[start : start + size])
            before += size
            start += size
    return units


def lead_frames(order: list[int], first: int, usable: set[int], most: int) -> list[int]:
    """Up to ``most`` frames right before ``first`` in ``order``, all of them ``usable`` (made
    with these settings), in order: what the video starting at ``first`` continues from."""
    lead = []
    for frame in reversed(order[: order.index(first)]):
        if len(lead) == most or frame not in usable:
            break
        lead.append(frame)
    return lead[::-1]
