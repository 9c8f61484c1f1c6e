"""Rig map presets as data, and picking the one that fits a rig's bone names.

OpenPose conventions every preset follows:

- shoulder = upper-arm head, elbow = forearm head, wrist = hand head; hip = thigh head,
  knee = shin head, ankle = foot head (joint centres, where COCO annotators click);
- neck = the midpoint of the two shoulder joints. COCO has no neck point: OpenPose-style
  detectors (and so ControlNet's training maps) output the average of the two shoulders, not a
  neck bone, so that is what the map draws;
- hand (21) = wrist, then four points per finger from the palm out: thumb CMC, MCP, IP, tip;
  other fingers MCP, PIP, DIP, tip;
- the person's left is the rig's ``.L`` / ``Left`` side.

Nose, eyes, ears, pupils and the 68 face landmarks come from face bones where the rig has them
(the Rigify human metarig and its generated rig) and otherwise from the head bone with the
canonical face of ``face_template`` (each face recipe lists the face bones first, the template
second, so a rig missing some face bones still gets those points).

Detection: a preset fits when all its *essential* bones exist, with one name prefix shared by
all of them (``mixamorig:``, ``mixamorig1:``, ``ORG-``, ...; each preset says which prefixes it
allows). Of the fitting presets the one with the most of its known bones present wins (so a CMU
BVH skeleton, which also has Mixamo-style limb names, goes to the CMU preset, whose signature
bones LHipJoint/LowerBack/Neck1 it has), then the earlier preset in ``PRESETS``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from .face_template import template_offsets
from .rigmap import Recipe, RigMap, Term, along, head, midpoint, tail

_SIDES = (("l", "L", "Left"), ("r", "R", "Right"))


# --- building blocks ------------------------------------------------------------------------
def _body(shoulder, elbow, wrist, hip, knee, ankle) -> dict[str, tuple[Recipe, ...]]:
    """COCO body joints from per-side bone-name functions (side letter 'L'/'R' -> bone)."""
    points: dict[str, tuple[Recipe, ...]] = {}
    for p, letter, _ in _SIDES:
        points[f"{p}_shoulder"] = (head(shoulder(letter)),)
        points[f"{p}_elbow"] = (head(elbow(letter)),)
        points[f"{p}_wrist"] = (head(wrist(letter)),)
        points[f"{p}_hand_wrist"] = (head(wrist(letter)),)
        points[f"{p}_hip"] = (head(hip(letter)),)
        points[f"{p}_knee"] = (head(knee(letter)),)
        points[f"{p}_ankle"] = (head(ankle(letter)),)
    points["neck"] = (midpoint(head(shoulder("L")), head(shoulder("R"))),)
    return points


def face_on_head_bone(head_bone: str, scale: float = 1.0, origin=(0.0, 0.0, 0.0)) -> dict[str, Recipe]:
    """The canonical face on ``head_bone``; ``scale`` and ``origin`` (in template units) adapt
    it to a head bone that is not the template's top-of-neck-to-crown bone."""
    return {
        name: (Term(head_bone, offset=tuple(scale * (v + o) for v, o in zip(offset, origin))),)
        for name, offset in template_offsets().items()
    }


def _with_fallback(points: dict[str, tuple[Recipe, ...]], fallback: dict[str, Recipe]) -> None:
    """Append the fallback recipe to each point (adding points that have none yet)."""
    for name, recipe in fallback.items():
        points[name] = points.get(name, ()) + (recipe,)


# --- Rigify human metarig (and its generated rig, whose ORG- bones copy the metarig) -----------
def _rigify_hand(points, p: str, s: str) -> None:
    points[f"{p}_hand_thumb_1"] = (head(f"thumb.01.{s}"),)
    points[f"{p}_hand_thumb_2"] = (head(f"thumb.02.{s}"),)
    points[f"{p}_hand_thumb_3"] = (head(f"thumb.03.{s}"),)
    points[f"{p}_hand_thumb_4"] = (tail(f"thumb.03.{s}"),)
    for finger in ("index", "middle", "ring", "pinky"):
        for n in (1, 2, 3):
            points[f"{p}_hand_{finger}_{n}"] = (head(f"f_{finger}.0{n}.{s}"),)
        points[f"{p}_hand_{finger}_4"] = (tail(f"f_{finger}.03.{s}"),)


