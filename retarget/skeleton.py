"""A rig's bone hierarchy without Blender: rest pose, forward kinematics, and where each
keypoint of a rig map rides on it.

Matrices are in *armature space* (the armature object's own frame), like Blender's
``Bone.matrix_local`` (rest) and ``PoseBone.matrix`` (pose). Forward kinematics follows
Blender's default bone settings (inherit rotation and scale, local location)::

    pose[b] = pose[parent] @ inv(rest[parent]) @ rest[b] @ basis[b]      (root: rest[b] @ basis[b])

where ``basis`` is ``PoseBone.matrix_basis`` (location, rotation, scale keyed by the animator).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..pose.layouts import Layout
from ..pose.rigmap import RigMap, bind, rest_keypoints

# A keypoint at a bone's head is fixed in the bone's *parent* (rotating the bone never moves
# its head); anything further along is fixed in the bone itself.
_AT_HEAD = 1e-9


@dataclass(frozen=True)
class Anchor:
    """Where a keypoint sits on the rig: rigidly attached to bone ``carrier``."""

    point: int  # index in the layout
    carrier: int  # bone index
    local: np.ndarray  # (3,) position in the carrier's rest frame
    rest: np.ndarray  # (3,) armature-space position in the rest pose


@dataclass
class RigSkeleton:
    names: list[str]
    parents: np.ndarray  # (bones,) int, -1 for a root
    rest: np.ndarray  # (bones, 4, 4) rest matrices in armature space (Bone.matrix_local)
    lengths: np.ndarray  # (bones,) rest lengths
    _children: list[list[int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.parents = np.asarray(self.parents, dtype=np.int64).reshape(-1)
        self.rest = np.asarray(self.rest, dtype=np.float64)
        self.lengths = np.asarray(self.lengths, dtype=np.float64).reshape(-1)
        count = len(self.names)
        if self.parents.shape != (count,) or self.rest.shape != (count, 4, 4) or self.lengths.shape != (count,):
            raise ValueError(
                f"{count} bones need parents ({count},), rest ({count}, 4, 4) and lengths ({count},); "
                f"got {self.parents.shape}, {self.rest.shape}, {self.lengths.shape}"
            )
        self._children = [[] for _ in range(count)]
        for bone, parent in enumerate(self.parents):
            if parent >= 0:
                self._children[parent].append(bone)
        self._index = {name: i for i, name in enumerate(self.names)}
        # rest[parent]^-1 @ rest[b]: the bone's rest transform relative to its parent.
        relative = self.rest.copy()
        has_parent = self.parents >= 0
        relative[has_parent] = np.linalg.inv(self.rest[self.parents[has_parent]]) @ self.rest[has_parent]
        self.rest_relative = relative

    @classmethod
    def from_parent_names(cls, names, parent_names, rest, lengths) -> "RigSkeleton":
        index = {name: i for i, name in enumerate(names)}
        parents = [index[p] if p is not None else -1 for p in parent_names]
        return cls(list(names), parents, rest, lengths)

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self._index[name]

    def children(self, bone: int) -> list[int]:
        return self._children[bone]

    def ancestors(self, bone: int) -> list[int]:
        """``bone``, its parent, ... up to its root."""
        chain = []
        while bone >= 0:
            chain.append(bone)
            bone = int(self.parents[bone])
        return chain

    def is_ancestor(self, ancestor: int, bone: int) -> bool:
        """True when ``ancestor`` is ``bone`` or above it."""
        return ancestor in self.ancestors(bone)

    def lowest_common_ancestor(self, bones) -> int:
        """The lowest bone above (or equal to) all ``bones``; -1 when they share no root."""
        bones = list(bones)
        common = self.ancestors(bones[0])
        for bone in bones[1:]:
            above = set(self.ancestors(bone))
            common = [b for b in common if b in above]
        return common[0] if common else -1

    def child_towards(self, ancestor: int, bone: int) -> int:
        """The child of ``ancestor`` on the way down to ``bone`` (a strict descendant), or -1."""
        chain = self.ancestors(bone)
        if ancestor not in chain[1:]:
            return -1
        return chain[chain.index(ancestor) - 1]

    def subtree(self, bone: int) -> list[int]:
        out, stack = [], [bone]
        while stack:
            b = stack.pop()
            out.append(b)
            stack.extend(self._children[b])
        return out

    def heads(self) -> np.ndarray:
        return self.rest[:, :3, 3]

    def tails(self) -> np.ndarray:
        return self.rest[:, :3, 3] + self.rest[:, :3, 1] * self.lengths[:, None]

    def topological_order(self) -> list[int]:
        """Parents before children."""
        order = [b for b in range(len(self)) if self.parents[b] < 0]
        for b in order:  # grows while iterating
            order.extend(self._children[b])
        return order

    def forward(self, basis) -> np.ndarray:
        """Pose matrices (frames, bones, 4, 4) from basis matrices (frames, bones, 4, 4)."""
        basis = np.asarray(basis, dtype=np.float64)
        pose = np.empty_like(basis)
        for b in self.topological_order():
            parent = self.parents[b]
            local = self.rest_relative[b] @ basis[:, b]
            pose[:, b] = local if parent < 0 else pose[:, parent] @ local
        return pose

    # --- keypoints on the rig ----------------------------------------------------------------
    def anchors(self, rigmap: RigMap, layout: Layout) -> dict[int, Anchor]:
        """Every keypoint the map places, with the bone that carries it rigidly.

        A keypoint made of several bone points (a midpoint, an average) is carried by the lowest
        bone above all of them; that is exact when the bones between are at rest relative to it,
        which the lift keeps so (it rotates only the bones it solves).
        """
        binding = bind(rigmap, self.names, self.lengths, None, layout)
        rest_points, present = rest_keypoints(rigmap, self.names, self.rest, self.lengths, layout)
        anchors: dict[int, Anchor] = {}
        for p in np.flatnonzero(binding.placed & present):
            terms = np.flatnonzero(binding.weights[p])
            carriers = []
            for t in terms:
                bone = int(binding.bone_index[t])
                at_head = np.linalg.norm(binding.local[t, :3]) < _AT_HEAD
                parent = int(self.parents[bone])
                carriers.append(parent if at_head and parent >= 0 else bone)
            carrier = self.lowest_common_ancestor(carriers)
            if carrier < 0:
                continue
            rest = rest_points[p]
            local = np.linalg.inv(self.rest[carrier]) @ np.append(rest, 1.0)
            anchors[int(p)] = Anchor(int(p), carrier, local[:3], rest)
        return anchors


class Posing:
    """Forward kinematics for a clip, bone by bone: poses are computed when asked for and
    forgotten below a bone whose basis changes, so a solver can set bones parent first."""

    def __init__(self, skeleton, frames: int):
        self.skeleton = skeleton
        self.frames = frames
        self.basis: dict[int, np.ndarray] = {}
        self._pose: dict[int, np.ndarray] = {}
        self._unposed: dict[int, np.ndarray] = {}

    def unposed(self, bone: int) -> np.ndarray:
        """(F, 4, 4) armature-space matrix of ``bone`` with its own basis at identity."""
        cached = self._unposed.get(bone)
        if cached is None:
            parent = self.skeleton.parents[bone]
            local = self.skeleton.rest_relative[bone]
            if parent < 0:
                cached = np.broadcast_to(local, (self.frames, 4, 4))
            else:
                cached = self.pose(parent) @ local
            self._unposed[bone] = cached
        return cached

    def pose(self, bone: int) -> np.ndarray:
        cached = self._pose.get(bone)
        if cached is None:
            cached = self.unposed(bone)
            if bone in self.basis:
                cached = cached @ self.basis[bone]
            self._pose[bone] = cached
        return cached

    def set_basis(self, bone: int, basis: np.ndarray) -> None:
        self.basis[bone] = basis
        for below in self.skeleton.subtree(bone):
            self._pose.pop(below, None)
            if below != bone:
                self._unposed.pop(below, None)

    def point(self, anchor) -> np.ndarray:
        m = self.pose(anchor.carrier)
        return m[:, :3, :3] @ anchor.local + m[:, :3, 3]
