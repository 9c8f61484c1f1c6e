"""Rig maps: which bones give which keypoint, as data, and their vectorised evaluation.

One formula places every point. A *term* is a point fixed to one bone; a *recipe* is a weighted
sum of terms; a keypoint has one or more recipes, tried in order (the first whose bones all exist
is used), so a preset can say "the eye bone if the rig has one, else the head bone's template"::

    keypoint = sum_i w_i * (M_i @ [(local_i + R_i^T C offset_i) * L_i, 1])

- ``M_i``: bone i's pose matrix in world space (4x4; Blender's convention: the bone's Y axis runs
  from head to tail), ``L_i`` its rest length.
- ``local_i``: a point in bone space in bone lengths: (0, 0, 0) is the head, (0, 1, 0) the tail.
- ``offset_i``: a point in the *rig frame* of the bone, also in bone lengths: x = the character's
  left, y = up, z = forward (where the face looks), as the rig stands in its rest pose. Bone rolls
  differ from rig to rig (FBX and BVH imports give arbitrary ones), so offsets that must point
  "forward" or "up" (the face template, inner lips) are written in this frame and turned into bone
  space once, from the rest pose: ``R_i`` is the bone's rest rotation, ``C`` the rig's body frame
  (left = left shoulder minus right shoulder, up = shoulders minus hips, forward = left x up),
  both in armature space. Without rest matrices the rig frame is taken to be the bone frame,
  which is exact for a bone pointing straight up with roll 0 (a typical head bone: bone X = left,
  bone Z = forward for a rig facing -Y).
- ``w_i``: weights, normalised to sum 1.

The point a map cannot place is absent (``present`` False, its xyz 0), never put at the origin
as if it were real.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from .layouts import OPENPOSE_FULL, Layout

Vec3 = tuple[float, float, float]
_ZERO: Vec3 = (0.0, 0.0, 0.0)
_BODY_FRAME_POINTS = ("l_shoulder", "r_shoulder", "l_hip", "r_hip")


@dataclass(frozen=True)
class Term:
    """A point fixed to one bone: ``local`` in bone space, ``offset`` in the rig frame."""

    bone: str
    local: Vec3 = _ZERO
    weight: float = 1.0
    offset: Vec3 = _ZERO

    def __post_init__(self) -> None:
        object.__setattr__(self, "local", _vec3(self.local, "local"))
        object.__setattr__(self, "offset", _vec3(self.offset, "offset"))
        object.__setattr__(self, "weight", float(self.weight))
        if not self.bone:
            raise ValueError("a term needs a bone name")


Recipe = tuple[Term, ...]


def head(bone: str) -> Recipe:
    return (Term(bone),)


def tail(bone: str) -> Recipe:
    return (Term(bone, (0.0, 1.0, 0.0)),)


def along(bone: str, t: float, weight: float = 1.0, offset: Vec3 = _ZERO) -> Term:
    """The point a fraction ``t`` of the way from the bone's head (0) to its tail (1)."""
    return Term(bone, (0.0, float(t), 0.0), weight, offset)


def midpoint(*recipes: Recipe) -> Recipe:
    """The average of several recipes (for example the neck: between the shoulders)."""
    share = 1.0 / len(recipes)
    return tuple(
        Term(t.bone, t.local, t.weight * share, t.offset) for recipe in recipes for t in recipe
    )


