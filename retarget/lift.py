"""The 2-D -> 3-D lift: one person's keypoints, seen through a camera, become rotations of a
rig's bones. The rig keeps its own bone lengths (bones are never scaled); the motion keeps the
video's limb directions.

Per clip, vectorised over frames (``lift_plan`` says which bones follow which points), each step
in its own module, all of them methods of the one solver here:

1. **Torso** (``lift_torso``): the rig's shoulders and hips, one rigid body of the rig's own
   size, are placed so they come closest to their camera rays; the rig's size against the
   performer's apparent size sets the distance from the camera (``depth_mode="rig_size"``), or
   the distance is held (``"fixed"``).
2. **Limbs** (``lift_limbs``), parent before child: the child joint lies at the rig's bone
   length from its 3-D parent joint, on the camera ray through the pixel the video puts it at
   *relative to its parent*, towards or away from the camera as continuity, joint limits and
   the next joint say.
3. **Hands and head** (``lift_groups``): rigid groups (finger bases about the wrist; nose,
   eyes, ears about the head bone) turned to their rays the same way; fingers then follow as
   limbs.
4. Each driver bone turns by the smallest rotation taking its rest direction onto the solved
   one; the upper arm and thigh then turn about their own axis so the elbow and knee bend on
   their hinge. The torso bone also moves.

What the image hardly shows (a limb's depth where it lies across the line of sight, a flat
torso's turn in depth, its distance) follows pixel noise wildly; ``depth_smoothing`` smooths
those over a few frames without changing any limb's image direction. ``lift_common`` holds what
the steps share.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .learned_depth import LearnedDepth
from .lift_common import _FILLED_WEIGHT
from .lift_groups import _TURN_PRIOR, GroupStep
from .lift_limbs import LimbStep
from .lift_plan import LiftError, LiftPlan
from .lift_torso import TorsoStep
from .rays import ArmatureCamera
from .rotations import continuous_quats, matrix_to_quat
from .skeleton import Posing
from .temporal import interpolate_gaps

DEPTH_MODES = ("rig_size", "fixed")


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
    # The network's depth angles of the arms and legs (retarget.learned_depth); None: geometric.
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


class _Solver(TorsoStep, LimbStep, GroupStep):
    """One clip's lift: the observations and the rig's posing, shared by the steps (their
    methods come from ``lift_torso``, ``lift_limbs`` and ``lift_groups``)."""

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
