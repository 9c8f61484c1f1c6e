"""Left/right swap repair: undo a detector's flips of left and right limbs.

Detectors label left and right from appearance; in side views and when limbs cross they flip
the labels for a frame or a few. A flip shows in time: the limb labelled left jumps to where
the right one just was, and back when the flip ends. For each limb group (arms, legs, then the
wrist with its hand and the ankle with its foot, then the eyes and ears), found by point name
(``l_``/``r_`` pairs of any layout), every frame is "as detected" or "swapped", and the
cheapest labelling is found by dynamic programming (Viterbi) over the frames:

* moving from one frame to the next costs how far the points move, in person sizes, under the
  two frames' labellings (compared with the last frame where the group was seen);
* a swapped frame costs a little, starting a flip a little more; a flip lasts at most
  ``max_frames`` frames and must start and end with a jump (a step where exchanging the
  labels is cheaper than keeping them), so only short-lived jumps that come back are undone.

A genuine crossing (left and right limbs passing each other gradually) is never undone: the
labels it produces never jump, so swapping any stretch of it would cost more, not less.
"""
from __future__ import annotations

import math

import numpy as np

from .filters import CleanReport, _report, person_sizes
from ..pose.keypoints import KeypointSequence
from ..pose.layouts import Layout

_ENTRY = 0.05  # cost (in person sizes) of starting a flip
_STEP = 0.01   # cost of each flipped frame

# Limb groups, in the order they are repaired: (name, stems deciding a flip, stems moved).
# A stem is a point name without its l_/r_ prefix; "hand_" and "foot" stems match by start or
# substring. The hand goes with the wrist and the foot with the ankle.
_ARM = ("shoulder", "elbow", "wrist")
_LEG = ("hip", "knee", "ankle")
_FOOT = ("ankle", "toe", "heel", "foot")
_HEAD = ("eye", "ear", "pupil")


def _kind(stem: str) -> set[str]:
    """Which groups a paired point belongs to (to decide / to move)."""
    if stem.startswith("hand_"):
        return {"hand"}
    kinds = set()
    if stem in _ARM:
        kinds.add("arm")
    if stem == "wrist":
        kinds.add("wrist")
    if stem in _LEG:
        kinds.add("leg")
    if any(word in stem for word in _FOOT):
        kinds.add("foot")
    if any(word in stem for word in _HEAD):
        kinds.add("head")
    return kinds


