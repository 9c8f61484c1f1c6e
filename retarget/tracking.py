"""Person tracking: follow one person through a keypoint sequence whose people come in any order.

Detectors (OpenPose, DWPose) keep no identity: each frame lists its people in any order, a
person may be missing for some frames, split in two detections, or cross someone else. This is
tracking-by-detection in two stages, pure numpy:

1. **Tracklets.** Detections are linked frame to frame to the live tracks by a cost comparing
   same-named points: their mean distance to the track's constant-velocity prediction, in units
   of the track's size, gated, assigned cheapest first (a handful of people per frame makes
   greedy as good as optimal). A track coasts through up to ``max_coast`` missing frames. A
   detection holding mostly points its person's match lacks, where the track predicts them, is
   a split-off fragment and joins that person. Following *everyone* is what keeps the target
   from jumping to a crossing person: that person's own track claims its detection first.
2. **Stitching.** Tracklets that never overlap in time are joined when the later one starts
   near where the earlier one ended, at a similar size (re-acquisition after a long absence).

Positions are complex numbers (x + iy) inside this module: one array, distances are ``abs``,
and every reduction runs over the last (points) axis, which numpy does fastest.

Speed: most frames are unambiguous (each detection has exactly one close predecessor in the
previous frame and nothing else near), which one vectorised pass over the whole clip finds;
those frames are linked with a list lookup and only the others pay for predictions and costs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..pose.keypoints import KeypointSequence

# Gates are in units of the person's size (bounding-box diagonal of their known points).
_GATE = 0.3            # mean point distance to the prediction, frame to frame
_GATE_GROWTH = 0.05    # extra allowance per missing frame while coasting
_EASY = 0.15           # a link is unambiguous below this cost ...
_EASY_MARGIN = 0.1     # ... when every alternative costs 3x as much plus this
_FRAGMENT_GATE = 0.15  # a fragment's points must lie this close to their predictions
_FRAGMENT_SHARE = 0.7  # ... and this share of its points must be ones the match lacks
_REACQUIRE_GATE = 0.6  # stitching: distance allowed right after the coast ends
_MAX_SPEED = 1.5       # stitching: sizes per second a person may have moved while unseen
_MAX_SIZE_RATIO = 1.5  # stitching: the re-acquired person's size against the lost one's
_HISTORY = 30          # observations a track's state is built from


@dataclass
class TrackResult:
    """One person followed through a sequence.

    ``sequence`` has one person (people axis 1). ``source[f]`` is the people index of the
    detection taken in frame ``f`` (-1 where the person was missing); ``taken[f, p]`` marks every
    detection merged into the person (two in a frame where the detector split them).
    ``person_ids[f, p]`` is the identity of every detection (-1 for empty slots), ``person_id``
    the identity followed.
    """

    sequence: KeypointSequence
    source: np.ndarray
    taken: np.ndarray
    person_ids: np.ndarray
    person_id: int

    @property
    def missing_frames(self) -> np.ndarray:
        """Frame indices where the person was not found."""
        return np.flatnonzero(self.source < 0)

    @property
    def merged_frames(self) -> np.ndarray:
        """Frame indices where the person came from more than one detection."""
        return np.flatnonzero(self.taken.sum(axis=1) > 1)


def track_person(
    seq: KeypointSequence,
    choose="auto",
    *,
    at_frame: int | None = None,
    max_coast: int = 10,
    fps: float = 30.0,
) -> TrackResult:
    """Follow one person of ``seq`` and return them as a one-person sequence.

    ``choose``: ``"auto"`` (the most prominent person over the clip: summed bounding-box area x
    mean confidence over the frames they are in), an ``int`` (that people index in the first
    frame where anyone is present, or in ``at_frame``), or an ``(x, y)`` pixel (the person with
    a keypoint nearest to it in that frame). ``max_coast``: missing frames bridged by prediction
    before the person must be re-acquired; ``fps`` scales how far they may have moved meanwhile.
    Raises ValueError when nobody is present or the choice names no one.
    """
    ids = identify_people(seq, max_coast=max_coast, fps=fps)
    person = _choose(seq, ids, choose, at_frame)
    return _extract(seq, ids, person)


def identify_people(seq: KeypointSequence, *, max_coast: int = 10, fps: float = 30.0) -> np.ndarray:
    """(frames, people) int: an identity for every detection, -1 for empty people slots.

    Detections with the same identity are the same person (two in one frame when the detector
    split a person in two).
    """
    pos, present = _track_points(seq)
    if not present.any():
        return np.full(present.shape[:2], -1, np.int64)
    tracker = _Linker(pos, present, max_coast)
    tracker.run()
    person_of = _stitch(tracker, max_coast, fps)
    ids = tracker.ids
    out = np.full(ids.shape, -1, np.int64)
    known = ids >= 0
    out[known] = person_of[ids[known]]
    return out


# --- stage 1: tracklets ------------------------------------------------------------------------

def _track_points(seq: KeypointSequence):
    """Positions and presence of the points used for tracking: the body (hands and face are
    many, small and noisy, and move with the body anyway)."""
    data = seq.data
    if seq.layout.has_part("body"):
        part = seq.layout.part("body")
        data = data[:, :, part.start:part.stop]
    pos = data[..., 0].astype(np.complex128)
    pos.imag = data[..., 1]
    return pos, data[..., 2] > 0


def _sizes(points: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Bounding-box diagonal of the masked complex points over the last axis (at least 1 px)."""
    w = np.where(mask, points.real, -np.inf).max(axis=-1) - np.where(mask, points.real, np.inf).min(axis=-1)
    h = np.where(mask, points.imag, -np.inf).max(axis=-1) - np.where(mask, points.imag, np.inf).min(axis=-1)
    return np.where(mask.any(axis=-1), np.maximum(np.hypot(w, h), 1.0), 1.0)


