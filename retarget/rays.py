"""Camera rays and the small geometric solvers of the lift, vectorised over frames.

Everything here works in one 3-D frame, the rig's armature space: the camera is given as
``to_camera`` (armature space -> camera space, i.e. Blender's ``world_to_camera @
armature.matrix_world``) and the window matrix, per frame. Pixels follow ``pose.projection``
(origin top-left, y down, pixel centres at integers).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..pose.projection import project_points
from .rotations import kabsch, normalize, quat_to_matrix, skew


@dataclass
class ArmatureCamera:
    to_camera: np.ndarray  # (frames, 4, 4) armature space -> camera space
    projection: np.ndarray  # (frames, 4, 4) Blender's window matrix
    width: int
    height: int

    def __post_init__(self) -> None:
        self.to_camera = np.asarray(self.to_camera, dtype=np.float64)
        self.projection = np.asarray(self.projection, dtype=np.float64)
        if self.to_camera.ndim == 2:
            self.to_camera = self.to_camera[None]
        if self.projection.ndim == 2:
            self.projection = self.projection[None]
        frames = max(len(self.to_camera), len(self.projection))
        self.to_camera = np.broadcast_to(self.to_camera, (frames, 4, 4)).copy()
        self.projection = np.broadcast_to(self.projection, (frames, 4, 4)).copy()
        self._clip = self.projection @ self.to_camera
        self._unclip = np.linalg.inv(self._clip)

    @property
    def frame_count(self) -> int:
        return len(self.to_camera)

    @property
    def perspective(self) -> np.ndarray:
        """(frames,) bool: perspective (w depends on depth) rather than orthographic."""
        return np.abs(self.projection[:, 3, 3]) < 0.5

    def project(self, points) -> np.ndarray:
        """Pixels (frames, ..., 2) of armature-space points (frames, ..., 3)."""
        if self.frame_count == 1:  # one camera for every frame
            xy, _ = project_points(points, self.to_camera[0], self.projection[0], self.width, self.height)
        else:
            xy, _ = project_points(points, self.to_camera, self.projection, self.width, self.height)
        return xy

    def depth(self, points) -> np.ndarray:
        """Distance in front of the camera (camera-space -z), (frames, ...)."""
        points = np.asarray(points, dtype=np.float64)
        frames = points.shape[0]
        flat = points.reshape(frames, -1, 3)
        row = self.to_camera[:, None, 2]  # (F or 1, 1, 4)
        z = np.sum(flat * row[..., :3], axis=-1) + row[..., 3]
        return (-z).reshape(points.shape[:-1])

    def rays(self, xy) -> tuple[np.ndarray, np.ndarray]:
        """Armature-space rays through pixels (frames, ..., 2): origins and unit directions.

        The origins lie on the near clipping plane: perspective rays spread from the camera's
        centre, orthographic ones are parallel.
        """
        xy = np.asarray(xy, dtype=np.float64)
        frames = xy.shape[0]
        flat = xy.reshape(frames, -1, 2)
        ndc_x = (flat[..., 0] + 0.5) * (2.0 / self.width) - 1.0
        ndc_y = 1.0 - (flat[..., 1] + 0.5) * (2.0 / self.height)
        ones = np.ones_like(ndc_x)
        near = np.stack([ndc_x, ndc_y, -ones, ones], -1) @ np.swapaxes(self._unclip, -1, -2)
        far = np.stack([ndc_x, ndc_y, ones, ones], -1) @ np.swapaxes(self._unclip, -1, -2)
        near = near[..., :3] / near[..., 3:]
        far = far[..., :3] / far[..., 3:]
        shape = xy.shape[:-1] + (3,)
        return near.reshape(shape), normalize(far - near).reshape(shape)

    def at_depth(self, xy, depth) -> np.ndarray:
        """Armature-space points on the rays through ``xy`` at camera-space ``depth`` in front."""
        origin, direction = self.rays(xy)
        z0 = self.depth(origin)
        # depth grows linearly along a ray: solve z0 + s * dz = depth.
        dz = self.depth(origin + direction) - z0
        s = (np.asarray(depth) - z0) / np.where(np.abs(dz) < 1e-12, 1e-12, dz)
        return origin + direction * s[..., None]


def closest_on_ray(point, origin, direction) -> np.ndarray:
    """The point of each ray nearest ``point`` (all (..., 3), directions unit)."""
    s = np.sum((point - origin) * direction, axis=-1, keepdims=True)
    return origin + direction * s


def ray_sphere(centre, radius, origin, direction):
    """Where rays meet spheres: ``(near, far, hit)``.

    ``near``/``far`` (..., 3) are the intersections closer to and further from the ray origin;
    where the ray misses (``hit`` False) both are the sphere's point closest to the ray, so the
    direction from the centre still points at the ray (what the image shows), and the limb lies
    across the line of sight.
    """
    closest = closest_on_ray(centre, origin, direction)
    offset = closest - centre
    gap_sq = np.sum(offset * offset, axis=-1)
    radius = np.broadcast_to(np.asarray(radius, dtype=np.float64), gap_sq.shape)
    hit = gap_sq <= radius * radius
    half = np.sqrt(np.maximum(radius * radius - gap_sq, 0.0))[..., None]
    near = closest - direction * half
    far = closest + direction * half
    toward = centre + normalize(offset) * radius[..., None]
    near = np.where(hit[..., None], near, toward)
    far = np.where(hit[..., None], far, toward)
    return near, far, hit


def _ray_projectors(direction) -> np.ndarray:
    """I - d d^T: removes the component along each ray, (..., 3, 3)."""
    return np.eye(3) - direction[..., :, None] * direction[..., None, :]


def fit_rotation_about(
    pivot, offsets, origin, direction, weights, rotation, iterations: int = 6, rough_steps: int = 1, ridge=None
):
    """Rotate a rigid point set about a fixed pivot so its points come closest to their rays.

    ``pivot`` (F, 3); ``offsets`` (F, K, 3) the points minus the pivot before rotating;
    rays (F, K, 3); ``weights`` (F, K); ``rotation`` (F, 3, 3) the start. A few steps of
    orthogonal iteration (move each point onto its ray, best rotation onto those: robust far
    from the answer) then Gauss-Newton steps (fast near it). Returns (rotation, mean squared
    ray distance).
    """
    weights = np.asarray(weights, dtype=np.float64)
    for _ in range(rough_steps):
        moved = pivot[:, None] + offsets @ np.swapaxes(rotation, -1, -2)
        target = closest_on_ray(moved, origin, direction) - pivot[:, None]
        rotation = kabsch(offsets, target, weights)

    def cost(rot):
        return _residual(pivot[:, None] + offsets @ np.swapaxes(rot, -1, -2), origin, direction, weights)

    def linearise(rot):
        turned = offsets @ np.swapaxes(rot, -1, -2)  # (F, K, 3)
        gap = pivot[:, None] + turned - origin
        jtj, jtd, jtg = _rotation_terms(turned, direction, gap)
        return _normal_equations(jtj, jtd, jtg, direction, gap, weights)

    rotation, residual = _levenberg_marquardt(
        rotation, cost, linearise, lambda rot, step: _turn(step, rot), iterations, ridge
    )
    return rotation, residual


def fit_rigid(model, origin, direction, weights, rotation, iterations: int = 6, rough_steps: int = 1, ridge=None):
    """Place a rigid point set (model points (F, K, 3) around their own origin) so its points
    come closest to their rays: rotation (F, 3, 3) and translation (F, 3), the rig's own size
    setting the distance from the camera. Orthogonal iteration, then Gauss-Newton.
    """
    weights = np.asarray(weights, dtype=np.float64)
    projectors = _ray_projectors(direction) * weights[..., None, None]  # (F, K, 3, 3)
    normal_t = np.linalg.inv(projectors.sum(axis=1) + np.eye(3) * 1e-12)
    total = np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)

    def translation_for(rotation):
        # The least-squares translation for a rotation has a closed form.
        rotated = model @ np.swapaxes(rotation, -1, -2)
        rhs = np.einsum("fkij,fkj->fi", projectors, origin - rotated)
        return np.einsum("fij,fj->fi", normal_t, rhs)

    translation = translation_for(rotation)
    for _ in range(rough_steps):
        moved = model @ np.swapaxes(rotation, -1, -2) + translation[:, None]
        target = closest_on_ray(moved, origin, direction)
        model_centre = (model * weights[..., None]).sum(axis=1) / total
        target_centre = (target * weights[..., None]).sum(axis=1) / total
        rotation = kabsch(model - model_centre[:, None], target - target_centre[:, None], weights)
        translation = translation_for(rotation)

    def cost(pose):
        rot, shift = pose
        return _residual(model @ np.swapaxes(rot, -1, -2) + shift[:, None], origin, direction, weights)

    def linearise(pose):
        rot, shift = pose
        turned = model @ np.swapaxes(rot, -1, -2)
        gap = turned + shift[:, None] - origin
        rjr, rjd, rjg = _rotation_terms(turned, direction, gap)
        # Jacobian [-[q]x, I] (rotation, translation): the blocks of J^T J, J^T d, J^T gap.
        cross = skew(turned)  # (-[q]x)^T
        eye = np.broadcast_to(np.eye(3), rjr.shape)
        jtj = np.concatenate(
            [np.concatenate([rjr, cross], -1), np.concatenate([-cross, eye], -1)], -2
        )
        jtd = np.concatenate([rjd, direction], -1)
        jtg = np.concatenate([rjg, gap], -1)
        return _normal_equations(jtj, jtd, jtg, direction, gap, weights)

    def update(pose, step):
        return (_turn(step[:, :3], pose[0]), pose[1] + step[:, 3:])

    (rotation, translation), residual = _levenberg_marquardt(
        (rotation, translation), cost, linearise, update, iterations, ridge
    )
    return rotation, translation, residual


def _levenberg_marquardt(state, cost, linearise, update, iterations: int, ridge=None):
    """Damped Gauss-Newton per frame: a step is kept only where it lowers the cost, and the
    damping grows where it did not (undamped steps can overshoot far from the answer).

    With ``ridge`` the damping stays at that fraction of the normal matrix's mean eigenvalue:
    the steps then follow what the rays determine well and hardly move what they barely
    determine (a flat body's tilt in depth), which keeps the start's value there.
    """
    current = cost(state)
    damping = None
    for _ in range(iterations):
        normal, gradient = linearise(state)
        scale = np.trace(normal, axis1=-2, axis2=-1) / normal.shape[-1] + 1e-12
        if ridge is not None:
            damping = ridge * scale
        elif damping is None:
            damping = 1e-4 * scale
        damped = normal + (damping + 1e-12 * scale)[:, None, None] * np.eye(normal.shape[-1])
        step = _solve3(damped, -gradient) if normal.shape[-1] == 3 else _solve6(damped, -gradient)
        trial = update(state, step)
        trial_cost = cost(trial)
        better = trial_cost <= current
        state = _where(better, trial, state)
        current = np.where(better, trial_cost, current)
        if ridge is None:
            damping = np.where(better, damping * 0.2, damping * 10.0)
    return state, current


def _solve3(m, b) -> np.ndarray:
    """Batched 3x3 solves by Cramer's rule (numpy's solve costs a LAPACK call per matrix)."""
    c0, c1, c2 = m[..., :, 0], m[..., :, 1], m[..., :, 2]
    det = np.sum(c0 * np.cross(c1, c2), axis=-1)
    det = np.where(np.abs(det) < 1e-300, 1e-300, det)
    x = np.sum(b * np.cross(c1, c2), axis=-1)
    y = np.sum(c0 * np.cross(b, c2), axis=-1)
    z = np.sum(c0 * np.cross(c1, b), axis=-1)
    return np.stack([x, y, z], -1) / det[..., None]


def _inverse3(m) -> np.ndarray:
    c0, c1, c2 = m[..., :, 0], m[..., :, 1], m[..., :, 2]
    rows = np.stack([np.cross(c1, c2), np.cross(c2, c0), np.cross(c0, c1)], -2)
    det = np.sum(c0 * rows[..., 0, :], axis=-1)
    det = np.where(np.abs(det) < 1e-300, 1e-300, det)
    return rows / det[..., None, None]


def _solve6(m, b) -> np.ndarray:
    """Batched 6x6 symmetric solves through 3x3 blocks (Schur complement)."""
    a, c, d = m[..., :3, :3], m[..., :3, 3:], m[..., 3:, 3:]
    d_inv = _inverse3(d)
    c_d_inv = c @ d_inv
    top = _solve3(a - c_d_inv @ np.swapaxes(c, -1, -2), b[..., :3] - np.einsum("fij,fj->fi", c_d_inv, b[..., 3:]))
    bottom = np.einsum("fij,fj->fi", d_inv, b[..., 3:] - np.einsum("fji,fj->fi", c, top))
    return np.concatenate([top, bottom], -1)


def _where(mask, new, old):
    if isinstance(new, tuple):
        return tuple(_where(mask, n, o) for n, o in zip(new, old))
    return np.where(mask.reshape(mask.shape + (1,) * (new.ndim - 1)), new, old)



def _rotation_terms(turned, direction, gap):
    """For the Jacobian J = -[q]x of a point q under a small rotation: J^T J, J^T d, J^T gap
    (written out: the batched products are far faster than generic einsums)."""
    length_sq = np.sum(turned * turned, axis=-1)[..., None, None]
    jtj = length_sq * np.eye(3) - turned[..., :, None] * turned[..., None, :]
    return jtj, np.cross(turned, direction), np.cross(turned, gap)


def _normal_equations(jtj, jtd, jtg, direction, gap, weights):
    """Sum over points of w J^T P J and w J^T P gap with P = I - d d^T (distance to the ray)."""
    w = weights[..., None]
    along = np.sum(direction * gap, axis=-1, keepdims=True)
    normal = ((jtj - jtd[..., :, None] * jtd[..., None, :]) * w[..., None]).sum(axis=1)
    gradient = ((jtg - jtd * along) * w).sum(axis=1)
    return normal, gradient


def _turn(small, rotation) -> np.ndarray:
    """exp([small]x) @ rotation, for rotation vectors (F, 3)."""
    angle = np.linalg.norm(small, axis=-1, keepdims=True)
    axis = small / np.maximum(angle, 1e-300)
    q = np.concatenate([np.cos(angle / 2.0), np.sin(angle / 2.0) * axis], -1)
    return quat_to_matrix(q) @ rotation


def _residual(points, origin, direction, weights) -> np.ndarray:
    gap = points - closest_on_ray(points, origin, direction)
    total = np.maximum(weights.sum(axis=-1), 1e-12)
    return (np.sum(gap * gap, axis=-1) * weights).sum(axis=-1) / total


def mirrored_start(rotation, view, plane_normal) -> np.ndarray:
    """The other solution a nearly flat point set has under a camera: its depth reflected.

    A flat set seen along ``view`` (F, 3) looks the same tilted towards or away from the camera;
    reflecting the posed set through the plane across the view (a reflection) and the set
    through its own plane (``plane_normal`` in rest coordinates, which leaves it unchanged)
    gives a proper rotation for that other solution, a start for refining it.
    """
    view = normalize(view)
    across = np.eye(3) - 2.0 * view[..., :, None] * view[..., None, :]
    n = normalize(plane_normal)
    own = np.eye(3) - 2.0 * n[..., :, None] * n[..., None, :]
    return across @ rotation @ own


def plane_normal(points, weights=None) -> np.ndarray:
    """Normal (..., 3) of the best-fit plane through points (..., K, 3) (already centred)."""
    points = np.asarray(points, dtype=np.float64)
    if weights is not None:
        points = points * np.sqrt(np.asarray(weights))[..., None]
    _, _, vt = np.linalg.svd(points)
    return vt[..., -1, :]