def side_groups(layout: Layout) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The layout's limb groups: (name, decide_left, decide_right, move_left, move_right) with
    point indices; pairs are found by name (``l_x``/``r_x``), so this works for any layout."""
    pairs: dict[str, tuple[int, int]] = {}
    for i, name in enumerate(layout.points):
        if name.startswith("l_"):
            j = layout.find("r_" + name[2:])
            if j is not None:
                pairs[name[2:]] = (i, j)
    kinds = {stem: _kind(stem) for stem in pairs}

    def stems(*wanted):
        return [s for s in pairs if kinds[s] & set(wanted)]

    spec = (
        # The arm decides on its joints (hand points would outvote them) but carries the hand.
        ("arm", stems("arm"), stems("arm", "hand")),
        ("leg", stems("leg"), stems("leg", "foot")),
        # Then the ends alone: a wrist (with its hand) or an ankle (with its foot) flips by itself.
        ("hand", stems("wrist", "hand"), stems("wrist", "hand")),
        ("foot", stems("foot"), stems("foot")),
        ("head", stems("head"), stems("head")),
    )
    groups = []
    for name, decide, move in spec:
        if decide:
            groups.append((
                name,
                np.array([pairs[s][0] for s in decide]), np.array([pairs[s][1] for s in decide]),
                np.array([pairs[s][0] for s in move]), np.array([pairs[s][1] for s in move]),
            ))
    return groups


def repair_swaps(
    seq: KeypointSequence, max_frames: int = 6, report: CleanReport | None = None
) -> KeypointSequence:
    """Undo left/right flips lasting at most ``max_frames`` frames, per limb group and person.

    Each flip undone adds 1 to ``report.swaps_fixed`` (and its length to ``swapped_frames``).
    """
    data = seq.data.copy()
    rep = _report(report)
    sizes = person_sizes(seq)
    for name, dl, dr, ml, mr in side_groups(seq.layout):
        for person in range(data.shape[1]):
            flipped = _flipped_frames(data[:, person], dl, dr, sizes[person], max_frames)
            if flipped.any():
                rows = data[flipped, person]
                rows[:, np.concatenate([ml, mr])] = rows[:, np.concatenate([mr, ml])]
                data[flipped, person] = rows
                starts = flipped.copy()
                starts[1:] &= ~flipped[:-1]
                rep.swaps_fixed += int(starts.sum())
                rep.swapped_frames += int(flipped.sum())
    return KeypointSequence(seq.layout, data, seq.canvas, seq.frame_numbers.copy())


def _flipped_frames(points: np.ndarray, left, right, size: float, max_frames: int) -> np.ndarray:
    """(frames,) bool: the frames of one person whose group ``left``/``right`` is flipped."""
    frames = points.shape[0]
    zl = points[:, left, 0] + 1j * points[:, left, 1]
    zr = points[:, right, 0] + 1j * points[:, right, 1]
    pl, pr = points[:, left, 2] > 0, points[:, right, 2] > 0
    seen = np.flatnonzero((pl | pr).any(axis=1))  # frames where the group shows
    flipped = np.zeros(frames, bool)
    if seen.size < 2 or max_frames < 1:
        return flipped
    zl, zr, pl, pr = zl[seen], zr[seen], pl[seen], pr[seen]
    same, cross = _step_costs(zl, zr, pl, pr, size)
    # Only stretches near a frame where the swapped labelling is locally cheaper can hold a
    # flip (a flip must gain at its start or its end); run the search there alone.
    states = np.zeros(seen.size, bool)
    for lo, hi in _windows(np.flatnonzero(cross < same) + 1, max_frames + 1, seen.size):
        states[lo:hi] = _viterbi(same[lo:hi - 1].tolist(), cross[lo:hi - 1].tolist(), max_frames,
                                 lo == 0, hi == seen.size)
    # A flip covers the frames from its first to its last flipped sighting.
    starts = seen[states & ~np.r_[False, states[:-1]]]
    ends = seen[states & ~np.r_[states[1:], False]]
    for a, b in zip(starts, ends):
        flipped[a:b + 1] = True
    return flipped


def _step_costs(zl, zr, pl, pr, size):
    """Per step between consecutive sightings: mean movement (in person sizes) keeping the
    labels (``same``) and exchanging them (``cross``); where only one is measurable it stands
    for both, where neither, both are 0."""
    def mean_dist(a, pa, b, pb, c, pc, d, pd):
        ok1, ok2 = pa & pb, pc & pd
        total = np.where(ok1, np.abs(a - b), 0).sum(axis=1) + np.where(ok2, np.abs(c - d), 0).sum(axis=1)
        n = ok1.sum(axis=1) + ok2.sum(axis=1)
        return total / np.maximum(n, 1) / size, n > 0

    same, has_s = mean_dist(zl[1:], pl[1:], zl[:-1], pl[:-1], zr[1:], pr[1:], zr[:-1], pr[:-1])
    cross, has_c = mean_dist(zl[1:], pl[1:], zr[:-1], pr[:-1], zr[1:], pr[1:], zl[:-1], pl[:-1])
    same = np.where(has_s, same, np.where(has_c, cross, 0.0))
    cross = np.where(has_c, cross, same)
    return same, cross


def _windows(centres: np.ndarray, reach: int, n: int):
    """Merged [lo, hi) windows of ``reach`` sightings around each centre, clipped to [0, n)."""
    out: list[list[int]] = []
    for c in centres.tolist():
        lo, hi = max(c - reach, 0), min(c + reach + 1, n)
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return out


def _viterbi(same: list, cross: list, max_frames: int, free_start: bool, free_end: bool) -> np.ndarray:
    """The cheapest labelling of a window of ``len(same) + 1`` sightings.

    State 0 is "as detected", state k (1..max_frames) "swapped, k-th sighting of this flip".
    A flip may only start or end at a step where exchanging the labels is locally cheaper (a
    jump); otherwise it would merely move a jump to where it costs less. The window's ends are
    as detected unless they are the clip's ends (``free_*``)."""
    inf = math.inf
    k_max = max_frames
    cost = [0.0] + [_ENTRY + _STEP if free_start else inf] + [inf] * (k_max - 1)
    back0: list[int] = []  # for state 0 at each step: the state it came from
    for s, c in zip(same, cross):
        jump = c < s
        best_k = min(range(1, k_max + 1), key=cost.__getitem__)
        stay = cost[0] + s
        leave = cost[best_k] + c if jump else inf
        back0.append(0 if stay <= leave else best_k)
        start = cost[0] + c + _ENTRY + _STEP if jump else inf
        cost = [min(stay, leave), start] + [cost[k] + s + _STEP for k in range(1, k_max)]
    state = min(range(k_max + 1), key=cost.__getitem__) if free_end else 0
    states = np.zeros(len(same) + 1, bool)
    for t in range(len(same), -1, -1):
        states[t] = state > 0
        if t == 0:
            break
        state = back0[t - 1] if state == 0 else state - 1
    return states
