"""Which rig map an armature uses: its chosen preset, the detected one, or its custom map.

Blender glue over ``pose.rigmap_presets``: reads the armature's bone names, rest pose and the
``posebridge`` settings saved on the object, and returns a map baked for that rig's rest pose
(so the face template faces the way the rig faces, whatever its bone rolls).
"""
from __future__ import annotations

from ..pose import rigmap_presets
from ..pose.rigmap import RigMap, custom_map, midpoint
from . import joints

AUTO = "AUTO"
CUSTOM = "CUSTOM"

# The .blend stores an enum choice by number: each preset keeps its number forever, so a file
# saved with one choice loads with the same one whatever presets are added later.
_ENUM_NUMBERS = {AUTO: 0, "rigify_metarig": 1, "rigify_generated": 2, "mixamo": 3, "cmu_bvh": 4, CUSTOM: 100}
_ENUM_ITEMS = (
    [(AUTO, "Auto", "Use the preset that fits the bone names", _ENUM_NUMBERS[AUTO])]
    + [(p.id, p.label, f"The {p.label} bone names", _ENUM_NUMBERS[p.id]) for p in rigmap_presets.PRESETS]
    + [(CUSTOM, "Custom", "Your own keypoint-to-bone map, saved in the .blend", _ENUM_NUMBERS[CUSTOM])]
)


class NoRigMap(ValueError):
    """No map fits this armature; the message says why."""


def preset_enum_items():
    return _ENUM_ITEMS


def _settings(obj):
    return getattr(obj, "posebridge", None)


def is_included(obj) -> bool:
    settings = _settings(obj)
    return settings is None or settings.include


def chosen_preset(obj) -> str:
    settings = _settings(obj)
    return settings.preset if settings is not None else AUTO


def rigmap_for(obj) -> tuple[RigMap, str]:
    """(map baked for this armature, label for reports); NoRigMap when nothing fits."""
    names = joints.bone_names(obj)
    choice = chosen_preset(obj)
    if choice == CUSTOM:
        rigmap, label = custom_rigmap(obj), "custom map"
    elif choice == AUTO:
        found = rigmap_presets.detect(names)
        if found is None:
            raise NoRigMap(
                f"no rig preset fits armature {obj.name!r} (known: "
                + ", ".join(p.label for p in rigmap_presets.PRESETS)
                + "); choose a preset or make a custom map"
            )
        rigmap, label = found.rigmap, found.preset.label
    else:
        preset = rigmap_presets.PRESETS_BY_ID.get(choice)
        if preset is None:  # a file saved by a newer PoseBridge
            raise NoRigMap(f"armature {obj.name!r} uses a rig map this version does not know; choose one")
        found = rigmap_presets.fit(preset, names)
        if found is None:
            missing = [b for b in preset.essential if b not in set(names)]
            raise NoRigMap(
                f"the {preset.label} preset does not fit armature {obj.name!r} "
                f"(missing bones such as {', '.join(missing[:4])})"
            )
        rigmap, label = found.rigmap, preset.label
    if not rigmap.placeable(names):
        raise NoRigMap(f"the rig map of armature {obj.name!r} places no keypoint on its bones")
    return joints.bake_for(obj, rigmap), label


def custom_rigmap(obj) -> RigMap:
    """The object's custom map: its keypoint <- bone end entries, plus what follows from them
    (the neck between the shoulders, the hand wrists at the wrists, the face on the head bone)."""
    settings = _settings(obj)
    entries = [e for e in settings.custom_map if e.keypoint and e.bone] if settings else []
    try:
        base = custom_map({e.keypoint: (e.bone, e.anchor.lower()) for e in entries}, name="custom")
    except ValueError as error:
        raise NoRigMap(f"custom map of {obj.name!r}: {error}") from None
    points = dict(base.points)
    if "neck" not in points and "l_shoulder" in points and "r_shoulder" in points:
        points["neck"] = (midpoint(points["l_shoulder"][0], points["r_shoulder"][0]),)
    for side in ("l", "r"):
        if f"{side}_hand_wrist" not in points and f"{side}_wrist" in points:
            points[f"{side}_hand_wrist"] = points[f"{side}_wrist"]
    if settings is not None and settings.custom_head_bone:
        for name, recipe in rigmap_presets.face_on_head_bone(settings.custom_head_bone).items():
            points.setdefault(name, (recipe,))
    if not points:
        raise NoRigMap(f"the custom map of armature {obj.name!r} is empty")
    return RigMap("custom", points)


def simple_entries(rigmap: RigMap) -> list[tuple[str, str, str]]:
    """The (keypoint, bone, HEAD|TAIL) entries of a map whose first recipe is one plain bone end;
    what a custom map can start from."""
    rows = []
    for point, recipes in rigmap.points.items():
        recipe = recipes[0]
        if len(recipe) != 1 or any(recipe[0].offset):
            continue
        term = recipe[0]
        if tuple(term.local) == (0.0, 0.0, 0.0):
            rows.append((point, term.bone, "HEAD"))
        elif tuple(term.local) == (0.0, 1.0, 0.0):
            rows.append((point, term.bone, "TAIL"))
    return rows


def describe(obj) -> str:
    """A short label for the panel: the map that would be used, or why none fits."""
    choice = chosen_preset(obj)
    if choice == CUSTOM:
        return "Custom"
    names = joints.bone_names(obj)
    if choice == AUTO:
        found = rigmap_presets.detect(names)
        return f"Auto: {found.preset.label}" if found else "No preset fits"
    preset = rigmap_presets.PRESETS_BY_ID.get(choice)
    if preset is None:
        return "Unknown rig map"
    return preset.label if rigmap_presets.fit(preset, names) else f"{preset.label} (does not fit)"


def head_bone_of(rigmap: RigMap) -> str | None:
    """The bone the map's face template hangs on (the bone of its nose-tip fallback), if any."""
    recipes = rigmap.points.get("face_30") or ()
    for recipe in reversed(recipes):  # the template is the last alternative
        if len(recipe) == 1 and any(recipe[0].offset):
            return recipe[0].bone
    return None