def _rigify_face_right() -> dict[str, Recipe]:
    """Face landmarks of the person's right side and the midline on Rigify's face bones.

    Points sit on the bones' axes (``along``: 0 head, 1 tail). The metarig's lip bones trace the
    outer lip contour with the mouth closed; the inner lips are those points moved towards the
    lips' meeting line (a rig-frame offset, about 7 mm on the metarig) so they open with the jaw.
    """
    T = along
    f = {
        # Jaw contour: temple bottom (in front of the ear) -> jaw angle -> chin side -> chin.
        "face_0": (T("jaw.R", 0.0),),
        "face_1": (T("jaw.R", 1 / 3),),
        "face_2": (T("jaw.R", 2 / 3),),
        "face_3": (T("jaw.R.001", 0.0),),
        "face_4": (T("jaw.R.001", 1 / 3),),
        "face_5": (T("jaw.R.001", 2 / 3),),
        "face_6": (T("jaw.R.001", 1.0),),
        "face_7": (T("jaw.R.001", 1.0, 0.5), T("chin", 0.0, 0.5)),
        "face_8": (T("chin", 0.0),),
        # Brow (top brow chain), outer to inner.
        "face_17": (T("brow.T.R.001", 0.0),),
        "face_18": (T("brow.T.R.001", 0.5),),
        "face_19": (T("brow.T.R.002", 0.0),),
        "face_20": (T("brow.T.R.002", 0.5),),
        "face_21": (T("brow.T.R.002", 1.0),),
        # Nose bridge (nose, nose.001 end at the tip) and the nose base.
        "face_27": (T("nose", 0.0),),
        "face_28": (T("nose", 0.4),),
        "face_29": (T("nose", 0.8),),
        "face_30": (T("nose.001", 1.0),),
        "face_31": (T("nose.R.001", 0.0),),
        "face_32": (T("nose.R.001", 0.0, 0.5), T("nose.004", 0.0, 0.5)),
        "face_33": (T("nose.004", 0.0),),
        # Right eye: outer corner, upper lid, inner corner, lower lid.
        "face_36": (T("lid.T.R", 0.0),),
        "face_37": (T("lid.T.R.001", 0.6),),
        "face_38": (T("lid.T.R.003", 0.0),),
        "face_39": (T("lid.B.R", 0.0),),
        "face_40": (T("lid.B.R.001", 0.25),),
        "face_41": (T("lid.B.R.002", 0.36),),
        # Outer lips: corner (upper and lower chains meet), upper lip, lower lip.
        "face_48": (T("lip.T.R.001", 1.0, 0.5), T("lip.B.R.001", 1.0, 0.5)),
        "face_49": (T("lip.T.R.001", 0.2),),
        "face_50": (T("lip.T.R", 0.5),),
        "face_51": (T("lip.T.R", 0.0, 0.5), T("lip.T.L", 0.0, 0.5)),
        "face_57": (T("lip.B.R", 0.0, 0.5), T("lip.B.L", 0.0, 0.5)),
        "face_58": (T("lip.B.R", 0.5),),
        "face_59": (T("lip.B.R.001", 0.25),),
        # Inner lips: just inside the corner, then the lip points moved to the meeting line.
        "face_60": (T("lip.T.R.001", 0.8, 0.5), T("lip.B.R.001", 0.8, 0.5)),
        "face_61": (T("lip.T.R", 0.5, offset=(0.0, -0.3, -0.1)),),
        "face_62": (
            T("lip.T.R", 0.0, 0.5, (0.0, -0.35, -0.1)),
            T("lip.T.L", 0.0, 0.5, (0.0, -0.35, -0.1)),
        ),
        "face_66": (
            T("lip.B.R", 0.0, 0.5, (0.0, 0.33, -0.1)),
            T("lip.B.L", 0.0, 0.5, (0.0, 0.33, -0.1)),
        ),
        "face_67": (T("lip.B.R", 0.5, offset=(0.0, 0.3, -0.1)),),
        # Body points: nose tip, eyes and pupils (the eye bone's tail is the cornea, following
        # the gaze), ears (the centre of the ear's ring of five bones).
        "nose": (T("nose.001", 1.0),),
        "r_eye": (T("eye.R", 1.0),),
        "r_pupil": (T("eye.R", 1.0),),
        "r_ear": tuple(T(b, 0.0, 0.2) for b in ("ear.R", "ear.R.001", "ear.R.002", "ear.R.003", "ear.R.004")),
    }
    return f


