"""The lift's rigid groups, hands and head (``lift``, step 3).

Rigid groups (finger bases about the wrist; nose, eyes, ears about the head bone) are turned
about their driver bone's head to their rays the same way as the torso (``lift_torso``): a fit
and its mirrored reading, and a pass over the frames that keeps the one that fits, changes
least and turns least from the rest pose. Fingers then follow as limbs (``lift_limbs``).
"""
from __future__ import annotations

import numpy as np

from .lift_common import _CONTINUITY, _FILLED_WEIGHT, _FIT_WEIGHT, _MIRROR_FIT, _SETTLE_FIT, _same_reading, _to4
from .lift_plan import Group
from .rays import fit_rotation_about, mirrored_start, plane_normal
from .rotations import kabsch
from .temporal import choose_path, interpolate_gaps, pick, smooth_rotations, step_costs

_TURN_PRIOR = {"head": 0.2, "hand": 0.05}  # a group turned from its rest pose


class GroupStep:
    """Turning a rigid group (a hand, the head) about its driver's head: a method of
    ``lift._Solver``, which holds the state it uses (plan, camera, options, observations,
    poser, stats, the rig's scale in the image)."""

    def solve_group(self, group: Group, turn_prior: float) -> None:
        frames, camera, poser = self.frames, self.camera, self.poser
        anchor_xy = []
        for choices in group.observed_anchors:
            seen = next((self.absolute(p) for p in choices if self.present[:, p].any()), None)
            if seen is None:
                self.stats.skipped.append(group.name)
                return
            anchor_xy.append(seen[0])
        anchor_xy = np.mean(anchor_xy, axis=0)
        # Average in pixels, like the observed anchor (a projected midpoint is not the midpoint
        # of the projections).
        anchor_px = camera.project(np.stack([poser.point(a) for a in group.anchors], 1)).mean(axis=1)

        targets, weights = [], []
        for a in group.points:
            seen = self.present[:, a.point]
            if not seen.any():
                targets.append(np.zeros((frames, 2)))
                weights.append(np.zeros(frames))
                continue
            self._count_filled(a.point, seen)
            offset = interpolate_gaps(self.xy[:, a.point] - anchor_xy, seen)
            targets.append(anchor_px + self.scale[:, None] * offset)
            weights.append(np.where(seen, 1.0, _FILLED_WEIGHT))
        weights = np.stack(weights, 1)
        if (weights.max(axis=0) > 0).sum() < 2:
            self.stats.skipped.append(group.name)
            return
        origin, direction = camera.rays(np.stack(targets, 1))

        unposed = poser.unposed(group.driver)
        inv_rest = np.linalg.inv(self.plan.skeleton.rest[group.driver])
        local = np.stack([inv_rest[:3, :3] @ a.rest + inv_rest[:3, 3] for a in group.points])  # (K, 3)
        pivot = unposed[:, :3, 3]
        offsets = np.einsum("fij,kj->fki", unposed[:, :3, :3], local)
        size_sq = float(np.mean(np.sum(local**2, axis=-1))) or 1.0

        # Start: the points flat at the pivot's distance, turned onto the image (whatever twist
        # the parent bones left the group's rest frame with).
        flat = camera.at_depth(np.stack(targets, 1), camera.depth(pivot[:, None]))
        start = kabsch(offsets, flat - pivot[:, None], weights)
        rotation_a, residual_a = fit_rotation_about(pivot, offsets, origin, direction, weights, start)
        view = camera.rays(camera.project(pivot[:, None]))[1][:, 0]
        normal = plane_normal(offsets, (weights > 0).astype(np.float64))
        rotation_b, residual_b = fit_rotation_about(
            pivot, offsets, origin, direction, weights, mirrored_start(rotation_a, view, normal), **_MIRROR_FIT
        )
        same = _same_reading(rotation_a, rotation_b)
        rotation_b = np.where(same[:, None, None], rotation_a, rotation_b)
        residual_b = np.where(same, residual_a, residual_b)
        frame_rot = unposed[:, :3, :3]
        basis = np.stack(
            [np.swapaxes(frame_rot, -1, -2) @ r @ frame_rot for r in (rotation_a, rotation_b)], 1
        )
        turned = 1.0 - (np.trace(basis, axis1=-2, axis2=-1) - 1.0) / 2.0
        unary = _FIT_WEIGHT * np.stack([residual_a, residual_b], 1) / size_sq + turn_prior * turned
        path = choose_path(unary, step_costs(basis, **_CONTINUITY))
        chosen = pick(basis, path)
        if self.options.depth_smoothing > 0:
            smoothed = smooth_rotations(chosen, self.options.depth_smoothing)
            rotation, _ = fit_rotation_about(
                pivot, offsets, origin, direction, weights, frame_rot @ smoothed @ np.swapaxes(frame_rot, -1, -2),
                **_SETTLE_FIT,
            )
            chosen = np.swapaxes(frame_rot, -1, -2) @ rotation @ frame_rot
        poser.set_basis(group.driver, _to4(chosen))
