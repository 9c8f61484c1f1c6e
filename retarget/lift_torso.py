"""The lift's torso (``lift``, step 1): where the body stands and how it is turned.

The rig's shoulders and hips, one rigid body of the rig's own size, are placed so
they come closest to their camera rays (orthogonal iteration, then damped Gauss-Newton). The
rig's size against the performer's apparent size sets the distance from the camera
(``depth_mode="rig_size"``), or the distance is held (``"fixed"``). A flat body has a second,
mirrored reading (tilted or turned the other way in depth); both are solved and a pass over
the frames (``temporal.choose_path``) keeps the sequence that fits, changes least, stands
upright and faces where the face (nose in front of the ears) says.

With learned depth the torso turns as the network reads it (``learned_depth.within_reach``).
``keep_on_ground`` (``LiftOptions.ground``) then shifts the placed body vertically.
"""
from __future__ import annotations

import numpy as np

from .learned_depth import within_reach
from .lift_common import _CONTINUITY, _FIT_WEIGHT, _MIRROR_FIT, _SETTLE_FIT, _same_reading, _to4
from .lift_plan import Group, LiftError
from .rays import fit_rigid, mirrored_start, plane_normal
from .rotations import kabsch, normalize
from .temporal import choose_path, pick, smooth, smooth_rotations, step_costs

_UPRIGHT = 0.5
_FACING = 2.0


