"""The lift's limbs (``lift``, step 2), one level of the plan's segments at a time, parent
before child.

The child joint lies at the rig's bone length from its 3-D
parent joint, on the camera ray through the pixel the video puts it at *relative to its
parent* (the parent's projection plus the video's parent -> child offset), so the image
direction of every limb is the video's even where the rig's proportions differ. The two
intersections (towards / away from the camera) are settled by a pass over the frames that
prefers continuity, joint limits (knees bend backwards, elbows forwards, legs cross the
midline little and reach back little), the reading nearer the rig's rest pose, and what a
reading leaves possible for the next joint. A ray that misses (the limb looks longer than
the rig's) gives the sphere point nearest the ray: the limb lies across the line of sight,
pointing where the image points. A limb kind that looks longer than the rig's in much of
the clip (the performer's forearms are longer) has its depth read against the performer's
length found over the clip; the rig's length is then laid along that direction.

With learned depth (``learned_depth``) the network's depth angle of each arm and leg sets the
limb along the video's image direction instead (``_learned_direction``).

Each driver bone turns by the smallest rotation taking its rest direction onto the solved one;
the upper arm and thigh then turn about their own axis so the elbow and knee bend on their
hinge (``_align_hinge``).
"""
from __future__ import annotations

import numpy as np

from .learned_depth import camera_rotation, fused_angle, length_scale
from .lift_common import _CONTINUITY, _FILLED_WEIGHT, _to4
from .lift_plan import Segment
from .rays import closest_on_ray, ray_sphere
from .rotations import axis_angle_matrix, normalize, swing
from .temporal import choose_path, pick, smooth, step_costs

_LIMIT_WEIGHT = {"knee": 4.0, "elbow": 0.5, "thigh": 2.0, "upper_arm": 1.0, "finger": 1.0}
_REST_WEIGHT = 0.1  # distance from the direction the bone has at rest
_REACH_WEIGHT = 10.0  # the next joint's ray out of reach, in that bone's lengths
# How far the upper limb may turn about its axis to bend the elbow or knee on its hinge.
_MAX_TWIST = {"elbow": np.radians(120.0), "knee": np.radians(60.0)}
# Limb depth is smoothed where its two readings lie closer than about this many limb lengths.
_SMOOTH_APART = 0.3
# A limb kind is read against a longer performer limb when the 95th percentile over the clip
# of the length it needs to reach its ray exceeds the rig's by 2% (at most twice the rig's).
_CALIBRATION_PERCENTILE = 95.0
_CALIBRATION_MARGIN = 1.02
_CALIBRATION_MAX = 2.0


