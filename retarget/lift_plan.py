"""Which bones the lift turns to follow which keypoints: a plan made once per rig and rig map.

The plan has three kinds of steps, solved in this order:

- the **torso** group (shoulders and hips): the lowest bone above all four (the hips bone of
  common rigs) gets a rotation and a location, as one rigid body with the rig's own dimensions;
- **segments** A -> B (shoulder -> elbow, elbow -> wrist, hip -> knee, knee -> ankle, finger
  joints): the *driver* is the bone just below the bone carrying A on the way to the bone
  carrying B (the upper arm for shoulder -> elbow), turned about its head so B follows the image;
- rigid **groups** turned about their driver's head: each hand (finger bases around the wrist)
  and the head (nose, eyes, ears).

Nothing here is specific to one rig: drivers come from where the rig map puts the keypoints,
so every preset and custom map that places the points gets a plan. A step whose bones do not
form a chain on this rig (or would move points solved before it) is left out, and those bones
stay at rest relative to their parents.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..pose.layouts import Layout
from ..pose.rigmap import RigMap
from .rotations import normalize
from .skeleton import Anchor, RigSkeleton

SIDES = ("l", "r")
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
TORSO_POINTS = ("l_shoulder", "r_shoulder", "l_hip", "r_hip")
FACE_POINTS = ("nose", "l_eye", "r_eye", "l_ear", "r_ear")
# (from, to, kind, limit) per side; ``kind`` pairs the two sides' segments for calibration.
LIMBS_1 = (("shoulder", "elbow", "upper_arm", "upper_arm"), ("hip", "knee", "thigh", "thigh"))
LIMBS_2 = (("elbow", "wrist", "forearm", "elbow"), ("knee", "ankle", "shin", "knee"))


class LiftError(ValueError):
    """The rig or the keypoints cannot be lifted; the message says why."""


@dataclass(frozen=True)
class Segment:
    kind: str  # shared by the left and right segment ("upper_arm", "index_2", ...)
    side: str
    start: Anchor  # A
    end: Anchor  # B
    driver: int  # the bone turned
    length: float  # rest distance from the driver's head to B (kept exactly)
    rest_direction: np.ndarray  # (3,) unit, head -> B in the driver's rest frame
    limit: str  # "upper_arm", "thigh", "elbow", "knee", "finger"
    parent_segment: "Segment | None" = None  # for elbows/knees: the segment ending at A
    hinge: np.ndarray | None = None  # elbows/knees: the bend axis in the parent driver's frame
    palm: np.ndarray | None = None  # fingers: back-of-hand normal in the hand driver's frame
    hand_driver: int = -1


@dataclass(frozen=True)
class Group:
    name: str
    driver: int
    points: tuple[Anchor, ...]
    anchors: tuple[Anchor, ...] = ()  # the rig points the observed offsets hang from
    observed_anchors: tuple[tuple[int, ...], ...] = ()  # per anchor: layout points, first seen wins
    free: bool = False  # the torso: rotation and translation


@dataclass
class LiftPlan:
    skeleton: RigSkeleton
    layout: Layout
    anchors: dict[int, Anchor]
    torso: Group
    limb_levels: list[list[Segment]]
    hands: list[Group]
    finger_levels: list[list[Segment]]  # (a hand pointed by one finger base comes first)
    head: Group | None
    body_frame: np.ndarray  # (3, 3) columns left, up, forward of the rig at rest
    foot_bones: list[int] = field(default_factory=list)

    @property
    def root(self) -> int:
        return self.torso.driver

    def segments(self) -> list[Segment]:
        return [s for level in self.limb_levels + self.finger_levels for s in level]

    def children_of(self, segment: Segment) -> list[Segment]:
        """The segments starting where ``segment`` ends (the forearm after the upper arm)."""
        return [s for s in self.segments() if s.start.point == segment.end.point]

    def drivers(self) -> list[int]:
        """Bones the lift writes, in solving order (parents before children)."""
        out = [self.torso.driver]
        out += [s.driver for level in self.limb_levels for s in level]
        out += [g.driver for g in self.hands]
        out += [s.driver for level in self.finger_levels for s in level]
        if self.head is not None:
            out.append(self.head.driver)
        return out


def plan_lift(skeleton: RigSkeleton, rigmap: RigMap, layout: Layout) -> LiftPlan:
    anchors = skeleton.anchors(rigmap, layout)

    def anchor(name: str) -> Anchor | None:
        index = layout.find(name)
        return None if index is None else anchors.get(index)

    torso_points = [anchor(n) for n in TORSO_POINTS]
    if any(a is None for a in torso_points):
        missing = [n for n, a in zip(TORSO_POINTS, torso_points) if a is None]
        raise LiftError(f"the rig map places no {', '.join(missing)}: the lift needs shoulders and hips")
    root = skeleton.lowest_common_ancestor([a.carrier for a in torso_points])
    if root < 0:
        raise LiftError("the shoulders and hips are not on one bone hierarchy")
    torso = Group("torso", root, tuple(torso_points), free=True)
    frame = _body_frame(*[a.rest for a in torso_points])
    left, up, forward = frame.T

    # Points already placed by earlier steps, whose carriers a later driver must not move.
    fixed: list[int] = [a.carrier for a in torso_points]
    used: set[int] = {root}

    def make_segment(kind, side, a, b, limit, parent=None) -> Segment | None:
        if a is None or b is None:
            return None
        driver = skeleton.child_towards(a.carrier, b.carrier)
        if driver < 0 or driver in used or any(skeleton.is_ancestor(driver, c) for c in fixed):
            return None
        head = skeleton.rest[driver, :3, 3]
        offset = b.rest - head
        length = float(np.linalg.norm(offset))
        if length < 1e-9:
            return None
        rest_rot = skeleton.rest[driver, :3, :3]
        hinge = None
        if limit in ("elbow", "knee") and parent is not None:
            # Elbows bend the hand forwards, knees the foot backwards: the bend axis is
            # perpendicular to the upper limb and that direction, kept in the upper limb's frame.
            upper = normalize(a.rest - parent.start.rest)
            bend = forward if limit == "elbow" else -forward
            axis = np.cross(upper, bend)
            if np.linalg.norm(axis) > 1e-6:
                hinge = skeleton.rest[parent.driver, :3, :3].T @ normalize(axis)
        return Segment(
            kind, side, a, b, driver, length, rest_rot.T @ (offset / length), limit,
            parent if limit in ("elbow", "knee") else None, hinge,
        )

    limb_levels: list[list[Segment]] = []
    by_end: dict[int, Segment] = {}
    for limbs in (LIMBS_1, LIMBS_2):
        level = []
        for side in SIDES:
            for start, end, kind, limit in limbs:
                a, b = anchor(f"{side}_{start}"), anchor(f"{side}_{end}")
                parent = by_end.get(a.point) if a is not None else None
                seg = make_segment(kind, side, a, b, limit, parent)
                if seg is not None:
                    level.append(seg)
        for seg in level:
            used.add(seg.driver)
            fixed.append(seg.end.carrier)
            by_end[seg.end.point] = seg
        limb_levels.append(level)

    hands: list[Group] = []
    hand_segments: list[Segment] = []
    hand_normals: dict[str, tuple[int, np.ndarray]] = {}
    for side in SIDES:
        wrist = anchor(f"{side}_wrist") or anchor(f"{side}_hand_wrist")
        bases = [anchor(f"{side}_hand_{f}_1") for f in FINGERS]
        bases = [b for b in bases if b is not None]
        if wrist is not None and len(bases) == 1:
            # One finger base mapped: at least point the hand at it.
            seg = make_segment("hand", side, wrist, bases[0], "")
            if seg is not None:
                hand_segments.append(seg)
                used.add(seg.driver)
                fixed.append(seg.end.carrier)
            continue
        if wrist is None or len(bases) < 2:
            continue
        top = skeleton.lowest_common_ancestor([b.carrier for b in bases])
        driver = skeleton.child_towards(wrist.carrier, top) if top != wrist.carrier else -1
        if top == wrist.carrier or driver < 0 or driver in used:
            continue
        if any(skeleton.is_ancestor(driver, c) for c in fixed):
            continue
        observed = tuple(i for i in (layout.find(f"{side}_hand_wrist"), layout.find(f"{side}_wrist")) if i is not None)
        hands.append(Group(f"hand_{side}", driver, tuple(bases), (wrist,), (observed,)))
        used.add(driver)
        fixed.extend(b.carrier for b in bases)
        index, pinky = anchor(f"{side}_hand_index_1"), anchor(f"{side}_hand_pinky_1")
        if index is not None and pinky is not None:
            back = np.cross(index.rest - wrist.rest, pinky.rest - wrist.rest)
            back = back if side == "l" else -back  # the right hand is the mirror image
            if np.linalg.norm(back) > 1e-12:
                hand_normals[side] = (driver, skeleton.rest[driver, :3, :3].T @ normalize(back))

    finger_levels: list[list[Segment]] = []
    for n in (1, 2, 3):
        level = []
        for side in SIDES:
            for finger in FINGERS:
                a = anchor(f"{side}_hand_{finger}_{n}")
                b = anchor(f"{side}_hand_{finger}_{n + 1}")
                seg = make_segment(f"{finger}_{n}", side, a, b, "finger")
                if seg is None:
                    continue
                if side in hand_normals:
                    driver, palm = hand_normals[side]
                    seg = replace(seg, palm=palm, hand_driver=driver)
                level.append(seg)
        for seg in level:
            used.add(seg.driver)
            fixed.append(seg.end.carrier)
        finger_levels.append(level)

    head = _head_group(skeleton, anchor, torso_points, used, fixed, layout)
    ankles = [anchor(f"{side}_ankle") for side in SIDES]
    foot_bones = sorted(
        {b for a in ankles if a is not None for b in skeleton.subtree(a.carrier) if b != a.carrier}
    )
    if hand_segments:
        finger_levels.insert(0, hand_segments)
    return LiftPlan(skeleton, layout, anchors, torso, limb_levels, hands, finger_levels, head, frame, foot_bones)


def _head_group(skeleton, anchor, torso_points, used, fixed, layout) -> Group | None:
    points = [a for a in (anchor(n) for n in FACE_POINTS) if a is not None]
    if len(points) < 2:
        return None
    top = skeleton.lowest_common_ancestor([a.carrier for a in points])
    # Climb to the highest bone starting where this one starts: the head bone itself rather
    # than a face-control bone sitting on it (meshes are skinned to the head bone).
    heads = skeleton.heads()
    while top >= 0 and skeleton.parents[top] >= 0 and np.allclose(heads[skeleton.parents[top]], heads[top], atol=1e-6):
        top = int(skeleton.parents[top])
    if top < 0 or top in used or any(skeleton.is_ancestor(top, c) for c in fixed):
        return None
    shoulders = tuple(torso_points[:2])
    observed = tuple((layout.index(n),) for n in TORSO_POINTS[:2])
    return Group("head", top, tuple(points), shoulders, observed)


def _body_frame(l_shoulder, r_shoulder, l_hip, r_hip) -> np.ndarray:
    """Columns (left, up, forward) of the rig at rest, from its shoulders and hips."""
    left = normalize((l_shoulder - r_shoulder) + (l_hip - r_hip))
    up = (l_shoulder + r_shoulder - l_hip - r_hip) / 2.0
    up = normalize(up - left * (up @ left))
    return np.column_stack([left, up, np.cross(left, up)])
