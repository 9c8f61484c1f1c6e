"""How a temporal pipeline's run is cut into jobs (pure): each unbroken run of frames to make is
one video, or one job per ``segment`` frames, and a job continues from the frames made just
before it (its lead frames)."""
from __future__ import annotations

DEFAULT_LEAD = 4  # lead frames a segment continues from


def video_units(order: list[int], todo: list[int], segment: int | None) -> list[list[int]]:
    """The jobs of a temporal run: each unbroken run of ``todo`` frames in ``order`` (frames that
    follow each other with no made frame between them) is one video, cut into pieces of
    ``segment`` frames when given."""
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
        size = segment or len(run)
        units += [run[i : i + size] for i in range(0, len(run), size)]
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
