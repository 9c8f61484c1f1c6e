"""The 2-D -> 3-D lift: one person's keypoints, seen through a camera, become rotations of a
rig's bones. The rig keeps its own bone lengths (bones are never scaled); the motion keeps the
video's limb directions.

Per clip, vectorised over frames (``lift_plan`` says which bones follow which points):

1. **Torso**: the rig's shoulders and hips, one rigid body of the rig's own size, are placed so
   they come closest to their camera rays (orthogonal iteration, then damped Gauss-Newton). The
   rig's size against the performer's apparent size sets the distance from the camera
   (``depth_mode="rig_size"``), or the distance is held (``"fixed"``). A flat body has a second,
   mirrored reading (tilted or turned the other way in depth); both are solved and a pass over
   the frames (``temporal.choose_path``) keeps the sequence that fits, changes least, stands
   upright and faces where the face (nose in front of the ears) says.
2. **Limbs**, parent before child: the child joint lies at the rig's bone length from its 3-D
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
3. **Hands and head**: rigid groups (finger bases about the wrist; nose, eyes, ears about the
   head bone) turned to their rays the same way; fingers then follow as limbs.
4. Each driver bone turns by the smallest rotation taking its rest direction onto the solved
   one; the upper arm and thigh then turn about their own axis so the elbow and knee bend on
   their hinge. The torso bone also moves.

What the image hardly shows (a limb's depth where it lies across the line of sight, a flat
torso's turn in depth, its distance) follows pixel noise wildly; ``depth_smoothing`` smooths
those over a few frames without changing any limb's image direction.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .lift_plan import Group, LiftError, LiftPlan, Segment
from .rays import (
    ArmatureCamera,
    closest_on_ray,
    fit_rigid,
    fit_rotation_about,
    mirrored_start,
    plane_normal,
    ray_sphere,
)
from .lift_prior import LearnedDepth, fused_angle, length_scale
from .rotations import axis_angle_matrix, continuous_quats, kabsch, matrix_to_quat, normalize, swing
from .skeleton import Posing
from .temporal import choose_path, interpolate_gaps, pick, smooth, smooth_rotations, step_costs

DEPTH_MODES = ("rig_size", "fixed")

# Costs of the pass that settles towards/away, in squared unit directions. Steps between
# frames cost little up to about 20 degrees and steeply beyond: a limb cannot jump from one
# reading to the other, so a switch happens where the two meet (the limb across the line of
# sight), not wherever the other reading costs a little less for long enough.
_CONTINUITY = {"weight": 1.0, "jump": 0.35, "jump_weight": 100.0}
_LIMIT_WEIGHT = {"knee": 4.0, "elbow": 0.5, "thigh": 2.0, "upper_arm": 1.0, "finger": 1.0}
_REST_WEIGHT = 0.1  # distance from the direction the bone has at rest
_REACH_WEIGHT = 10.0  # the next joint's ray out of reach, in that bone's lengths
_FIT_WEIGHT = 100.0  # ray residual of a rigid group, relative to the group's size squared
_UPRIGHT = 0.5
_FACING = 2.0
_TURN_PRIOR = {"head": 0.2, "hand": 0.05}  # a group turned from its rest pose
# How far the upper limb may turn about its axis to bend the elbow or knee on its hinge.
_MAX_TWIST = {"elbow": np.radians(120.0), "knee": np.radians(60.0)}
# The mirrored reading starts close to its answer (exact for a flat set seen from afar).
_MIRROR_FIT = {"iterations": 3, "rough_steps": 0}
# After smoothing: ridge-damped steps that restore what the rays determine well.
_SETTLE_FIT = {"iterations": 2, "rough_steps": 0, "ridge": 0.05}
# Limb depth is smoothed where its two readings lie closer than about this many limb lengths.
_SMOOTH_APART = 0.3
# A limb kind is read against a longer performer limb when the 95th percentile over the clip
# of the length it needs to reach its ray exceeds the rig's by 2% (at most twice the rig's).
_CALIBRATION_PERCENTILE = 95.0
_CALIBRATION_MARGIN = 1.02
_CALIBRATION_MAX = 2.0
_FILLED_WEIGHT = 0.5  # trust in an interpolated point


@dataclass
class LiftOptions:
    depth_mode: str = "rig_size"
    # "fixed": camera-space distance of the torso centre; None keeps the rig's current distance.
    fixed_depth: float | None = None
    ground: bool = False  # keep the lowest foot point at the rig's rest ground height
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)  # world up, in armature space
    hands: bool = True
    head: bool = True
    calibrate_lengths: bool = True
    # Frames (Gaussian sigma) over which to smooth what the image shows poorly: depth along the
    # limbs and the tilt of torso, hands and head (0: off). Image directions are not smoothed.
    depth_smoothing: float = 2.0
    # The network's depth angles of the arms and legs (pose.lift_prior); None: geometric.
    learned_depth: LearnedDepth | None = None

    def __post_init__(self) -> None:
        if self.depth_mode not in DEPTH_MODES:
            raise ValueError(f"unknown depth mode {self.depth_mode!r} (known: {', '.join(DEPTH_MODES)})")


@dataclass
class LiftStats:
    frames: int = 0
    filled: int = 0  # point-frames interpolated because the keypoint was absent
    missed: dict[str, float] = field(default_factory=dict)  # share of frames a ray missed, per kind
    length_scale: dict[str, float] = field(default_factory=dict)  # performer / rig length used
    skipped: list[str] = field(default_factory=list)  # steps without keypoints, left at rest
    torso_distance: np.ndarray | None = None  # (frames,) camera-space distance of the torso


@dataclass
class LiftResult:
    bones: list[int]  # skeleton indices of the bones written, in solving order
    basis: np.ndarray  # (frames, len(bones), 4, 4) their matrix_basis
    root: int  # the bone that also moves (location)
    stats: LiftStats

    @property
    def rotations(self) -> np.ndarray:
        """(frames, bones, 4) basis quaternions (w, x, y, z), signs continuous over frames."""
        return continuous_quats(matrix_to_quat(self.basis[..., :3, :3]), axis=0)

    @property
    def root_location(self) -> np.ndarray:
        return self.basis[:, self.bones.index(self.root), :3, 3]

    def full_basis(self, bone_count: int) -> np.ndarray:
        """(frames, bone_count, 4, 4): identity for every bone the lift leaves at rest."""
        out = np.broadcast_to(np.eye(4), (self.basis.shape[0], bone_count, 4, 4)).copy()
        out[:, self.bones] = self.basis
        return out


def lift(plan: LiftPlan, keypoints, camera: ArmatureCamera, options: LiftOptions | None = None) -> LiftResult:
    """Lift ``keypoints`` (frames, points, 3) of ``plan.layout`` (x, y in the camera's image
    pixels, confidence; 0 = absent) onto the plan's rig; ``camera`` in armature space."""
    return _Solver(plan, keypoints, camera, options or LiftOptions()).run()