def _mirror_bone(name: str) -> str:
    parts = name.split(".")
    return ".".join({"R": "L", "L": "R"}.get(part, part) for part in parts)


def _mirror_recipe(recipe: Recipe) -> Recipe:
    return tuple(
        Term(_mirror_bone(t.bone), t.local, t.weight, (-t.offset[0], t.offset[1], t.offset[2]))
        for t in recipe
    )


def _rigify_face() -> dict[str, Recipe]:
    from .face_template import mirror_point_name

    right = _rigify_face_right()
    face = dict(right)
    for name, recipe in right.items():
        other = mirror_point_name(name)
        if other != name:
            face[other] = _mirror_recipe(recipe)
    return face


def _rigify_points() -> dict[str, tuple[Recipe, ...]]:
    points = _body(
        lambda s: f"upper_arm.{s}", lambda s: f"forearm.{s}", lambda s: f"hand.{s}",
        lambda s: f"thigh.{s}", lambda s: f"shin.{s}", lambda s: f"foot.{s}",
    )
    for p, s, _ in _SIDES:
        _rigify_hand(points, p, s)
    for name, recipe in _rigify_face().items():
        points[name] = (recipe,)
    # spine.006 runs from the top of the neck to the crown: the template's own head bone.
    _with_fallback(points, face_on_head_bone("spine.006"))
    return points


# --- Mixamo (mixamorig:LeftArm ..., with or without the prefix) -------------------------------
def _mixamo_points() -> dict[str, tuple[Recipe, ...]]:
    points = _body(
        lambda s: f"{_side_word(s)}Arm", lambda s: f"{_side_word(s)}ForeArm",
        lambda s: f"{_side_word(s)}Hand", lambda s: f"{_side_word(s)}UpLeg",
        lambda s: f"{_side_word(s)}Leg", lambda s: f"{_side_word(s)}Foot",
    )
    for p, _, side in _SIDES:
        for finger, name in (("thumb", "Thumb"), ("index", "Index"), ("middle", "Middle"),
                             ("ring", "Ring"), ("pinky", "Pinky")):
            bone = f"{side}Hand{name}"
            for n in (1, 2, 3):
                points[f"{p}_hand_{finger}_{n}"] = (head(f"{bone}{n}"),)
            # The tip is the end bone's head; exports that drop end bones end at bone 3's tail.
            points[f"{p}_hand_{finger}_4"] = (head(f"{bone}4"), tail(f"{bone}3"))
        # Eye bones (when the character has them) sit at the eyeball's centre.
        points[f"{p}_eye"] = (head(f"{side}Eye"),)
        points[f"{p}_pupil"] = (head(f"{side}Eye"),)
    # Head runs from the top of the neck to HeadTop_End at the crown, like the template's bone.
    _with_fallback(points, face_on_head_bone("Head"))
    return points


def _side_word(letter: str) -> str:
    return "Left" if letter == "L" else "Right"


# --- CMU mocap as Blender's BVH importer names it (MotionBuilder-friendly conversion) ----------
# CMU's Head bone runs from the top of the neck only to its End Site at about eye level, half
# the template's neck-to-crown bone, hence the template at twice its length.
CMU_HEAD_SCALE = 2.0


def _cmu_points() -> dict[str, tuple[Recipe, ...]]:
    points = _body(
        lambda s: f"{_side_word(s)}Arm", lambda s: f"{_side_word(s)}ForeArm",
        lambda s: f"{_side_word(s)}Hand", lambda s: f"{_side_word(s)}UpLeg",
        lambda s: f"{_side_word(s)}Leg", lambda s: f"{_side_word(s)}Foot",
    )
    # CMU captured no fingers (LeftFingerBase/LeftHandIndex1/LThumb are noise): wrist only.
    _with_fallback(points, face_on_head_bone("Head", CMU_HEAD_SCALE))
    return points


