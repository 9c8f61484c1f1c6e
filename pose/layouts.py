"""Keypoint layouts as data: which points, in which order, grouped in which parts.

A layout names every point, so converting between layouts (BODY_25 to COCO-18, DWPose-133 to
OpenPose parts, ...) is a lookup by name, and the drawing and projection code never hard-code
another layout's indices.

Point names follow one convention: ``l_``/``r_`` prefixes are the *person's* left and right,
hands are ``<side>_hand_<finger>_<n>``, face landmarks ``face_<i>`` in the iBUG-68 order.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Part:
    """A named run of consecutive points inside a layout (for example the left hand)."""

    name: str
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Layout:
    """An ordered list of point names, split in parts, with the edges that connect them."""

    name: str
    points: tuple[str, ...]
    parts: tuple[Part, ...]
    # Pairs of point indices drawn as limbs/bones; indices are into ``points``.
    edges: tuple[tuple[int, int], ...] = ()

    def __len__(self) -> int:
        return len(self.points)

    def index(self, point: str) -> int:
        return self._index[point]

    def find(self, point: str) -> int | None:
        """The index of ``point``, or None when this layout has no such point."""
        return self._index.get(point)

    def part(self, name: str) -> Part:
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(f"layout {self.name!r} has no part {name!r}")

    def has_part(self, name: str) -> bool:
        return any(part.name == name for part in self.parts)

    @property
    def _index(self) -> dict[str, int]:
        # Cached on first use; frozen dataclasses cannot assign attributes normally.
        cache = self.__dict__.get("_index_cache")
        if cache is None:
            cache = {name: i for i, name in enumerate(self.points)}
            object.__setattr__(self, "_index_cache", cache)
        return cache


def concat(name: str, *layouts: tuple[str, Layout]) -> Layout:
    """Join layouts end to end; each ``(part_name, layout)`` becomes one part.

    Point names are prefixed where the same layout appears twice (hands) so every name stays
    unique: the hand layout's names already carry no side, so ``l_``/``r_`` is added.
    """
    points: list[str] = []
    parts: list[Part] = []
    edges: list[tuple[int, int]] = []
    for part_name, layout in layouts:
        offset = len(points)
        prefix = {"hand_left": "l_", "hand_right": "r_"}.get(part_name, "")
        points.extend(prefix + p for p in layout.points)
        parts.append(Part(part_name, offset, len(points)))
        edges.extend((a + offset, b + offset) for a, b in layout.edges)
    return Layout(name, tuple(points), tuple(parts), tuple(edges))


# --- OpenPose COCO-18: the body layout ControlNet's openpose models were trained on. ---------
COCO18 = Layout(
    "coco18",
    (
        "nose", "neck",
        "r_shoulder", "r_elbow", "r_wrist",
        "l_shoulder", "l_elbow", "l_wrist",
        "r_hip", "r_knee", "r_ankle",
        "l_hip", "l_knee", "l_ankle",
        "r_eye", "l_eye", "r_ear", "l_ear",
    ),
    (Part("body", 0, 18),),
    # OpenPose's limb order; the first 17 are drawn, the last two (ear-shoulder) are not.
    edges=(
        (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
        (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
        (2, 16), (5, 17),
    ),
)

# --- 21-point hand: wrist, then four joints per finger from the palm outwards. ---------------
_FINGERS = ("thumb", "index", "middle", "ring", "pinky")
HAND21 = Layout(
    "hand21",
    ("hand_wrist",) + tuple(f"hand_{f}_{n}" for f in _FINGERS for n in range(1, 5)),
    (Part("hand", 0, 21),),
    tuple(
        pair
        for f in range(5)
        for pair in ((0, 1 + 4 * f), (1 + 4 * f, 2 + 4 * f), (2 + 4 * f, 3 + 4 * f), (3 + 4 * f, 4 + 4 * f))
    ),
)

# --- Face: iBUG 68 landmarks; OpenPose's 70 adds the right then the left pupil. --------------
FACE68 = Layout("face68", tuple(f"face_{i}" for i in range(68)), (Part("face", 0, 68),))
FACE70 = Layout(
    "face70", FACE68.points + ("r_pupil", "l_pupil"), (Part("face", 0, 70),)
)

# --- What ControlNet's openpose preprocessors draw: body, both hands, face. ------------------
OPENPOSE_FULL = concat(
    "openpose_full",
    ("body", COCO18),
    ("hand_left", HAND21),
    ("hand_right", HAND21),
    ("face", FACE70),
)
OPENPOSE_BODY = concat("openpose_body", ("body", COCO18))


def _pairs(
    points: tuple[str, ...], names: tuple[tuple[str, str], ...]
) -> tuple[tuple[int, int], ...]:
    """Edges written by point name (readable, checked) and stored as indices."""
    index = {name: i for i, name in enumerate(points)}
    return tuple((index[a], index[b]) for a, b in names)


def _body(name: str, points: tuple[str, ...], limbs: tuple[tuple[str, str], ...]) -> Layout:
    return Layout(name, points, (Part("body", 0, len(points)),), _pairs(points, limbs))


def _add_edges(layout: Layout, limbs: tuple[tuple[str, str], ...]) -> Layout:
    return replace(layout, edges=layout.edges + _pairs(layout.points, limbs))


# --- Detector layouts: what keypoint files come in (video import). ---------------------------
_FOOT_POINTS = ("l_big_toe", "l_small_toe", "l_heel", "r_big_toe", "r_small_toe", "r_heel")
_FOOT_LIMBS = (
    ("l_ankle", "l_big_toe"), ("l_big_toe", "l_small_toe"), ("l_ankle", "l_heel"),
    ("r_ankle", "r_big_toe"), ("r_big_toe", "r_small_toe"), ("r_ankle", "r_heel"),
)
FEET6 = Layout("feet6", _FOOT_POINTS, (Part("feet", 0, 6),))

# COCO-17 (MS COCO, and the body of COCO-WholeBody / DWPose): no neck.
_COCO17_LIMBS = (
    ("l_ankle", "l_knee"), ("l_knee", "l_hip"), ("r_ankle", "r_knee"), ("r_knee", "r_hip"),
    ("l_hip", "r_hip"), ("l_shoulder", "l_hip"), ("r_shoulder", "r_hip"),
    ("l_shoulder", "r_shoulder"), ("l_shoulder", "l_elbow"), ("r_shoulder", "r_elbow"),
    ("l_elbow", "l_wrist"), ("r_elbow", "r_wrist"), ("l_eye", "r_eye"), ("nose", "l_eye"),
    ("nose", "r_eye"), ("l_eye", "l_ear"), ("r_eye", "r_ear"), ("l_ear", "l_shoulder"),
    ("r_ear", "r_shoulder"),
)
COCO17 = _body(
    "coco17",
    (
        "nose", "l_eye", "r_eye", "l_ear", "r_ear",
        "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist",
        "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
    ),
    _COCO17_LIMBS,
)

# OpenPose BODY_25 (the OpenPose program's default model): COCO-18's order with mid_hip at 8
# and the six foot points at the end.
BODY25 = _body(
    "body25",
    (
        "nose", "neck",
        "r_shoulder", "r_elbow", "r_wrist",
        "l_shoulder", "l_elbow", "l_wrist",
        "mid_hip",
        "r_hip", "r_knee", "r_ankle",
        "l_hip", "l_knee", "l_ankle",
        "r_eye", "l_eye", "r_ear", "l_ear",
    ) + _FOOT_POINTS,
    (
        ("neck", "mid_hip"), ("neck", "r_shoulder"), ("neck", "l_shoulder"),
        ("r_shoulder", "r_elbow"), ("r_elbow", "r_wrist"), ("l_shoulder", "l_elbow"),
        ("l_elbow", "l_wrist"), ("mid_hip", "r_hip"), ("r_hip", "r_knee"), ("r_knee", "r_ankle"),
        ("mid_hip", "l_hip"), ("l_hip", "l_knee"), ("l_knee", "l_ankle"), ("neck", "nose"),
        ("nose", "r_eye"), ("r_eye", "r_ear"), ("nose", "l_eye"), ("l_eye", "l_ear"),
    ) + _FOOT_LIMBS,
)

# OpenPose BODY_25B (experimental model, used by Pose2Sim): COCO-17's order, then neck, head
# top and the six foot points.
BODY25B = _body(
    "body25b",
    COCO17.points + ("neck", "head_top") + _FOOT_POINTS,
    _COCO17_LIMBS
    + (("neck", "l_shoulder"), ("neck", "r_shoulder"), ("neck", "head_top"))
    + _FOOT_LIMBS,
)

# COCO-17 body plus COCO-WholeBody's six foot points (23: RTMPose/DWPose body+feet exports).
COCO17_FEET = _add_edges(concat("coco17_feet", ("body", COCO17), ("feet", FEET6)), _FOOT_LIMBS)

# DWPose / COCO-WholeBody 133: 17 body, 6 feet, 68 face, 21 left hand, 21 right hand.
DWPOSE133 = _add_edges(
    concat(
        "dwpose133",
        ("body", COCO17), ("feet", FEET6), ("face", FACE68),
        ("hand_left", HAND21), ("hand_right", HAND21),
    ),
    _FOOT_LIMBS,
)

# --- The layout video import works in: everything OPENPOSE_FULL has, at the same indices (so
# drawing and the OpenPose/ComfyUI writers take it as it is), plus what the richer body layouts
# add, appended as one more part.
BODY_EXTRA_POINTS = ("mid_hip", "head_top") + _FOOT_POINTS
IMPORT = _add_edges(
    Layout(
        "import",
        OPENPOSE_FULL.points + BODY_EXTRA_POINTS,
        OPENPOSE_FULL.parts
        + (Part("body_extra", len(OPENPOSE_FULL), len(OPENPOSE_FULL) + len(BODY_EXTRA_POINTS)),),
        OPENPOSE_FULL.edges,
    ),
    _FOOT_LIMBS,
)

LAYOUTS = {
    layout.name: layout
    for layout in (
        OPENPOSE_FULL, OPENPOSE_BODY,
        COCO18, COCO17, COCO17_FEET, BODY25, BODY25B, DWPOSE133, IMPORT,
    )
}


def by_name(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        known = ", ".join(sorted(LAYOUTS))
        raise KeyError(f"unknown keypoint layout {name!r} (known: {known})") from None


# --- Which body layout a file's point count means. -------------------------------------------
BODY_LAYOUTS_BY_COUNT = {
    17: (COCO17,),
    18: (COCO18,),
    23: (COCO17_FEET,),
    25: (BODY25, BODY25B),
    133: (DWPOSE133,),
}
# 25 points the data cannot settle (no person with the points the test needs) are read as
# BODY_25, the OpenPose program's default model; BODY_25B is its experimental one.
BODY25_DEFAULT = BODY25
# A reading fits when its "midway" points sit within this fraction of the person's size of
# where they should be (on the real pose2sim clip the true reading scores 0.03, the other 0.24).
BODY25_FIT = 0.08

# The points that must lie midway between two others in each 25-point reading:
# (point, one end, other end) as indices of that layout.
_MIDWAY_CHECKS = {
    "body25": ((1, 2, 5), (8, 9, 12)),  # neck between the shoulders, mid_hip between the hips
    "body25b": ((17, 5, 6), (0, 1, 2)),  # neck between the shoulders, nose between the eyes
}


def body_layouts_for_count(count: int) -> tuple[Layout, ...]:
    """The body layouts with ``count`` points (two for 25), or () when none has."""
    return BODY_LAYOUTS_BY_COUNT.get(int(count), ())


def body25_scores(samples: np.ndarray) -> dict[str, float]:
    """How well each 25-point reading fits people's points, lower is better, nan = no evidence.

    ``samples`` is (..., 25, 3) x, y, confidence (confidence <= 0 = absent). For each reading,
    the median distance of its midway points (see ``_MIDWAY_CHECKS``) from the midpoint they
    should sit on, over every person where all three are present, relative to that person's
    size (the larger side of the box around their present points); the two checks averaged.
    """
    people = np.asarray(samples, np.float64).reshape(-1, 25, 3)
    present = people[..., 2] > 0
    people = people[present.sum(axis=1) >= 2]
    present = people[..., 2] > 0
    if not len(people):
        return {name: float("nan") for name in _MIDWAY_CHECKS}
    xy = people[..., :2]
    low = np.where(present[..., None], xy, np.inf).min(axis=1)
    high = np.where(present[..., None], xy, -np.inf).max(axis=1)
    size = (high - low).max(axis=1)
    scores = {}
    for name, checks in _MIDWAY_CHECKS.items():
        medians = []
        for a, b, c in checks:
            valid = present[:, a] & present[:, b] & present[:, c] & (size > 0)
            if valid.any():
                offset = xy[valid, a] - 0.5 * (xy[valid, b] + xy[valid, c])
                medians.append(float(np.median(np.hypot(offset[:, 0], offset[:, 1]) / size[valid])))
        scores[name] = float(np.mean(medians)) if medians else float("nan")
    return scores


def pick_body_layout(count: int, samples=None, choice=None) -> tuple[Layout, str]:
    """The body layout for bodies of ``count`` points, and a sentence saying why.

    ``choice`` (a layout or its name; None or ``"auto"`` to decide) is taken when its point
    count matches. 25 points are BODY_25 or BODY_25B: decided from ``samples`` (people's points,
    see ``body25_scores``) when one reading fits, else ``BODY25_DEFAULT``.
    Raises ValueError for a count no layout has or a choice that does not match.
    """
    candidates = body_layouts_for_count(count)
    if choice is not None and choice != "auto":
        try:
            layout = choice if isinstance(choice, Layout) else by_name(choice)
        except KeyError as error:
            raise ValueError(error.args[0]) from None
        if len(layout) != count:
            raise ValueError(
                f"layout {layout.name!r} has {len(layout)} points, the bodies have {count}"
            )
        return layout, f"{layout.name} (chosen)"
    if not candidates:
        known = ", ".join(str(n) for n in sorted(BODY_LAYOUTS_BY_COUNT))
        raise ValueError(f"no known body layout has {count} points (known counts: {known})")
    if len(candidates) == 1:
        return candidates[0], f"{candidates[0].name} ({count} points)"
    scores = body25_scores(samples) if samples is not None else {}
    fitting = {name: s for name, s in scores.items() if s <= BODY25_FIT}  # nan never fits
    figures = ", ".join(f"{name} {s:.3f}" for name, s in scores.items())
    if fitting:
        name = min(fitting, key=fitting.get)
        return LAYOUTS[name], f"{name} (25 points; midway-point fit {figures})"
    why = f"midway-point fit {figures}" if scores else "no points to test"
    return BODY25_DEFAULT, f"{BODY25_DEFAULT.name} (25 points, undecided: {why}; the default)"