def _same_reading(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where the mirrored start fell back into the first reading's basin (seen face-on, the
    two readings coincide): (F,) bool, within about 3 degrees."""
    return np.sum((a - b) ** 2, axis=(-2, -1)) < 0.01


def _to4(rotation: np.ndarray, translation: np.ndarray | None = None) -> np.ndarray:
    out = np.zeros(rotation.shape[:-2] + (4, 4))
    out[..., :3, :3] = rotation
    out[..., 3, 3] = 1.0
    if translation is not None:
        out[..., :3, 3] = translation
    return out


class _Solver:
    def __init__(self, plan: LiftPlan, keypoints, camera: ArmatureCamera, options: LiftOptions):
        keypoints = np.asarray(keypoints, dtype=np.float64)
        if keypoints.ndim != 3 or keypoints.shape[1:] != (len(plan.layout), 3):
            raise ValueError(
                f"keypoints must be (frames, {len(plan.layout)}, 3) for layout {plan.layout.name!r}, "
                f"got {keypoints.shape}"
            )
        self.frames = keypoints.shape[0]
        if self.frames == 0:
            raise LiftError("the keypoint sequence has no frames")
        if camera.frame_count not in (1, self.frames):
            raise ValueError(f"{camera.frame_count} camera frames for {self.frames} keypoint frames")
        if camera.frame_count == 1 and self.frames > 1:
            camera = ArmatureCamera(
                np.repeat(camera.to_camera, self.frames, 0), np.repeat(camera.projection, self.frames, 0),
                camera.width, camera.height,
            )
        self.plan = plan
        self.camera = camera
        self.options = options
        self.xy = keypoints[..., :2]
        self.present = keypoints[..., 2] > 0
        self.poser = Posing(plan.skeleton, self.frames)
        self.stats = LiftStats(frames=self.frames)
        self.scale = np.ones(self.frames)  # pixels of the rig per pixel of the video
        self.torso_rotation = np.broadcast_to(np.eye(3), (self.frames, 3, 3))
        self._filled_points: set[int] = set()

    # --- observations ---------------------------------------------------------------------
    def absolute(self, point: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(xy (F, 2) with gaps filled, weight (F,)) or None when never seen."""
        seen = self.present[:, point]
        if not seen.any():
            return None
        self._count_filled(point, seen)
        return interpolate_gaps(self.xy[:, point], seen), np.where(seen, 1.0, _FILLED_WEIGHT)

    def offset(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The video's start -> end pixel offset (F, 2), gaps filled, and where both were seen."""
        both = self.present[:, start] & self.present[:, end]
        if not both.any():
            return None
        self._count_filled(end, self.present[:, end])
        return interpolate_gaps(self.xy[:, end] - self.xy[:, start], both), both

    def _count_filled(self, point: int, seen: np.ndarray) -> None:
        if point not in self._filled_points:
            self._filled_points.add(point)
            self.stats.filled += int((~seen).sum())

    # --- steps ------------------------------------------------------------------------------
    def run(self) -> LiftResult:
        plan = self.plan
        self.solve_torso(plan.torso)
        for level in plan.limb_levels:
            self.solve_level(level)
        if self.options.hands:
            for group in plan.hands:
                self.solve_group(group, _TURN_PRIOR["hand"])
            for level in plan.finger_levels:
                self.solve_level(level)
        if self.options.head and plan.head is not None:
            self.solve_group(plan.head, _TURN_PRIOR["head"])
        if self.options.ground:
            self.keep_on_ground()
        bones = [b for b in plan.drivers() if b in self.poser.basis]
        basis = np.stack([np.broadcast_to(self.poser.basis[b], (self.frames, 4, 4)) for b in bones], 1)
        return LiftResult(bones, basis, plan.root, self.stats)

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

        learned_scales = self._learned_length_scales(prepared)
        for seg, seen, start, unposed, head, origin, direction, ratio in prepared:
            radius = seg.length * scales[seg.kind]
            near, far, hit = ray_sphere(head, radius, origin, direction)
            key = f"{seg.side}_{seg.kind}"
            self.stats.missed[key] = float(np.mean(~hit[seen])) if seen.any() else 0.0
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
            direction_chosen = pick(candidates, path)
            depth = self.options.learned_depth
            learned = None if depth is None else depth.limb(seg.side, seg.kind)
            if learned is not None:
                # The network reads the limb's depth; the image keeps its direction.
                direction_chosen = self._learned_direction(
                    seg, direction_chosen, head, origin, direction, learned, learned_scales.get(seg.kind)
                )
            elif self.options.depth_smoothing > 0:
                apart = np.linalg.norm(far - near, axis=-1) / seg.length
                direction_chosen = self._smooth_depth(direction_chosen, head, origin, direction, apart)
            if seg.parent_segment is not None and seg.hinge is not None:
                self._align_hinge(seg, direction_chosen)
                unposed = self.poser.unposed(seg.driver)
            local = np.einsum("fji,fj->fi", unposed[:, :3, :3], direction_chosen)
            self.poser.set_basis(seg.driver, _to4(swing(seg.rest_direction, local)))

    def _learned_length_scales(self, prepared) -> dict[str, float]:
        """Per limb kind with learned depth angles: the performer's length over the rig's
        (``pose.lift_prior.length_scale``, both sides pooled)."""
        depth = self.options.learned_depth
        if depth is None:
            return {}
        pooled: dict[str, list] = {}
        for seg, seen, _, _, head, origin, direction, _ in prepared:
            angle = depth.limb(seg.side, seg.kind)
            if angle is not None:
                reach = self._reach_at_angle(head, origin, direction, angle) / seg.length
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

    def _reach_at_angle(self, head, origin, direction, angle) -> np.ndarray:
        """(F,) how long a limb from ``head`` at ``angle`` out of the image plane must be to end
        on its ray: the two lines meet in the image plane's plane."""
        across, sight, _ = self._image_frame(head, origin, direction)
        limb = np.cos(angle)[:, None] * across + np.sin(angle)[:, None] * sight
        normal = np.cross(limb, direction)
        return np.sum(np.cross(origin - head, direction) * normal, -1) / np.maximum(np.sum(normal**2, -1), 1e-12)

    def _learned_direction(self, seg, chosen, head, origin, direction, angle, scale) -> np.ndarray:
        """The limb's direction (F, 3): at the network's ``angle`` (F,) out of the image plane
        (+ away from the camera), its size fused with the performer's length ``scale`` (rig
        lengths; ``pose.lift_prior.fused_angle``), along the video's image direction: in the
        plane through the limb's start and its end's ray, so the image direction is the
        video's. Where the limb points along the line of sight the geometric ``chosen`` stays."""
        across, sight, has_plane = self._image_frame(head, origin, direction)
        if scale is not None:
            near, far, _ = ray_sphere(head, seg.length * scale, origin, direction)
            readings = [np.arcsin(np.clip(np.sum(normalize(end - head) * sight, -1), -1.0, 1.0)) for end in (near, far)]
            angle = fused_angle(angle, *readings)
        learned = normalize(np.cos(angle)[:, None] * across + np.sin(angle)[:, None] * sight)
        return np.where(has_plane[:, None], learned, chosen)

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
