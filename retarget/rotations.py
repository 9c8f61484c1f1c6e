"""Rotations vectorised over frames: quaternions, matrices, Euler angles, swings.

Conventions are Blender's: quaternions are (w, x, y, z); rotation matrices act on column
vectors; an Euler rotation mode names the axes in the order they are applied, so ``"XYZ"`` is
``Rz @ Ry @ Rx``. Every function takes arrays with any leading shape (frames, bones, ...).
"""
from __future__ import annotations

import numpy as np

EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")


def normalize(v, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    length = np.linalg.norm(v, axis=axis, keepdims=True)
    return v / np.maximum(length, eps)


def quat_to_matrix(q) -> np.ndarray:
    """(..., 4) unit quaternions -> (..., 3, 3) rotation matrices."""
    q = normalize(q)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def matrix_to_quat(m) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions with w >= 0.

    Shepperd's method: take the square root of the largest of w, x, y, z (never near zero),
    so it is accurate for every rotation, including half turns.
    """
    m = np.asarray(m, dtype=np.float64)
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # 4w² = 1 + trace, 4x² = 1 + m00 - m11 - m22, ...: the largest diagonal picks the case.
    candidates = np.stack([trace, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1)
    pick = np.argmax(candidates, axis=-1)
    q = np.empty(m.shape[:-2] + (4,))
    # Case w largest.
    s = np.sqrt(np.maximum(1.0 + trace, 1e-300)) * 2.0
    qw = np.stack([0.25 * s, (m[..., 2, 1] - m[..., 1, 2]) / s, (m[..., 0, 2] - m[..., 2, 0]) / s,
                   (m[..., 1, 0] - m[..., 0, 1]) / s], -1)
    s = np.sqrt(np.maximum(1.0 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], 1e-300)) * 2.0
    qx = np.stack([(m[..., 2, 1] - m[..., 1, 2]) / s, 0.25 * s, (m[..., 0, 1] + m[..., 1, 0]) / s,
                   (m[..., 0, 2] + m[..., 2, 0]) / s], -1)
    s = np.sqrt(np.maximum(1.0 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], 1e-300)) * 2.0
    qy = np.stack([(m[..., 0, 2] - m[..., 2, 0]) / s, (m[..., 0, 1] + m[..., 1, 0]) / s, 0.25 * s,
                   (m[..., 1, 2] + m[..., 2, 1]) / s], -1)
    s = np.sqrt(np.maximum(1.0 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2], 1e-300)) * 2.0
    qz = np.stack([(m[..., 1, 0] - m[..., 0, 1]) / s, (m[..., 0, 2] + m[..., 2, 0]) / s,
                   (m[..., 1, 2] + m[..., 2, 1]) / s, 0.25 * s], -1)
    for case, value in enumerate((qw, qx, qy, qz)):
        where = pick == case
        q[where] = value[where]
    q = normalize(q)
    return np.where(q[..., :1] < 0, -q, q)


def swing(a, b) -> np.ndarray:
    """The smallest rotation (..., 3, 3) turning unit direction ``a`` onto ``b`` (no twist).

    Rodrigues' formula in the form R = I + [v]x + [v]x² / (1 + c) with v = a x b, c = a . b,
    which has no trigonometry; opposite directions (c = -1) turn half a turn about an axis
    perpendicular to ``a``.
    """
    a = normalize(a)
    b = normalize(b)
    a, b = np.broadcast_arrays(a, b)
    v = np.cross(a, b)
    c = np.sum(a * b, axis=-1)
    opposite = c < -1.0 + 1e-9
    if np.any(opposite):
        # Any axis perpendicular to a: cross with the coordinate axis a is least aligned with.
        helper = np.zeros_like(a)
        least = np.argmin(np.abs(a), axis=-1)
        np.put_along_axis(helper, least[..., None], 1.0, axis=-1)
        axis = normalize(np.cross(a, helper))
        half_turn = 2.0 * axis[..., :, None] * axis[..., None, :] - np.eye(3)
    k = skew(v)
    factor = 1.0 / np.maximum(1.0 + c, 1e-12)
    rotation = np.eye(3) + k + (k @ k) * factor[..., None, None]
    if np.any(opposite):
        rotation = np.where(opposite[..., None, None], half_turn, rotation)
    return rotation


def skew(v) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) cross-product matrices."""
    v = np.asarray(v, dtype=np.float64)
    x, y, z = np.moveaxis(v, -1, 0)
    zero = np.zeros_like(x)
    return np.stack(
        [np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2
    )


def axis_angle_matrix(axis, angle) -> np.ndarray:
    """Rotations (F, 3, 3) by ``angle`` (F,) about one unit ``axis`` (3,) (Rodrigues)."""
    c, s = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    return c * np.eye(3) + s * skew(axis) + (1.0 - c) * np.outer(axis, axis)


def kabsch(a, b, weights=None) -> np.ndarray:
    """The rotation R (..., 3, 3) minimising sum w |R a_k - b_k|² (vectors (..., K, 3)).

    The vectors are taken as they are (no centring): callers centre them on a pivot or centroid.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if weights is not None:
        b = b * np.asarray(weights, dtype=np.float64)[..., None]
    covariance = np.swapaxes(b, -1, -2) @ a  # (..., 3, 3) = sum_k b_k a_k^T
    u, _, vt = np.linalg.svd(covariance)
    det = np.linalg.det(u @ vt)
    fix = np.ones(det.shape + (3,))
    fix[..., 2] = np.sign(det + (det == 0))
    return (u * fix[..., None, :]) @ vt


def angle_between(a, b) -> np.ndarray:
    """Angle in radians between direction vectors (any lengths), (...,)."""
    a = normalize(a)
    b = normalize(b)
    return np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1))


# --- Euler angles ---------------------------------------------------------------------------
def _axes(order: str) -> tuple[int, int, int, float]:
    if order not in EULER_ORDERS:
        raise ValueError(f"unknown Euler order {order!r} (known: {', '.join(EULER_ORDERS)})")
    i, j, k = ("XYZ".index(c) for c in order)
    parity = 1.0 if (j - i) % 3 == 1 else -1.0  # even permutations of XYZ
    return i, j, k, parity


def axis_matrix(axis: int, angle) -> np.ndarray:
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    m = np.zeros(angle.shape + (3, 3))
    a, b = (axis + 1) % 3, (axis + 2) % 3  # cyclic, so every axis turns the right way
    m[..., axis, axis] = 1.0
    m[..., a, a] = c
    m[..., b, b] = c
    m[..., b, a] = s
    m[..., a, b] = -s
    return m


def euler_to_matrix(angles, order: str = "XYZ") -> np.ndarray:
    """(..., 3) angles (about X, Y, Z, as Blender stores them) -> (..., 3, 3)."""
    angles = np.asarray(angles, dtype=np.float64)
    i, j, k, _ = _axes(order)
    return axis_matrix(k, angles[..., k]) @ axis_matrix(j, angles[..., j]) @ axis_matrix(i, angles[..., i])


def matrix_to_euler(m, order: str = "XYZ") -> np.ndarray:
    """(..., 3, 3) -> (..., 3) angles about X, Y, Z for ``order`` (the middle angle within
    +-90 degrees). Callers wanting smooth curves unwrap them (``continuous_euler``)."""
    m = np.asarray(m, dtype=np.float64)
    i, j, k, p = _axes(order)
    # R = Rk(c) Rj(b) Ri(a): the generic Tait-Bryan decomposition with the permutation's sign.
    sin_b = np.clip(-p * m[..., k, i], -1.0, 1.0)
    b = np.arcsin(sin_b)
    cos_b = np.sqrt(np.maximum(0.0, 1.0 - sin_b * sin_b))
    locked = cos_b < 1e-9
    a = np.arctan2(p * m[..., k, j], m[..., k, k])
    c = np.arctan2(p * m[..., j, i], m[..., i, i])
    if np.any(locked):
        # Gimbal lock: only a +- c is defined; put it all on the first axis.
        a_locked = np.arctan2(-p * m[..., j, k], m[..., j, j])
        a = np.where(locked, a_locked, a)
        c = np.where(locked, 0.0, c)
    out = np.empty(m.shape[:-2] + (3,))
    out[..., i] = a
    out[..., j] = b
    out[..., k] = c
    return out


def continuous_quats(q, axis: int = 0) -> np.ndarray:
    """Flip signs along ``axis`` (frames) so consecutive quaternions are in the same hemisphere:
    q and -q are the same rotation, but curves interpolated between them would spin."""
    q = np.moveaxis(np.asarray(q, dtype=np.float64), axis, 0)
    if q.shape[0] < 2:
        return np.moveaxis(q.copy(), 0, axis)
    dots = np.sum(q[1:] * q[:-1], axis=-1)
    flips = np.concatenate([np.ones((1,) + dots.shape[1:]), np.where(dots < 0, -1.0, 1.0)])
    signs = np.cumprod(flips, axis=0)
    return np.moveaxis(q * signs[..., None], 0, axis)


def continuous_euler(m, order: str, axis: int = 0) -> np.ndarray:
    """Euler angles of the matrices (frames along ``axis``) without 360-degree jumps."""
    angles = matrix_to_euler(m, order)
    return np.unwrap(angles, axis=axis)


def quat_to_axis_angle(q) -> np.ndarray:
    """(..., 4) -> (..., 4) as Blender's rotation_axis_angle: (angle, x, y, z)."""
    q = normalize(q)
    w = np.clip(q[..., 0], -1.0, 1.0)
    angle = 2.0 * np.arccos(w)
    axis = q[..., 1:]
    length = np.linalg.norm(axis, axis=-1, keepdims=True)
    axis = np.where(length > 1e-12, axis / np.maximum(length, 1e-12), np.array([0.0, 1.0, 0.0]))
    return np.concatenate([angle[..., None], axis], -1)