class TorsoStep:
    """Placing the torso (and keeping it on the ground): methods of ``lift._Solver``, which
    holds the state they use (plan, camera, options, observations, poser, stats)."""

    def solve_torso(self, group: Group) -> None:
        camera, frames = self.camera, self.frames
        model_rest = np.stack([a.rest for a in group.points])
        centre_rest = model_rest.mean(axis=0)
        model = np.broadcast_to(model_rest - centre_rest, (frames,) + model_rest.shape)
        observed = [self.absolute(a.point) for a in group.points]
        if sum(o is not None for o in observed) < 3:
            raise LiftError("the keypoints never show three of the shoulders and hips: nothing to place the body by")
        xy = np.stack([o[0] if o is not None else np.zeros((frames, 2)) for o in observed], 1)
        weights = np.stack([o[1] if o is not None else np.zeros(frames) for o in observed], 1)
        origin, direction = camera.rays(xy)

        # Start: the torso flat at the rig's current distance, turned onto the image (Kabsch
        # ignores scale, so that distance need not be right).
        size = float(np.sqrt(np.mean(np.sum((model_rest - centre_rest) ** 2, axis=-1))))
        reference = camera.depth(np.broadcast_to(centre_rest, (frames, 1, 3)))[:, 0]
        reference = np.where(reference > size, reference, 10.0 * size)
        flat = camera.at_depth(xy, reference[:, None])
        flat_centre = (flat * weights[..., None]).sum(1) / weights.sum(1, keepdims=True)
        start = kabsch(model, flat - flat_centre[:, None], weights)

        rotation_a, centre_a, residual_a = fit_rigid(model, origin, direction, weights, start)
        view = camera.rays(camera.project(centre_a[:, None]))[1][:, 0]
        normal = plane_normal(model_rest - centre_rest)
        rotation_b, centre_b, residual_b = fit_rigid(
            model, origin, direction, weights, mirrored_start(rotation_a, view, normal), **_MIRROR_FIT
        )
        same = _same_reading(rotation_a, rotation_b)
        rotation_b = np.where(same[:, None, None], rotation_a, rotation_b)
        centre_b = np.where(same[:, None], centre_a, centre_b)
        residual_b = np.where(same, residual_a, residual_b)
        rotations = np.stack([rotation_a, rotation_b], 1)
        centres = np.stack([centre_a, centre_b], 1)
        up = normalize(np.asarray(self.options.up, dtype=np.float64))
        body_up = rotations @ self.plan.body_frame[:, 1]
        unary = _FIT_WEIGHT * np.stack([residual_a, residual_b], 1) / size**2
        unary = unary + _UPRIGHT * (1.0 - body_up @ up)
        unary = unary + self._facing_cost(rotations, centres, size)
        path = choose_path(unary, step_costs(rotations, **_CONTINUITY))
        rotation, centre = pick(rotations, path), pick(centres, path)
        if self.options.depth_smoothing > 0:
            # A flat torso's turn in depth follows pixel noise wildly: smooth the rotation, then
            # let the rays pull back only what they determine well.
            rotation, centre, _ = fit_rigid(
                model, origin, direction, weights, smooth_rotations(rotation, self.options.depth_smoothing),
                **_SETTLE_FIT,
            )
            # The distance (from the torso's apparent size) is the noisiest part of the fit:
            # smooth it, keeping the torso centre on its pixel.
            centre = self._at_distance(centre, smooth(camera.depth(centre[:, None])[:, 0], self.options.depth_smoothing))

        rotation, centre = self._learned_torso(group, model_rest - centre_rest, rotation, centre)
        distance = camera.depth(centre[:, None])[:, 0]
        if self.options.depth_mode == "fixed":
            held = self.options.fixed_depth
            if held is None:
                held = float(camera.depth(centre_rest[None, None].repeat(frames, 0))[0, 0])
            if held <= 0:
                raise LiftError("a fixed distance must be in front of the camera")
            centre = self._at_distance(centre, np.full(frames, held))
            # The rig now looks smaller or larger than the performer: scale the video's offsets.
            self.scale = np.where(camera.perspective, distance / held, 1.0)
            distance = camera.depth(centre[:, None])[:, 0]
        self.stats.torso_distance = distance
        self.torso_rotation = rotation
        self._torso = (rotation, centre - np.einsum("fij,j->fi", rotation, centre_rest))
        self._set_torso_basis(group.driver)

    def _learned_torso(self, group: Group, model: np.ndarray, rotation, centre):
        """With learned depth: the torso turned as the network reads it, the rays' fit moving
        it at most ``retarget.learned_depth.TORSO_SAYS`` (a rig of another build tilts in depth to
        match the performer's proportions otherwise), about its centre, which stays on its
        pixel."""
        depth = self.options.learned_depth
        names = [self.plan.layout.points[a.point] for a in group.points]
        learned = None if depth is None else depth.group_rotation(names, model, self.camera.to_camera)
        if learned is None:
            return rotation, centre
        return within_reach(rotation, learned), centre

    def _at_distance(self, points, distance) -> np.ndarray:
        """Armature-space points (F, 3) moved along their lines of sight (so they stay on their
        pixels) to ``distance`` (F,) in front of the camera."""
        to_cam = self.camera.to_camera
        in_camera = np.einsum("fij,fj->fi", to_cam[:, :3, :3], points) + to_cam[:, :3, 3]
        perspective = self.camera.perspective
        factor = np.where(perspective, distance / np.maximum(-in_camera[:, 2], 1e-12), 1.0)
        moved = in_camera * factor[:, None]
        moved[:, 2] = np.where(perspective, moved[:, 2], -distance)
        back = np.linalg.inv(to_cam)
        return np.einsum("fij,fj->fi", back[:, :3, :3], moved) + back[:, :3, 3]

    def _facing_cost(self, rotations, centres, size: float) -> np.ndarray:
        """Seen from the side, the torso's four points cannot tell facing left from facing
        right (the two readings face apart); the face can: the nose is in front of the ears.
        Costs (F, 2) for a reading whose forward axis points away from the video's ear -> nose
        direction, counted only where the readings face apart (the torso turned more than 45
        degrees from the camera, so a turned head does not flip the cue)."""
        layout = self.plan.layout
        nose = layout.find("nose")
        ears = [i for i in (layout.find("l_ear"), layout.find("r_ear")) if i is not None]
        if nose is None or not ears:
            return 0.0
        seen = self.present[:, ears]
        ear_xy = (self.xy[:, ears] * seen[..., None]).sum(1) / np.maximum(seen.sum(1), 1)[:, None]
        usable = self.present[:, nose] & seen.any(1)
        face = normalize(self.xy[:, nose] - ear_xy)
        forward = rotations @ self.plan.body_frame[:, 2]  # (F, 2, 3)
        apart = np.maximum(-np.sum(forward[:, 0] * forward[:, 1], axis=-1), 0.0)
        tip = normalize(self.camera.project(centres + forward * size) - self.camera.project(centres))
        against = np.maximum(-np.einsum("fki,fi->fk", tip, face), 0.0)
        return _FACING * np.where(usable, apart, 0.0)[:, None] * against

    def _set_torso_basis(self, root: int) -> None:
        rotation, translation = self._torso
        unposed = self.poser.unposed(root)
        moved = _to4(rotation, translation) @ unposed
        self.poser.set_basis(root, np.linalg.inv(unposed) @ moved)

    def keep_on_ground(self) -> None:
        """Shift the whole body vertically so the lowest foot point stays at rest ground height."""
        plan, poser = self.plan, self.poser
        if not plan.foot_bones:
            self.stats.skipped.append("ground")
            return
        up = normalize(np.asarray(self.options.up, dtype=np.float64))
        skeleton = plan.skeleton
        rest_points = np.concatenate([skeleton.heads()[plan.foot_bones], skeleton.tails()[plan.foot_bones]])
        ground = float(np.min(rest_points @ up))
        lowest = np.full(self.frames, np.inf)
        for b in plan.foot_bones:
            m = poser.pose(b)
            tail = m[:, :3, 3] + m[:, :3, 1] * skeleton.lengths[b]
            lowest = np.minimum(lowest, np.minimum(m[:, :3, 3] @ up, tail @ up))
        rotation, translation = self._torso
        self._torso = (rotation, translation + (ground - lowest)[:, None] * up)
        self._set_torso_basis(plan.root)
