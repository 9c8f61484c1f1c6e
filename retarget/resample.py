"""A keypoint sequence sampled at one frame rate, resampled by time onto another (a 60 fps video
onto a 24 fps scene).

The target frames lie on a grid counted from the video's own time 0: target frame ``n`` is the
instant ``n / fps``. So the result's ``frame_numbers`` are grid numbers, and the video's first
frame sits exactly at grid frame 0, which is how a movie strip or background clip is lined up
with the keys (``time_grid``).

Each target instant takes the two source samples around it: a point present in both is
interpolated linearly (position and confidence); a point present in one of them only keeps that
one's value when it lies within ``tolerance`` seconds (by default half the source's sampling
interval, i.e. when it is the nearer sample), else it is absent. Nothing is extrapolated past the
first or last source sample.
"""
from __future__ import annotations

import math

import numpy as np

from ..pose.keypoints import KeypointSequence

# Instants closer than this (in seconds) count as equal: float times from frame numbers.
_EPSILON = 1e-6


def time_grid(times, fps: float) -> np.ndarray:
    """The grid frames (int, ``n / fps`` seconds each) from the first to the last of ``times``."""
    times = np.asarray(times, dtype=np.float64)
    if not len(times):
        return np.zeros(0, np.int64)
    first = math.ceil(times[0] * fps - _EPSILON)
    last = math.floor(times[-1] * fps + _EPSILON)
    return np.arange(first, max(first, last) + 1, dtype=np.int64)


def sampling_interval(times) -> float:
    """The source's typical time between samples (the median step; 0 for a single sample)."""
    steps = np.diff(np.asarray(times, dtype=np.float64))
    return float(np.median(steps)) if len(steps) else 0.0


def resample_by_time(seq: KeypointSequence, times, fps: float, tolerance: float | None = None) -> KeypointSequence:
    """``seq`` (its frames at ``times`` seconds, increasing) at ``fps``; see the module doc.
    ``tolerance``: seconds within which a point seen on one side only is kept (default: half the
    sampling interval). Raises ValueError for times that do not fit the sequence."""
    times = np.asarray(times, dtype=np.float64)
    if times.shape != (seq.frame_count,):
        raise ValueError(f"{seq.frame_count} frames but {times.shape[0] if times.ndim else 0} times")
    if seq.frame_count == 0:
        raise ValueError("no frames to resample")
    if np.any(np.diff(times) <= 0):
        raise ValueError("frame times must increase")
    if not fps > 0:
        raise ValueError(f"the frame rate must be positive, got {fps}")
    if tolerance is None:
        tolerance = sampling_interval(times) / 2
    grid = time_grid(times, fps)
    instants = grid / float(fps)
    # The source sample at or before each instant, and the one after it (the same at the end).
    before = np.clip(np.searchsorted(times, instants + _EPSILON, side="right") - 1, 0, len(times) - 1)
    after = np.minimum(before + 1, len(times) - 1)
    span = times[after] - times[before]
    weight = np.where(span > 0, (instants - times[before]) / np.where(span > 0, span, 1.0), 0.0)
    weight = np.clip(weight, 0.0, 1.0)[:, None, None]

    a, b = seq.data[before].astype(np.float64), seq.data[after].astype(np.float64)
    seen_a, seen_b = a[..., 2] > 0, b[..., 2] > 0
    blended = a + (b - a) * weight[..., None]
    out = np.zeros_like(blended)
    both = seen_a & seen_b
    out[both] = blended[both]
    near_a = (np.abs(instants - times[before]) <= tolerance + _EPSILON)[:, None, None]
    near_b = (np.abs(times[after] - instants) <= tolerance + _EPSILON)[:, None, None]
    only_a = seen_a & ~seen_b & near_a
    only_b = seen_b & ~seen_a & near_b
    out[only_a] = a[only_a]
    out[only_b] = b[only_b]
    return KeypointSequence(seq.layout, out.astype(np.float32), seq.canvas, grid)


def format_fps(fps: float) -> str:
    """60 -> "60", 29.97 -> "29.97", 23.976024 -> "23.976"."""
    return f"{round(float(fps), 3):g}"


def rate_note(source_fps: float, scene_fps: float, every: int = 1) -> str:
    """What the report says about the two rates (``every``: every Nth video frame was read)."""
    source, scene = format_fps(source_fps), format_fps(scene_fps)
    if abs(source_fps - scene_fps) < 1e-3 and every == 1:
        return f"video {source} fps = scene {scene} fps: one key per video frame"
    sampled = f" (every {_ordinal(every)} frame extracted)" if every > 1 else ""
    return f"video {source} fps{sampled} -> scene {scene} fps: keys resampled by time"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