class LimbStep:
    """Solving the limbs and fingers, level by level: methods of ``lift._Solver``, which holds
    the state they use (plan, camera, options, observations, poser, stats, the torso's
    rotation and the rig's scale in the image)."""

    def solve_level(self, level: list[Segment]) -> None:
        prepared = []
        for seg in level:
            offset = self.offset(seg.start.point, seg.end.point)
            if offset is None:
                if seg.limit != "finger":  # a hand without keypoints is reported once, as the hand
                    self.stats.skipped.append(f"{seg.side}_{seg.kind}")
                continue
            start = self.poser.point(seg.start)
            unposed = self.poser.unposed(seg.driver)
            head = unposed[:, :3, 3]
            target = self.camera.project(start[:, None])[:, 0] + self.scale[:, None] * offset[0]
            origin, direction = self.camera.rays(target[:, None])
            origin, direction = origin[:, 0], direction[:, 0]
            ratio = np.linalg.norm(closest_on_ray(head, origin, direction) - head, axis=-1) / seg.length
            prepared.append((seg, offset[1], start, unposed, head, origin, direction, ratio))

        scales = {}
        for kind in {p[0].kind for p in prepared}:
            ratios = np.concatenate([p[7][p[1]] for p in prepared if p[0].kind == kind])
            scale = 1.0
            if self.options.calibrate_lengths and ratios.size >= 3:
                high = float(np.percentile(ratios, _CALIBRATION_PERCENTILE))
                if high > _CALIBRATION_MARGIN:
                    scale = min(high, _CALIBRATION_MAX)
            scales[kind] = scale
            self.stats.length_scale[kind] = scale

        depth = self.options.learned_depth
        learned = [None if depth is None else depth.limb(p[0].side, p[0].kind) for p in prepared]
        # The plane each learned limb turns in: through its start and the ray its end projects onto.
        planes = [None if angle is None else self._image_frame(p[4], p[5], p[6]) for p, angle in zip(prepared, learned)]
        # The network's angles are out of the image plane (square to the camera's axis); the
        # plane turns about the line of sight through the limb's start: the same limb there.
        axis = -camera_rotation(self.camera.to_camera)[:, 2]  # away from the camera
        learned = [None if angle is None else self._about_sight(plane, angle, axis) for angle, plane in zip(learned, planes)]
        learned_scales = self._learned_length_scales(prepared, learned, planes)
        for (seg, seen, start, unposed, head, origin, direction, ratio), angle, plane in zip(prepared, learned, planes):
            radius = seg.length * scales[seg.kind]
            near, far, hit = ray_sphere(head, radius, origin, direction)
            key = f"{seg.side}_{seg.kind}"
            self.stats.missed[key] = float(np.mean(~hit[seen])) if seen.any() else 0.0
            if angle is not None:
                # The network reads the limb's depth; the image keeps its direction. The geometric
                # choice is needed only where the limb points along the line of sight.
                direction_chosen = self._learned_direction(seg, plane, head, origin, direction, angle,
                                                           learned_scales.get(seg.kind))
                has_plane = plane[2]
                if not has_plane.all():
                    geometric = self._geometric_choice(seg, start, unposed, head, near, far)
                    direction_chosen = np.where(has_plane[:, None], direction_chosen, geometric)
            else:
                direction_chosen = self._geometric_choice(seg, start, unposed, head, near, far)
                if self.options.depth_smoothing > 0:
                    apart = np.linalg.norm(far - near, axis=-1) / seg.length
                    direction_chosen = self._smooth_depth(direction_chosen, head, origin, direction, apart)
            # A skipped upper limb (its points never seen) stays at rest: no twist to align.
            if seg.parent_segment is not None and seg.hinge is not None and seg.parent_segment.driver in self.poser.basis:
                self._align_hinge(seg, direction_chosen)
                unposed = self.poser.unposed(seg.driver)
            local = np.einsum("fji,fj->fi", unposed[:, :3, :3], direction_chosen)
            self.poser.set_basis(seg.driver, _to4(swing(seg.rest_direction, local)))

    def _geometric_choice(self, seg, start, unposed, head, near, far) -> np.ndarray:
        """Of the two readings (``near``, ``far``: the ray's points at the bone's length) the one
        (F, 3 unit direction) a pass over the frames keeps: joint limits, nearness to the rest
        pose, what it leaves the next joint, continuity."""
        candidates = normalize(np.stack([near, far], 1) - head[:, None])  # (F, 2, 3)
        unary = self._limit_cost(seg, candidates)
        # Of two equally good readings prefer the one nearer the rig's rest pose (a leg
        # swinging forwards, not swinging forwards and out to the side).
        at_rest = np.einsum("fij,j->fi", unposed[:, :3, :3], seg.rest_direction)
        unary = unary + _REST_WEIGHT * (1.0 - np.einsum("fki,fi->fk", candidates, at_rest))
        if seg.limit == "finger":
            path = np.argmin(unary, axis=1)  # small bones: the joint limit alone decides
        else:
            unary = unary + self._lookahead_cost(seg, start, unposed, head, candidates)
            parent = self.poser.pose(int(self.plan.skeleton.parents[seg.driver]))[:, :3, :3]
            in_parent = np.einsum("fji,fkj->fki", parent, candidates)  # R^T u per candidate
            path = choose_path(unary, step_costs(in_parent, **_CONTINUITY))
        return pick(candidates, path)

    def _learned_length_scales(self, prepared, learned, planes) -> dict[str, float]:
        """Per limb kind with learned depth angles (``learned``, per prepared limb, and its
        ``planes``): the performer's length over the rig's
        (``retarget.learned_depth.length_scale``, both sides pooled)."""
        pooled: dict[str, list] = {}
        for (seg, seen, _, _, head, origin, direction, _), angle, plane in zip(prepared, learned, planes):
            if angle is not None:
                reach = self._reach_at_angle(plane, head, origin, direction, angle) / seg.length
                pooled.setdefault(seg.kind, []).append((reach[seen], angle[seen]))
        out = {}
        for kind, parts in pooled.items():
            scale = length_scale(np.concatenate([r for r, _ in parts]), np.concatenate([a for _, a in parts]))
            if scale is not None:
                out[kind] = scale
                self.stats.length_scale[kind] = scale
        return out

    def _image_frame(self, head, origin, direction):
        """Unit vectors (F, 3) spanning the plane through a limb's start ``head`` and the ray
        its end must project onto: ``across`` (towards that ray, square to the line of sight)
        and ``sight`` (the line of sight through the start, away from the camera); and where
        that plane exists (F,) (not where the limb points along the line of sight)."""
        _, sight = self.camera.rays(self.camera.project(head[:, None]))
        sight = sight[:, 0]
        across = closest_on_ray(head, origin, direction) - head
        across = across - sight * np.sum(across * sight, -1, keepdims=True)
        length = np.linalg.norm(across, axis=-1, keepdims=True)
        return across / np.maximum(length, 1e-12), sight, length[:, 0] > 1e-9

    @staticmethod
    def _about_sight(plane, angle, axis) -> np.ndarray:
        """(F,) ``angle`` (out of the image plane, + away) as the angle in ``plane`` from its
        ``across`` towards its ``sight``: the direction in the plane whose component along the
        camera's axis (``axis``, (F, 3), away from the camera) is sin(angle), of the two the nearer
        to ``angle``. Off the image's centre
        the line of sight leans from the axis, and so would a limb turned by the bare angle."""
        across, sight, _ = plane
        a, b = np.sum(across * axis, -1), np.sum(sight * axis, -1)
        size = np.hypot(a, b)
        turn = np.arctan2(b, a)
        spread = np.arccos(np.clip(np.sin(angle) / np.maximum(size, 1e-12), -1.0, 1.0))
        roots = (np.stack([turn + spread, turn - spread]) + np.pi) % (2 * np.pi) - np.pi
        # Only a limb that points the image's way (cos > 0) keeps the video's image direction.
        miss = np.where(np.abs(roots) <= np.pi / 2, np.abs(roots - angle), np.inf)
        best = np.take_along_axis(roots, np.argmin(miss, axis=0)[None], 0)[0]
        return np.where(np.isfinite(miss.min(axis=0)), best, angle)

    @staticmethod
    def _reach_at_angle(plane, head, origin, direction, angle) -> np.ndarray:
        """(F,) how long a limb from ``head`` at ``angle`` out of the image plane must be to end
        on its ray (``plane``: its ``_image_frame``): the two lines meet in that plane."""
        across, sight, _ = plane
        limb = np.cos(angle)[:, None] * across + np.sin(angle)[:, None] * sight
        normal = np.cross(limb, direction)
        return np.sum(np.cross(origin - head, direction) * normal, -1) / np.maximum(np.sum(normal**2, -1), 1e-12)

    @staticmethod
    def _learned_direction(seg, plane, head, origin, direction, angle, scale) -> np.ndarray:
        """The limb's direction (F, 3): at the network's ``angle`` (F,) out of the image plane
        (+ away from the camera), its size fused with the performer's length ``scale`` (rig
        lengths; ``retarget.learned_depth.fused_angle``), along the video's image direction: in
        ``plane`` (``_image_frame``) through the limb's start and its end's ray, so the image
        direction is the video's. Meaningless where the plane does not exist (the caller keeps
        the geometric choice there)."""
        across, sight, _ = plane
        if scale is not None:
            near, far, _ = ray_sphere(head, seg.length * scale, origin, direction)
            readings = [np.arcsin(np.clip(np.sum(normalize(end - head) * sight, -1), -1.0, 1.0)) for end in (near, far)]
            angle = fused_angle(angle, *readings)
        return normalize(np.cos(angle)[:, None] * across + np.sin(angle)[:, None] * sight)

    def _smooth_depth(self, chosen, head, origin, direction, apart) -> np.ndarray:
        """Smooth a limb's depth over frames where the image hardly determines it.

        Where the limb lies nearly across the line of sight its two readings merge (``apart``,
        their distance in limb lengths, is small): a pixel of noise swings the depth widely,
        while changing the depth barely moves the joint in the image. There the smoothed
        direction replaces the solved one; elsewhere the solved one stays (the joint on its
        pixel). Either way it is put back in the plane through the joint and its ray, so the
        image direction is the video's.
        """
        smoothed = normalize(smooth(chosen, self.options.depth_smoothing))
        share = np.exp(-((apart / _SMOOTH_APART) ** 2))[:, None]
        blended = normalize(chosen + share * (smoothed - chosen))
        across = np.cross(direction, origin - head)
        size = np.linalg.norm(across, axis=-1, keepdims=True)
        normal = across / np.maximum(size, 1e-12)
        inplane = normalize(blended - normal * np.sum(blended * normal, -1, keepdims=True))
        keep = (size[:, 0] > 1e-9) & (np.sum(inplane * chosen, -1) > 0.5)
        return np.where(keep[:, None], inplane, chosen)

    def _align_hinge(self, seg: Segment, lower: np.ndarray) -> None:
        """Turn the upper limb about its own axis so the elbow or knee bends on its hinge.

        The shortest swing leaves the upper arm's twist arbitrary, and the forearm would then
        bend sideways in the arm's frame (a skinned elbow folds badly). The upper limb turns so
        its rest bend axis lies across the plane of the two limbs; the elbow or knee stays put
        (the axis runs through it). Faded out as the limb straightens, where the plane is
        undefined, and beyond ``_MAX_TWIST`` (the humerus and femur turn only so far)."""
        parent = seg.parent_segment
        basis = self.poser.basis[parent.driver]
        rotation = self.poser.pose(parent.driver)[:, :3, :3]
        upper = rotation @ parent.rest_direction
        hinge = rotation @ seg.hinge
        hinge = normalize(hinge - upper * np.sum(hinge * upper, -1, keepdims=True))
        normal = np.cross(upper, lower)
        bent = np.linalg.norm(normal, axis=-1)
        target = normal / np.maximum(bent, 1e-12)[:, None]
        angle = np.arctan2(np.sum(np.cross(hinge, target) * upper, -1), np.sum(hinge * target, -1))
        # Beyond the limit the limb bends the wrong way round: fade the turn out towards half a
        # turn instead of clipping it, so it never jumps where the angle wraps around.
        limit = _MAX_TWIST[seg.limit]
        fade = np.clip((np.pi - np.abs(angle)) / (np.pi - limit), 0.0, 1.0)
        angle = angle * fade * np.clip((bent - 0.05) / 0.2, 0.0, 1.0)
        twist = axis_angle_matrix(parent.rest_direction, angle)
        turned = basis.copy()
        turned[:, :3, :3] = basis[:, :3, :3] @ twist
        self.poser.set_basis(parent.driver, turned)

    def _lookahead_cost(self, seg: Segment, start, unposed, head, candidates) -> np.ndarray:
        """What each candidate (F, 2, 3) costs the next joint: the wrong branch of a knee often
        leaves the ankle's ray out of reach, or reachable only by bending the knee backwards."""
        cost = np.zeros(candidates.shape[:2])
        skeleton = self.plan.skeleton
        ends = head[:, None] + candidates * seg.length
        for child in self.plan.children_of(seg):
            offset = self.offset(child.start.point, child.end.point)
            if offset is None or skeleton.parents[child.driver] != seg.driver:
                continue
            # Both candidates sit on one ray, so they project to the same pixel.
            target = self.camera.project(ends[:, :1])[:, 0] + self.scale[:, None] * offset[0]
            origin, direction = self.camera.rays(target[:, None])
            origin, direction = origin[:, 0], direction[:, 0]
            trust = np.where(offset[1], 1.0, _FILLED_WEIGHT)
            frame = unposed[:, :3, :3]
            for k in (0, 1):
                local = np.einsum("fji,fj->fi", frame, candidates[:, k])
                pose = unposed @ _to4(swing(seg.rest_direction, local))
                child_head = (pose @ skeleton.rest_relative[child.driver])[:, :3, 3]
                near, far, _ = ray_sphere(child_head, child.length, origin, direction)
                gap = np.linalg.norm(closest_on_ray(child_head, origin, direction) - child_head, axis=-1)
                excess = np.maximum(gap / child.length - 1.0, 0.0)
                child_candidates = normalize(np.stack([near, far], 1) - child_head[:, None])
                upper = normalize(ends[:, k] - start)
                limit = self._limit_cost(child, child_candidates, upper, pose[:, :3, :3]).min(axis=1)
                cost[:, k] += trust * (limit + _REACH_WEIGHT * excess**2)
        return cost

    def _limit_cost(self, seg: Segment, candidates, upper=None, parent_rotation=None) -> np.ndarray:
        """Joint-limit cost (F, 2) of each candidate direction. Elbows and knees need the upper
        limb's direction and its bone's rotation (the solved ones unless given)."""
        weight = _LIMIT_WEIGHT.get(seg.limit, 0.0)
        if seg.limit in ("upper_arm", "thigh"):
            # Arms reach back less than about 35 degrees, legs about 20.
            forward = self.torso_rotation @ self.plan.body_frame[:, 2]
            allowed = 0.6 if seg.limit == "upper_arm" else 0.35
            back = -np.einsum("fki,fi->fk", candidates, forward) - allowed
            cost = weight * np.maximum(back, 0.0) ** 2
            if seg.limit == "thigh":
                # Legs cross the body's midline little (about 10 degrees).
                inward = self.torso_rotation @ self.plan.body_frame[:, 0] * (-1.0 if seg.side == "l" else 1.0)
                across = np.einsum("fki,fi->fk", candidates, inward) - 0.17
                cost = cost + weight * np.maximum(across, 0.0) ** 2
            return cost
        if seg.limit in ("elbow", "knee") and seg.parent_segment is not None and seg.hinge is not None:
            parent = seg.parent_segment
            if upper is None:
                upper = normalize(self.poser.point(seg.start) - self.poser.point(parent.start))
                parent_rotation = self.poser.pose(parent.driver)[:, :3, :3]
            hinge = parent_rotation @ seg.hinge
            bend = np.einsum("fki,fi->fk", np.cross(upper[:, None], candidates), hinge)
            return weight * np.maximum(-bend, 0.0) ** 2
        if seg.limit == "finger" and seg.palm is not None:
            back = self.poser.pose(seg.hand_driver)[:, :3, :3] @ seg.palm
            return weight * np.maximum(np.einsum("fki,fi->fk", candidates, back), 0.0) ** 2
        return np.zeros(candidates.shape[:2])
