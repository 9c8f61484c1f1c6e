"""Measures shared by the tests that compare poses: limb directions and jitter."""
from __future__ import annotations

import numpy as np

# The limbs whose image directions are compared: upper and lower arms and legs, both sides.
LIMBS = [(f"{s}_{a}", f"{s}_{b}") for s in "lr"
         for a, b in (("shoulder", "elbow"), ("elbow", "wrist"), ("hip", "knee"), ("knee", "ankle"))]


def direction_errors(a, b, person: int = 0) -> np.ndarray:
    """Angles (degrees) between the image vectors of each limb in two keypoint sequences of one
    layout, wherever both ends are present in both."""
    pa, pb = a.data[:, person], b.data[:, person]
    out = []
    for p, q in LIMBS:
        i, j = a.layout.index(p), a.layout.index(q)
        seen = (pa[:, i, 2] > 0) & (pa[:, j, 2] > 0) & (pb[:, i, 2] > 0) & (pb[:, j, 2] > 0)
        va, vb = pa[seen, j, :2] - pa[seen, i, :2], pb[seen, j, :2] - pb[seen, i, :2]
        cross = va[:, 0] * vb[:, 1] - va[:, 1] * vb[:, 0]
        out.append(np.degrees(np.abs(np.arctan2(cross, np.sum(va * vb, axis=1)))))
    return np.concatenate(out)


def mean_acceleration(seq, names=None, mask=None) -> float:
    """Mean |x[t+1] - 2 x[t] + x[t-1]| in px over points present at all three frames; ``names``
    limits the points, ``mask`` (frames, people, points) replaces the sequence's own presence."""
    index = slice(None) if names is None else [seq.layout.index(n) for n in names]
    xy = seq.data[:, :, index, :2].astype(np.float64)
    ok = (seq.present if mask is None else mask)[:, :, index]
    second = xy[2:] - 2 * xy[1:-1] + xy[:-2]
    valid = ok[2:] & ok[1:-1] & ok[:-2]
    return float(np.linalg.norm(second, axis=-1)[valid].mean())