def _costs(pred, valid, scale, dets, dmask):
    """(..., T, M) cost of each track's prediction against each detection: the mean distance of
    same-named points present in both, over the track's size (inf when they share none). Same
    names make a nearby person of another size or pose cost as much as they differ."""
    common = valid[..., :, None, :] & dmask[..., None, :, :]  # (..., T, M, P)
    n = np.add.reduce(common, axis=-1)
    dist = np.abs(pred[..., :, None, :] - dets[..., None, :, :])
    mean = np.add.reduce(dist * common, axis=-1) / (np.maximum(n, 1) * scale[..., :, None])
    return np.where(n > 0, mean, np.inf)


def _easy_links(pos, present, chunk: int = 256):
    """Frames whose detections each continue exactly one detection of the previous frame, with
    nothing else near: (F,) bool, and (F, N) the slot each continues (-1 where none).

    Zero-velocity costs with a wide margin: where they are this clear, a velocity prediction
    could not choose differently."""
    frames, people = present.shape[:2]
    easy = np.zeros(frames, bool)
    link = np.full((frames, people), -1, np.int64)
    has = present.any(axis=2)
    for lo in range(1, frames, chunk):
        hi = min(lo + chunk, frames)
        prev, cur = slice(lo - 1, hi - 1), slice(lo, hi)
        cost = _costs(pos[prev], present[prev], _sizes(pos[prev], present[prev]), pos[cur], present[cur])
        best_a = np.argmin(cost, axis=1)  # (n, N): for each detection, its cheapest predecessor
        c = np.take_along_axis(cost, best_a[:, None], axis=1)[:, 0]
        rows = np.take_along_axis(cost, best_a[:, :, None], axis=1)  # (n, N, N): that predecessor's row
        ordered_col = np.sort(cost, axis=1)
        ordered_row = np.sort(rows, axis=2)
        second_col = ordered_col[:, 1] if people > 1 else np.full_like(c, np.inf)
        second_row = ordered_row[:, :, 1] if people > 1 else np.full_like(c, np.inf)
        mutual = ordered_row[:, :, 0] == c
        clear = 3 * c + _EASY_MARGIN
        ok = (c <= _EASY) & mutual & (second_col >= clear) & (second_row >= clear)
        det_cur, det_prev = has[cur], has[prev]
        # Every detection continues one, and as many as before (so each predecessor is taken once).
        good = np.all(ok | ~det_cur, axis=1) & (det_cur.sum(axis=1) == det_prev.sum(axis=1))
        easy[cur] = good
        link[cur] = np.where(det_cur, best_a, -1)
    return easy, link


@dataclass
class _Tracklet:
    id: int
    frames: list = field(default_factory=list)  # frames it was seen in
    state: tuple | None = None  # cached _Linker.state(), valid while len(frames) is unchanged
    state_len: int = -1


