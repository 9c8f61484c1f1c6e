"""Work along the frames of a clip: filling gaps, settling two-way choices, smoothing.

All vectorised over frames except ``choose_path``, a plain-Python Viterbi pass over two states
per frame (numpy's per-call overhead would cost more than the arithmetic).
"""
from __future__ import annotations

import numpy as np

from .rotations import continuous_quats, matrix_to_quat, normalize, quat_to_matrix


def interpolate_gaps(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Fill absent frames of (F, D) values linearly, holding the ends."""
    known = np.flatnonzero(present)
    if known.size == 0 or known.size == len(present):
        return values
    frames = np.arange(len(present))
    return np.stack([np.interp(frames, known, values[known, d]) for d in range(values.shape[1])], -1)


def choose_path(unary: np.ndarray, step: np.ndarray) -> np.ndarray:
    """The cheapest sequence of choices (Viterbi over two states per frame).

    ``unary`` (F, 2) costs each choice in each frame; ``step`` (F-1, 2, 2) costs going from
    choice j in frame t to choice k in frame t+1. Plain Python floats: two states make numpy's
    per-call overhead the larger cost.
    """
    frames = unary.shape[0]
    u = unary.tolist()
    s = step.tolist()
    back = [None] * frames
    c0, c1 = u[0]
    for t in range(1, frames):
        (s00, s01), (s10, s11) = s[t - 1]
        from0 = (c0 + s00, c1 + s10)
        from1 = (c0 + s01, c1 + s11)
        b0 = 0 if from0[0] <= from0[1] else 1
        b1 = 0 if from1[0] <= from1[1] else 1
        back[t] = (b0, b1)
        c0 = from0[b0] + u[t][0]
        c1 = from1[b1] + u[t][1]
    path = np.empty(frames, np.int64)
    state = 0 if c0 <= c1 else 1
    for t in range(frames - 1, 0, -1):
        path[t] = state
        state = back[t][state]
    path[0] = state
    return path


def step_costs(values: np.ndarray, weight: float = 1.0, jump: float | None = None, jump_weight: float = 100.0) -> np.ndarray:
    """(F, 2, ...) candidate values -> (F-1, 2, 2) costs of going from each choice at t to each
    choice at t+1: ``weight`` times the squared distance, plus, beyond a distance ``jump``,
    ``jump_weight`` times the squared excess (a steep wall against teleporting)."""
    flat = values.reshape(values.shape[0], 2, -1)
    diff = flat[1:, None, :, :] - flat[:-1, :, None, :]  # [t, j, k]
    squared = np.sum(diff * diff, axis=-1)
    cost = weight * squared
    if jump is not None:
        cost = cost + jump_weight * np.maximum(np.sqrt(squared) - jump, 0.0) ** 2
    return cost


def pick(values: np.ndarray, path: np.ndarray) -> np.ndarray:
    """values[t, path[t]] for every frame t."""
    return values[np.arange(values.shape[0]), path]


def smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along the first axis (frames). The ends are extended by point
    reflection (2 x[0] - x[k]), which continues a steady motion instead of stopping it."""
    if sigma <= 0 or values.shape[0] < 3:
        return values
    radius = max(1, int(round(3.0 * sigma)))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    pad = min(radius, values.shape[0] - 1)
    padded = np.concatenate([2 * values[:1] - values[pad:0:-1], values, 2 * values[-1:] - values[-2:-pad - 2:-1]])
    if pad < radius:  # a clip shorter than the kernel: hold the ends
        extra = radius - pad
        padded = np.concatenate([np.repeat(padded[:1], extra, 0), padded, np.repeat(padded[-1:], extra, 0)])
    out = np.zeros_like(values, dtype=np.float64)
    for k, weight in enumerate(kernel):
        out += weight * padded[k:k + values.shape[0]]
    return out


def smooth_rotations(rotations: np.ndarray, sigma: float) -> np.ndarray:
    """Rotations (F, 3, 3) smoothed over frames (quaternions in one hemisphere, averaged)."""
    q = continuous_quats(matrix_to_quat(rotations), axis=0)
    return quat_to_matrix(normalize(smooth(q, sigma)))