# --- the preset table -----------------------------------------------------------------------
@dataclass(frozen=True)
class Preset:
    id: str
    label: str
    essential: tuple[str, ...]  # all must exist (with the prefix)
    signature: tuple[str, ...]  # counted in the score besides the bones the map uses
    make_points: Callable[[], dict[str, tuple[Recipe, ...]]]
    prefixes: tuple[str, ...] | None  # allowed prefixes; None = any prefix
    anchor: str  # a bone whose name reveals the prefix

    def points(self) -> dict[str, tuple[Recipe, ...]]:
        cache = self.__dict__.get("_points")
        if cache is None:
            cache = self.make_points()
            object.__setattr__(self, "_points", cache)
        return cache

    def known_bones(self) -> set[str]:
        bones = {t.bone for recipes in self.points().values() for r in recipes for t in r}
        return bones | set(self.essential) | set(self.signature)

    def resolve(self, prefix: str = "") -> RigMap:
        """The preset's map for bones named ``prefix + name``."""
        points = {
            name: tuple(
                tuple(Term(prefix + t.bone, t.local, t.weight, t.offset) for t in recipe)
                for recipe in recipes
            )
            for name, recipes in self.points().items()
        }
        return RigMap(self.id, points)


def _limbs(arm, forearm, hand, thigh, shin, foot) -> tuple[str, ...]:
    return tuple(f(s) for s in ("L", "R") for f in (arm, forearm, hand, thigh, shin, foot))


_RIGIFY_LIMBS = _limbs(
    lambda s: f"upper_arm.{s}", lambda s: f"forearm.{s}", lambda s: f"hand.{s}",
    lambda s: f"thigh.{s}", lambda s: f"shin.{s}", lambda s: f"foot.{s}",
)
_MIXAMO_LIMBS = _limbs(
    lambda s: f"{_side_word(s)}Arm", lambda s: f"{_side_word(s)}ForeArm",
    lambda s: f"{_side_word(s)}Hand", lambda s: f"{_side_word(s)}UpLeg",
    lambda s: f"{_side_word(s)}Leg", lambda s: f"{_side_word(s)}Foot",
)

PRESETS: tuple[Preset, ...] = (
    Preset(
        "rigify_metarig", "Rigify metarig", _RIGIFY_LIMBS + ("spine.006",), ("spine", "spine.004"),
        _rigify_points, ("",), "forearm.L",
    ),
    Preset(
        "rigify_generated", "Rigify generated rig (ORG- bones)", _RIGIFY_LIMBS + ("spine.006",),
        ("spine", "spine.004"), _rigify_points, ("ORG-",), "forearm.L",
    ),
    Preset(
        "mixamo", "Mixamo", _MIXAMO_LIMBS + ("Head",),
        ("Hips", "Spine", "Spine1", "Spine2", "Neck", "HeadTop_End", "LeftShoulder", "RightShoulder"),
        _mixamo_points, None, "LeftForeArm",
    ),
    Preset(
        "cmu_bvh", "CMU mocap (BVH import)", _MIXAMO_LIMBS + ("Head", "LHipJoint", "RHipJoint"),
        ("Hips", "LowerBack", "Spine", "Spine1", "Neck", "Neck1", "LeftShoulder", "RightShoulder",
         "LeftFingerBase", "RightFingerBase", "LThumb", "RThumb", "LeftToeBase", "RightToeBase"),
        _cmu_points, None, "LeftForeArm",
    ),
)
PRESETS_BY_ID = {preset.id: preset for preset in PRESETS}


@dataclass(frozen=True)
class Detection:
    preset: Preset
    prefix: str
    score: int  # known bones present
    rigmap: RigMap


def fit(preset: Preset, bone_names: Iterable[str]) -> Detection | None:
    """``preset`` resolved against these bones, or None when its essential bones are missing."""
    names = set(bone_names)
    prefixes = {n[: -len(preset.anchor)] for n in names if n.endswith(preset.anchor)}
    if preset.prefixes is not None:
        prefixes &= set(preset.prefixes)
    best = None
    known = preset.known_bones()
    for prefix in sorted(prefixes, key=len):
        if not all(prefix + bone in names for bone in preset.essential):
            continue
        score = sum(prefix + bone in names for bone in known)
        if best is None or score > best[1]:
            best = (prefix, score)
    if best is None:
        return None
    return Detection(preset, best[0], best[1], preset.resolve(best[0]))


def detect(bone_names: Sequence[str]) -> Detection | None:
    """The best-fitting preset (see the module doc), or None when none fits."""
    best = None
    for order, preset in enumerate(PRESETS):
        found = fit(preset, bone_names)
        if found is not None and (best is None or found.score > best[0].score):
            best = (found, order)
    return None if best is None else best[0]


def detect_preset(bone_names: Sequence[str]) -> RigMap | None:
    found = detect(bone_names)
    return None if found is None else found.rigmap