@dataclass(frozen=True)
class RigMap:
    """Keypoint name -> recipes (alternatives, first usable wins). ``name`` labels the map."""

    name: str
    points: Mapping[str, tuple[Recipe, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clean: dict[str, tuple[Recipe, ...]] = {}
        for point, recipes in self.points.items():
            recipes = tuple(tuple(recipe) for recipe in recipes)
            if not recipes or any(not recipe for recipe in recipes):
                raise ValueError(f"keypoint {point!r} needs at least one non-empty recipe")
            clean[str(point)] = recipes
        object.__setattr__(self, "points", clean)

    def bones(self) -> set[str]:
        """Every bone any recipe mentions."""
        return {t.bone for recipes in self.points.values() for recipe in recipes for t in recipe}

    def overridden(self, other: "RigMap", name: str | None = None) -> "RigMap":
        """This map with ``other``'s keypoints replacing (or adding to) its own."""
        return RigMap(name or f"{self.name}+{other.name}", {**self.points, **other.points})

    def placeable(self, bone_names: Iterable[str]) -> set[str]:
        """Keypoints this map can place on a rig with these bones."""
        have = set(bone_names)
        return {
            point
            for point, recipes in self.points.items()
            if any(all(t.bone in have for t in recipe) for recipe in recipes)
        }

    # --- plain data (for JSON and for the .blend's PropertyGroup) -----------------------------
    def to_data(self) -> dict:
        """JSON-safe dict: ``{"name", "points": {kp: [[{bone, local, weight, offset}, ...], ...]}}``."""
        return {
            "name": self.name,
            "points": {
                point: [[_term_to_data(t) for t in recipe] for recipe in recipes]
                for point, recipes in self.points.items()
            },
        }

    @classmethod
    def from_data(cls, data: Mapping) -> "RigMap":
        points = {
            point: tuple(tuple(_term_from_data(t) for t in recipe) for recipe in recipes)
            for point, recipes in data["points"].items()
        }
        return cls(str(data.get("name", "custom")), points)

    def to_rows(self) -> list[tuple]:
        """One flat row per term: (keypoint, alternative, bone, lx, ly, lz, weight, ox, oy, oz).

        The shape of a Blender CollectionProperty of simple items.
        """
        return [
            (point, alt, t.bone, *t.local, t.weight, *t.offset)
            for point, recipes in self.points.items()
            for alt, recipe in enumerate(recipes)
            for t in recipe
        ]

    @classmethod
    def from_rows(cls, rows: Iterable[Sequence], name: str = "custom") -> "RigMap":
        grouped: dict[str, dict[int, list[Term]]] = {}
        for point, alt, bone, lx, ly, lz, weight, ox, oy, oz in rows:
            grouped.setdefault(point, {}).setdefault(int(alt), []).append(
                Term(bone, (lx, ly, lz), weight, (ox, oy, oz))
            )
        points = {
            point: tuple(tuple(alts[k]) for k in sorted(alts)) for point, alts in grouped.items()
        }
        return cls(name, points)


def custom_map(spec: Mapping, name: str = "custom", layout: Layout = OPENPOSE_FULL) -> RigMap:
    """A map from a user's plain dict. Each value is one of:

    - ``("bone", "head")`` or ``("bone", "tail")``;
    - a list of terms, each ``(bone, (x, y, z), weight)`` or ``(bone, (x, y, z), weight, offset)``
      or a dict with keys bone/local/weight/offset (one recipe);
    - a list of such lists (alternatives, first usable wins).

    Unknown keypoint names are an error (a typo would otherwise silently map nothing).
    """
    points: dict[str, tuple[Recipe, ...]] = {}
    for point, value in spec.items():
        if layout.find(point) is None:
            raise ValueError(f"unknown keypoint {point!r} for layout {layout.name!r}")
        points[point] = _parse_recipes(point, value)
    return RigMap(name, points)


# --- evaluation -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Binding:
    """A map resolved against one rig's bone list: index arrays ready for every frame."""

    layout: Layout
    bone_index: np.ndarray  # (terms,) int: which bone each term reads
    local: np.ndarray  # (terms, 4) homogeneous bone-space point, already scaled by the length
    weights: np.ndarray  # (points, terms) float64: row p sums to 1 when p is placed
    placed: np.ndarray  # (points,) bool

    @property
    def bones_needed(self) -> np.ndarray:
        """Sorted indices of the bones the map reads (to read only those, if that is faster)."""
        return np.unique(self.bone_index)

    def evaluate(self, matrices) -> tuple[np.ndarray, np.ndarray]:
        """``matrices`` (frames, bones, 4, 4) world space -> points (frames, P, 3), present."""
        matrices = np.asarray(matrices, dtype=np.float64)
        if matrices.ndim != 4 or matrices.shape[2:] != (4, 4):
            raise ValueError(f"matrices must be (frames, bones, 4, 4), got {matrices.shape}")
        frames = matrices.shape[0]
        points = np.zeros((frames, len(self.layout), 3))
        if self.bone_index.size:
            gathered = matrices[:, self.bone_index, :3, :]  # (F, T, 3, 4)
            term_points = np.einsum("ftij,tj->fti", gathered, self.local)
            points = np.matmul(self.weights, term_points)  # (P, T) @ (F, T, 3) -> (F, P, 3)
        present = np.broadcast_to(self.placed, (frames, len(self.layout))) & np.isfinite(points).all(-1)
        points[~present] = 0.0
        return points, present


def bind(
    rigmap: RigMap,
    bone_names: Sequence[str],
    lengths,
    rest_matrices=None,
    layout: Layout = OPENPOSE_FULL,
) -> Binding:
    """Resolve ``rigmap`` against a rig: pick each point's recipe, index bones, fold in offsets.

    ``rest_matrices`` (bones, 4, 4) are the bones' rest matrices in armature space (Blender's
    ``Bone.matrix_local``); they turn rig-frame offsets into bone space (see the module doc).
    """
    index = {name: i for i, name in enumerate(bone_names)}
    lengths = np.asarray(lengths, dtype=np.float64).reshape(-1)
    if lengths.shape[0] != len(index):
        raise ValueError(f"{len(index)} bone names but {lengths.shape[0]} lengths")
    rest = None if rest_matrices is None else np.asarray(rest_matrices, dtype=np.float64)
    if rest is not None and rest.shape != (len(index), 4, 4):
        raise ValueError(f"rest matrices must be ({len(index)}, 4, 4), got {rest.shape}")

    if rest is not None:
        rigmap = bake(rigmap, bone_names, lengths, rest)
    chosen = {}
    for p, point in enumerate(layout.points):
        recipe = _choose(rigmap.points.get(point, ()), index)
        if recipe is not None:
            chosen[p] = recipe

    bone_index, local, rows, cols, weights = [], [], [], [], []
    for p, recipe in chosen.items():
        total = sum(t.weight for t in recipe)
        for t in recipe:
            b = index[t.bone]
            # Without rest matrices the rig frame is taken as the bone frame (module doc).
            point = np.asarray(t.local, dtype=np.float64) + np.asarray(t.offset, dtype=np.float64)
            rows.append(p)
            cols.append(len(bone_index))
            weights.append(t.weight / total)
            bone_index.append(b)
            local.append(np.append(point * lengths[b], 1.0))
    weight_matrix = np.zeros((len(layout), len(bone_index)))
    weight_matrix[rows, cols] = weights
    placed = np.zeros(len(layout), bool)
    placed[list(chosen)] = True
    return Binding(
        layout,
        np.asarray(bone_index, dtype=np.intp),
        np.asarray(local, dtype=np.float64).reshape(-1, 4),
        weight_matrix,
        placed,
    )


def bake(rigmap: RigMap, bone_names: Sequence[str], lengths, rest_matrices) -> RigMap:
    """The same map with every rig-frame offset turned into bone space for this rig's rest pose.

    The result needs no rest matrices any more: ``evaluate(baked, names, matrices, lengths)``
    gives what ``evaluate(rigmap, ..., rest_matrices=rest)`` gives. Terms on bones the rig lacks
    are kept as they are (they are never used on this rig).
    """
    index = {name: i for i, name in enumerate(bone_names)}
    lengths = np.asarray(lengths, dtype=np.float64).reshape(-1)
    rest = np.asarray(rest_matrices, dtype=np.float64)
    if rest.shape != (len(index), 4, 4):
        raise ValueError(f"rest matrices must be ({len(index)}, 4, 4), got {rest.shape}")
    body = _body_frame(rigmap, index, lengths, rest)

    def baked(t: Term) -> Term:
        if t.bone not in index or not any(t.offset):
            return t
        rotation = rest[index[t.bone], :3, :3]
        rotation = rotation / np.linalg.norm(rotation, axis=0, keepdims=True)
        local = np.asarray(t.local) + rotation.T @ (body @ np.asarray(t.offset))
        return Term(t.bone, tuple(local), t.weight)

    points = {
        point: tuple(tuple(baked(t) for t in recipe) for recipe in recipes)
        for point, recipes in rigmap.points.items()
    }
    return RigMap(rigmap.name, points)


def evaluate(
    rigmap: RigMap,
    bone_names: Sequence[str],
    matrices,
    lengths,
    rest_matrices=None,
    layout: Layout = OPENPOSE_FULL,
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints of every frame: ``points3d`` (frames, len(layout), 3) world space and
    ``present`` (frames, len(layout)) bool. Vectorised over frames; the binding is cached on the
    map so calling this chunk after chunk costs only the numpy work."""
    binding = _cached_binding(rigmap, bone_names, lengths, rest_matrices, layout)
    return binding.evaluate(matrices)


def rest_keypoints(rigmap: RigMap, bone_names, rest_matrices, lengths, layout: Layout = OPENPOSE_FULL):
    """The keypoints in the rest pose (armature space): handy for checks and previews."""
    rest = np.asarray(rest_matrices, dtype=np.float64)
    points, present = evaluate(rigmap, bone_names, rest[None], lengths, rest, layout)
    return points[0], present[0]


# --- helpers ----------------------------------------------------------------------------------
def _vec3(value, what: str) -> Vec3:
    x, y, z = (float(v) for v in value)
    if not all(np.isfinite((x, y, z))):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return (x, y, z)


def _term_to_data(t: Term) -> dict:
    return {"bone": t.bone, "local": list(t.local), "weight": t.weight, "offset": list(t.offset)}


def _term_from_data(data) -> Term:
    if isinstance(data, Mapping):
        return Term(
            str(data["bone"]),
            data.get("local", _ZERO),
            data.get("weight", 1.0),
            data.get("offset", _ZERO),
        )
    return Term(str(data[0]), *data[1:])


def _is_term(value) -> bool:
    return isinstance(value, Mapping) or (
        isinstance(value, (tuple, list)) and len(value) >= 2 and isinstance(value[0], str)
        and not isinstance(value[1], str)
    )


def _parse_recipes(point: str, value) -> tuple[Recipe, ...]:
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, str) for v in value):
        bone, end = value
        if end not in ("head", "tail"):
            raise ValueError(f"{point!r}: expected 'head' or 'tail', got {end!r}")
        return (head(bone) if end == "head" else tail(bone),)
    if not isinstance(value, (tuple, list)) or not value:
        raise ValueError(f"{point!r}: cannot read map entry {value!r}")
    if all(_is_term(v) for v in value):
        return (tuple(_term_from_data(v) for v in value),)
    return tuple(r for alternative in value for r in _parse_recipes(point, alternative))


def _recipe_rest_position(recipe: Recipe, index, lengths, rest) -> np.ndarray:
    total = sum(t.weight for t in recipe)
    out = np.zeros(3)
    for t in recipe:
        b = index[t.bone]
        out += t.weight / total * (rest[b, :3, :3] @ (np.asarray(t.local) * lengths[b]) + rest[b, :3, 3])
    return out


def _choose(recipes, index) -> Recipe | None:
    """The first recipe whose bones all exist (and whose weights do not cancel out)."""
    for recipe in recipes:
        if all(t.bone in index for t in recipe) and sum(t.weight for t in recipe) != 0.0:
            return recipe
    return None


def _body_frame(rigmap: RigMap, index, lengths, rest) -> np.ndarray:
    """Columns (left, up, forward) of the rig in armature space, from its rest shoulders/hips.

    Falls back to Blender's convention (left +X, up +Z, forward -Y) when the map places no
    shoulders and hips or they are degenerate.
    """
    default = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]]).T
    where = {}
    for name in _BODY_FRAME_POINTS:
        recipe = _choose(rigmap.points.get(name, ()), index)
        if recipe is not None:
            where[name] = _recipe_rest_position(recipe, index, lengths, rest)
    if len(where) < len(_BODY_FRAME_POINTS):
        return default
    left = (where["l_shoulder"] - where["r_shoulder"] + where["l_hip"] - where["r_hip"]) / 2.0
    up = (where["l_shoulder"] + where["r_shoulder"] - where["l_hip"] - where["r_hip"]) / 2.0
    left_len = np.linalg.norm(left)
    if left_len < 1e-9:
        return default
    left = left / left_len
    up = up - left * (up @ left)
    up_len = np.linalg.norm(up)
    if up_len < 1e-9:
        return default
    up = up / up_len
    return np.column_stack([left, up, np.cross(left, up)])


_CACHE_SIZE = 8


def _cached_binding(rigmap, bone_names, lengths, rest, layout) -> Binding:
    lengths = np.asarray(lengths, dtype=np.float64)
    key = (
        tuple(bone_names),
        lengths.tobytes(),
        None if rest is None else np.asarray(rest, dtype=np.float64).tobytes(),
        layout.name,
    )
    cache = rigmap.__dict__.get("_bindings")
    if cache is None:
        cache = {}
        object.__setattr__(rigmap, "_bindings", cache)
    binding = cache.get(key)
    if binding is None:
        if len(cache) >= _CACHE_SIZE:
            cache.pop(next(iter(cache)))
        binding = bind(rigmap, bone_names, lengths, rest, layout)
        cache[key] = binding
    return binding


def detect_preset(bone_names: Sequence[str]) -> RigMap | None:
    """The preset that best fits a rig with these bones (``rigmap_presets`` explains the rules),
    resolved to the rig's actual bone names; None when no preset fits."""
    from .rigmap_presets import detect_preset as _detect

    return _detect(bone_names)