class _Linker:
    """Stage 1. ``ids[f, p]`` becomes the tracklet id of every detection."""

    def __init__(self, pos, present, max_coast):
        self.pos, self.present, self.max_coast = pos, present, max_coast
        self.ids = np.full(present.shape[:2], -1, np.int64)
        self.tracks: list[_Tracklet] = []

    def run(self) -> None:
        easy, link = _easy_links(self.pos, self.present)
        det_lists = [[n for n, h in enumerate(row) if h] for row in self.present.any(axis=2).tolist()]
        link = link.tolist()
        live: list[_Tracklet] = []
        owners = None  # slot -> tracklet in the previous frame, when each detection had one owner
        for f, dets in enumerate(det_lists):
            if live and f - min(t.frames[-1] for t in live) - 1 > self.max_coast:
                live = [t for t in live if f - t.frames[-1] - 1 <= self.max_coast]
            if easy[f] and owners is not None:
                owners = {b: owners[link[f][b]] for b in dets}
                for b, t in owners.items():
                    self.ids[f, b] = t.id
                    t.frames.append(f)
                continue
            owners = self._frame(f, dets, live)

    def _frame(self, f, dets, live):
        """The full link of one frame; returns slot -> tracklet when no detection was merged."""
        if not dets:
            return {}
        X, M = self.pos[f, dets], self.present[f, dets]
        unmatched = list(range(len(dets)))
        matched: dict[int, _Tracklet] = {}
        merged = False
        if live:
            states = [self.state(t) for t in live]
            pred = np.stack([ref + vel * (f - seen) for ref, seen, vel, _, _ in states])
            valid = np.stack([s[3] for s in states])
            scale = np.array([s[4] for s in states])
            gaps = [f - t.frames[-1] for t in live]
            cost = _costs(pred, valid, scale, X, M).tolist()
            ti, mi = _assign(cost, [_GATE + _GATE_GROWTH * (g - 1) for g in gaps])
            unmatched = [m for m in unmatched if m not in mi]
            for m in list(unmatched):
                for t, mj in zip(ti, mi):
                    # A split detection: the rest of a matched person, where predicted.
                    if _is_fragment(X[m], M[m], M[mj], pred[t], valid[t], scale[t]):
                        self.ids[f, dets[m]] = live[t].id
                        unmatched.remove(m)
                        merged = True
                        break
            for t, m in zip(ti, mi):
                matched[dets[m]] = live[t]
        for m in unmatched:
            track = _Tracklet(len(self.tracks))
            self.tracks.append(track)
            live.append(track)
            matched[dets[m]] = track
        for b, t in matched.items():
            self.ids[f, b] = t.id
            t.frames.append(f)
        return None if merged else matched

    def state(self, t: _Tracklet):
        """(ref, seen, vel, valid, scale) of a tracklet from its last observations: each point's
        last position and the frame it was seen in, velocity (complex px/frame) from the last two
        observations, which points it has shown, its size."""
        if t.state_len == len(t.frames):
            return t.state
        frames = t.frames[-_HISTORY:]
        w = (self.ids[frames] == t.id)[..., None] & self.present[frames]  # (k, N, P)
        mask = w.any(axis=1)
        n = np.maximum(w.sum(axis=1), 1)
        obs = (self.pos[frames] * w).sum(axis=1) / n  # fragments' points averaged
        last = len(frames) - 1 - np.argmax(mask[::-1], axis=0)  # last observation of each point
        idx = np.arange(mask.shape[1])
        ref = obs[last, idx]
        seen = np.asarray(frames)[last].astype(np.float64)
        valid = mask.any(axis=0)
        vel = 0j
        if len(frames) > 1:
            common = mask[-1] & mask[-2]
            if common.any():
                vel = (obs[-1, common] - obs[-2, common]).mean(axis=0) / (frames[-1] - frames[-2])
        scale = float(_sizes(ref, valid))
        t.state, t.state_len = (ref, seen, vel, valid, scale), len(t.frames)
        return t.state


def _assign(cost: list, gate: list):
    """Greedy assignment, cheapest first, of tracks (rows) to detections within each row's
    gate. Returns matched rows and their columns."""
    pairs = sorted((c, t, m) for t, row in enumerate(cost) for m, c in enumerate(row) if c <= gate[t])
    match: dict[int, int] = {}
    for _, t, m in pairs:
        if t not in match and m not in match.values():
            match[t] = m
    return list(match), list(match.values())


def _is_fragment(x, m, m_match, pred, valid, scale) -> bool:
    extra = m & ~m_match
    if extra.sum() < _FRAGMENT_SHARE * m.sum():
        return False
    near = extra & valid
    if not near.any():
        return False
    dist = np.abs(x[near] - pred[near]).mean()
    return dist <= _FRAGMENT_GATE * scale


# --- stage 2: stitching ------------------------------------------------------------------------

