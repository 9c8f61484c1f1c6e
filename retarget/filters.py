"""Cleaning steps for detected keypoint sequences: confidence gating, gap filling, smoothing.

Each step takes a KeypointSequence and returns a new one (the input is never changed), and adds
what it did to an optional ``CleanReport``, so the steps compose in any order; ``cleaning.clean``
runs them (with the left/right swap repair of ``swaps.py``) in the order that works best.
All of them work on every person and point of the sequence at once; absent points (confidence 0)
stay absent unless a step fills them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..pose.keypoints import KeypointSequence


@dataclass
class CleanReport:
    """What the cleaning did, in counts a user can read."""

    points_gated: int = 0        # present points dropped for low confidence
    gaps_filled: int = 0         # runs of missing frames of one point that were filled
    points_filled: int = 0       # point-frames those gaps held
    swaps_fixed: int = 0         # left/right flips undone (a flip of a limb over some frames = 1)
    swapped_frames: int = 0      # limb-frames those flips covered
    frames_with_nobody: int = 0  # frames without a single present point (before filling)


def _report(report: CleanReport | None) -> CleanReport:
    return report if report is not None else CleanReport()


# --- confidence gating -------------------------------------------------------------------------

def gate_confidence(
    seq: KeypointSequence, threshold: float = 0.1, report: CleanReport | None = None
) -> KeypointSequence:
    """Points with confidence below ``threshold`` become absent (x, y, confidence = 0)."""
    data = seq.data.copy()
    low = (data[..., 2] > 0) & (data[..., 2] < threshold)
    data[low] = 0.0
    _report(report).points_gated += int(low.sum())
    return KeypointSequence(seq.layout, data, seq.canvas, seq.frame_numbers.copy())


# --- gap filling -------------------------------------------------------------------------------

def fill_gaps(
    seq: KeypointSequence, max_gap: int = 10, hold_ends: bool = True, report: CleanReport | None = None
) -> KeypointSequence:
    """Fill runs of at most ``max_gap`` missing frames of each point of each person.

    Inside the clip a gap is interpolated linearly (x, y and confidence) between the frames that
    bound it; a gap touching the first or last frame holds the nearest known value when
    ``hold_ends``. Longer gaps, and points never seen, stay absent.
    """
    data = seq.data.copy()
    frames = data.shape[0]
    present = data[..., 2] > 0
    idx = np.arange(frames)[:, None, None]
    # For every frame, the nearest present frame before/after it (-1 / frames when none).
    prev = np.maximum.accumulate(np.where(present, idx, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(present, idx, frames)[::-1], axis=0)[::-1]
    absent = ~present
    inside = absent & (prev >= 0) & (nxt < frames) & (nxt - prev - 1 <= max_gap)
    fill = inside.copy()
    if hold_ends:
        fill |= absent & (prev < 0) & (nxt < frames) & (nxt <= max_gap)  # leading gap of nxt frames
        fill |= absent & (nxt >= frames) & (prev >= 0) & (frames - 1 - prev <= max_gap)
    f, n, p = np.nonzero(fill)
    a = np.where(prev[f, n, p] >= 0, prev[f, n, p], nxt[f, n, p])  # a bounding frame on each side;
    b = np.where(nxt[f, n, p] < frames, nxt[f, n, p], a)           # equal at the clip's ends (hold)
    t = np.where(b > a, (f - a) / np.maximum(b - a, 1), 0.0)[:, None].astype(np.float32)
    data[f, n, p] = data[a, n, p] + t * (data[b, n, p] - data[a, n, p])
    rep = _report(report)
    rep.points_filled += int(fill.sum())
    # A filled run starts where the frame before was not filled.
    starts = fill.copy()
    starts[1:] &= ~fill[:-1]
    rep.gaps_filled += int(starts.sum())
    return KeypointSequence(seq.layout, data, seq.canvas, seq.frame_numbers.copy())


# --- smoothing: the One Euro filter ------------------------------------------------------------

def person_sizes(seq: KeypointSequence) -> np.ndarray:
    """(people,) a typical size of each person: the median over frames of the bounding-box
    diagonal of their present points (1 where never present). Lets thresholds be given in body
    sizes rather than pixels, so they work at any resolution and distance."""
    present = seq.present
    x, y = seq.data[..., 0], seq.data[..., 1]
    w = np.where(present, x, -np.inf).max(axis=2) - np.where(present, x, np.inf).min(axis=2)
    h = np.where(present, y, -np.inf).max(axis=2) - np.where(present, y, np.inf).min(axis=2)
    seen = present.any(axis=2)
    diag = np.where(seen, np.hypot(np.where(seen, w, 0), np.where(seen, h, 0)), np.nan)
    sizes = np.full(seq.people_count, 1.0)
    for person in range(seq.people_count):
        d = diag[:, person]
        d = d[~np.isnan(d)]
        if d.size:
            sizes[person] = max(float(np.median(d)), 1.0)
    return sizes


def smooth_one_euro(
    seq: KeypointSequence,
    *,
    min_cutoff: float = 1.0,
    beta: float = 5.0,
    d_cutoff: float = 1.0,
    fps: float = 30.0,
    strength: float = 1.0,
    zero_lag: bool = True,
    report: CleanReport | None = None,
) -> KeypointSequence:
    """Smooth every point with a One Euro filter (Casiez, Roussel and Vogel, CHI 2012).

    A first-order low-pass whose cutoff rises with the point's speed: at rest the cutoff is
    ``min_cutoff`` Hz (jitter removed), moving fast it grows by ``beta`` Hz per body size per
    second (lag removed). The speed is itself low-passed at ``d_cutoff`` Hz. Positions are
    measured in units of each person's size, so the defaults hold at any resolution.
    ``strength`` divides both ``min_cutoff`` and ``beta`` (2 = smoother, 0.5 = lighter; 0 turns
    the filter off). A point's filter starts afresh wherever it reappears after being absent.

    ``zero_lag``: the whole clip is known, so the filter also runs backwards in time and the two
    passes are averaged; their lags are equal and opposite and cancel (a ramp comes out on
    time, a step is spread evenly around its frame). Off, the filter is the causal original.
    ``report`` is accepted like every step's, though smoothing has nothing to count.
    """
    if strength <= 0 or seq.frame_count < 2:
        return KeypointSequence(seq.layout, seq.data.copy(), seq.canvas, seq.frame_numbers.copy())
    data = seq.data.copy()
    frames = data.shape[0]
    scale = person_sizes(seq)[None, :, None]
    z = (data[..., 0] + 1j * data[..., 1]) / scale  # complex positions, in person sizes
    z = z.reshape(frames, -1)
    present = (data[..., 2] > 0).reshape(frames, -1)
    args = (min_cutoff / strength, beta / strength, d_cutoff, fps)
    if zero_lag:
        # Both directions in one pass over the frames: the backward run is just more columns.
        both = _one_euro(
            np.concatenate([z, z[::-1]], axis=1), np.concatenate([present, present[::-1]], axis=1), *args
        )
        points = z.shape[1]
        out = 0.5 * (both[:, :points] + both[::-1, points:])
    else:
        out = _one_euro(z, present, *args)
    out = out.reshape(data.shape[:3]) * scale
    keep = data[..., 2] > 0
    data[..., 0] = np.where(keep, out.real, 0.0)
    data[..., 1] = np.where(keep, out.imag, 0.0)
    return KeypointSequence(seq.layout, data, seq.canvas, seq.frame_numbers.copy())


def _one_euro(z: np.ndarray, present: np.ndarray, min_cutoff, beta, d_cutoff, fps) -> np.ndarray:
    """The filter over (frames, points) complex positions; one pass over the frames, all points
    at once. Smoothing factor for a cutoff fc at sampling period T: a = r / (1 + r), r = 2 pi fc T."""
    k = 2 * math.pi / fps
    a_d = k * d_cutoff / (1 + k * d_cutoff)
    out = np.empty_like(z)
    zh = z[0].copy()                   # filtered position
    vh = np.zeros_like(zh)             # filtered velocity (sizes per second)
    out[0] = zh
    # Points (re)appearing after an absence start afresh: from the measurement, at rest.
    reset = present[1:] & ~present[:-1]
    resets = set((np.flatnonzero(reset.any(axis=1)) + 1).tolist())
    e = np.empty_like(zh)
    r = np.empty(zh.shape)
    for f in range(1, z.shape[0]):
        zf = z[f]
        if f in resets:
            zh[reset[f - 1]] = zf[reset[f - 1]]
            vh[reset[f - 1]] = 0
        np.subtract(zf, zh, out=e)
        vh *= 1 - a_d                  # vh += a_d * (e * fps - vh)
        vh += (a_d * fps) * e
        np.abs(vh, out=r)              # speed -> cutoff -> r = 2 pi cutoff T
        r *= k * beta
        r += k * min_cutoff
        zh += r / (1 + r) * e
        out[f] = zh
    return out