def _stitch(linker: _Linker, max_coast: int, fps: float) -> np.ndarray:
    """Join tracklets into people: a tracklet continues the best-matching person whose latest
    tracklet ended before it started. Returns the person id of each tracklet id."""
    person_of = np.arange(len(linker.tracks))
    latest: dict[int, _Tracklet] = {}  # person id -> their latest tracklet
    for t in linker.tracks:  # in order of their start
        first = t.frames[0]
        x = linker.pos[first][linker.ids[first] == t.id]
        m = linker.present[first][linker.ids[first] == t.id]
        x = (x * m).sum(axis=0) / np.maximum(m.sum(axis=0), 1)
        m = m.any(axis=0)
        best, best_cost = t.id, np.inf
        for person, last in latest.items():
            gap = first - last.frames[-1]
            if gap <= 0:
                continue  # overlaps in time: someone else
            ref, seen, vel, valid, scale = linker.state(last)
            until = min(first, last.frames[-1] + max_coast)  # extrapolate no further than a coast
            pred = ref + vel * (until - seen)
            cost = _costs(pred[None], valid[None], np.array([scale]), x[None], m[None])[0, 0]
            shared = m & valid
            size = _sizes(x, shared) / _sizes(pred, shared)
            gate = _REACQUIRE_GATE + _MAX_SPEED * gap / fps
            if cost <= gate and 1 / _MAX_SIZE_RATIO <= size <= _MAX_SIZE_RATIO and cost < best_cost:
                best, best_cost = person, cost
        person_of[t.id] = best
        latest[best] = t
    return person_of


# --- choosing and extracting one person --------------------------------------------------------

_UNKNOWN_CHOICE = "unknown person choice {!r} (use 'auto', an index or an (x, y) pixel)"


def _choose(seq: KeypointSequence, ids: np.ndarray, choose, at_frame) -> int:
    anyone = np.flatnonzero((ids >= 0).any(axis=1))
    if anyone.size == 0:
        raise ValueError("no person found in the keypoint sequence")
    if isinstance(choose, str):
        if choose != "auto":
            raise ValueError(_UNKNOWN_CHOICE.format(choose))
        return _most_prominent(seq, ids)
    frame = int(anyone[0]) if at_frame is None else int(at_frame)
    if not 0 <= frame < seq.frame_count:
        raise ValueError(f"frame {frame} is outside the sequence (0-{seq.frame_count - 1})")
    if isinstance(choose, (int, np.integer)) and not isinstance(choose, bool):
        index = int(choose)
        if not 0 <= index < ids.shape[1] or ids[frame, index] < 0:
            people = int((ids[frame] >= 0).sum())
            raise ValueError(f"no person {index} in frame {frame} ({people} people there)")
        return int(ids[frame, index])
    try:
        x, y = (float(v) for v in choose)
    except (TypeError, ValueError):
        raise ValueError(_UNKNOWN_CHOICE.format(choose)) from None
    data = seq.data[frame]
    dist = np.where(data[..., 2] > 0, np.hypot(data[..., 0] - x, data[..., 1] - y), np.inf).min(axis=1)
    dist[ids[frame] < 0] = np.inf
    if not np.isfinite(dist).any():
        raise ValueError(f"nobody in frame {frame} to pick near ({x:g}, {y:g})")
    return int(ids[frame, int(np.argmin(dist))])


def _most_prominent(seq: KeypointSequence, ids: np.ndarray) -> int:
    """The identity with the largest sum over its detections of box area x mean confidence."""
    known = ids >= 0
    data = seq.data[known]  # (detections, P, 3): empty slots left out
    present = data[..., 2] > 0
    m = present[..., None]
    span = np.where(m, data[..., :2], -np.inf).max(axis=1) - np.where(m, data[..., :2], np.inf).min(axis=1)
    conf = data[..., 2].sum(axis=1) / present.sum(axis=1)
    score = span[:, 0].astype(np.float64) * span[:, 1] * conf
    return int(np.argmax(np.bincount(ids[known], weights=score)))


def _extract(seq: KeypointSequence, ids: np.ndarray, person: int) -> TrackResult:
    """The person's detections as a one-person sequence: in each frame the fullest detection,
    its absent points filled from the person's other detections there (a split person)."""
    taken = ids == person
    counts = np.where(taken, seq.present.sum(axis=2), -1)
    found = taken.any(axis=1)
    source = np.where(found, np.argmax(counts, axis=1), -1)
    frames = np.flatnonzero(found)
    out = np.zeros((seq.frame_count, 1) + seq.data.shape[2:], np.float32)
    out[frames, 0] = seq.data[frames, source[frames]]
    for f in np.flatnonzero(taken.sum(axis=1) > 1):
        merged = out[f, 0]
        for other in np.flatnonzero(taken[f]):
            fill = (merged[:, 2] <= 0) & (seq.data[f, other, :, 2] > 0)
            merged[fill] = seq.data[f, other, fill]
    single = KeypointSequence(seq.layout, out, seq.canvas, seq.frame_numbers.copy())
    return TrackResult(single, source, taken, ids, person)
