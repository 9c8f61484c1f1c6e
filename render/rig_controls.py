"""Which bone to key for each bone the lift solves, on rigs whose deform/ORG bones follow
controls through constraints (Rigify's generated rig).

The lift is solved on the bones the rig map reads (Rigify's ORG- bones). Keys on a bone that a
constraint drives would not show, so each such bone is keyed through the control it follows:
the constraint targets are followed (``COPY_TRANSFORMS``, ``COPY_LOCATION``; an FK target
preferred over an IK one) to the first bone that no constraint drives (``ORG-upper_arm.L`` ->
``upper_arm_fk.L``, ``ORG-f_index.01.L`` -> ``MCH-f_index.01.L`` -> ``f_index.01.L``,
``ORG-spine.006`` -> ``head``), or, from a helper that copies nothing, to the parent it sits
on with the same rest matrix (``MCH-f_index.02.L`` on ``f_index.02.L``). The control's parent moves rigidly with the ORG bone's parent
while everything else is at rest (Rigify's FK chains are built that way), so the control gets
the ORG bone's basis conjugated by their rest offset ``K = rest[org]^-1 @ rest[control]``
(the identity for Rigify's FK controls, which share the ORG bones' rest matrices). Limbs are
switched to FK by keying the rig's ``IK_FK`` properties to 1 and ``FK_limb_follow`` to 0 (the FK
chain follows the torso) in the new action. Bones nothing drives are keyed as they are.
"""
from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

# Constraints that replace a bone's own rotation or location: keys on such a bone do not show.
OVERRIDING = {
    "COPY_TRANSFORMS", "COPY_ROTATION", "COPY_LOCATION", "CHILD_OF", "ARMATURE", "DAMPED_TRACK",
    "TRACK_TO", "LOCKED_TRACK", "STRETCH_TO", "TRANSFORM", "ACTION", "IK", "SPLINE_IK",
}
_FOLLOWED = ("COPY_TRANSFORMS", "COPY_LOCATION")  # constraints leading from a bone to its control
# Custom properties keyed in the new action (Rigify limbs: FK, FK chain following the torso).
SWITCHES = {"IK_FK": 1.0, "FK_limb_follow": 0.0}


@dataclass(frozen=True)
class Control:
    name: str  # the bone keyed
    offset: np.ndarray | None  # (4, 4) rest[solved]^-1 @ rest[control]; None: the identity


def _active(constraint) -> bool:
    return not constraint.mute and constraint.influence > 0.0 and constraint.type in OVERRIDING


def driven_bones(armature_obj) -> set[str]:
    """Names of the bones whose own keys constraints override (IK chains included)."""
    driven = set()
    for bone in armature_obj.pose.bones:
        for constraint in bone.constraints:
            if not _active(constraint):
                continue
            if constraint.type in ("IK", "SPLINE_IK"):
                chain = [bone] + list(bone.parent_recursive)
                length = getattr(constraint, "chain_count", 0) or len(chain)
                driven.update(b.name for b in chain[:length])
            else:
                driven.add(bone.name)
    return driven


def _followed(armature_obj, pose_bone) -> str | None:
    """The bone ``pose_bone`` copies (an FK one rather than an IK one), or None."""
    targets = [
        c.subtarget for c in pose_bone.constraints
        if _active(c) and c.type in _FOLLOWED and c.target == armature_obj and c.subtarget
    ]
    fk = [t for t in targets if "fk" in t.lower()]
    if targets:
        return (fk or targets)[0]
    # No copy: a helper sitting on its parent (Rigify's MCH- finger bones on their controls).
    parent = pose_bone.bone.parent
    if parent is not None and np.allclose(parent.matrix_local, pose_bone.bone.matrix_local, atol=1e-6):
        return parent.name
    return None


def controls_for(armature_obj, names) -> dict[str, Control]:
    """For each bone in ``names``, the bone to key instead (itself when nothing drives it).
    Raises ValueError naming the bones that are driven and lead to no free control."""
    pose_bones = armature_obj.pose.bones
    bones = armature_obj.data.bones
    driven = driven_bones(armature_obj)
    out, blocked, used = {}, [], set()
    for name in names:
        control = name
        for _ in range(4):
            if control not in driven:
                break
            control = _followed(armature_obj, pose_bones[control])
            if control is None:
                break
        if control is None or control in driven or control in used:
            blocked.append(name)
            continue
        used.add(control)
        offset = None
        if control != name:
            offset = np.linalg.inv(np.array(bones[name].matrix_local, dtype=np.float64)) @ np.array(
                bones[control].matrix_local, dtype=np.float64)
            if np.allclose(offset, np.eye(4), atol=1e-6):
                offset = None
        out[name] = Control(control, offset)
    if blocked:
        raise ValueError(
            f"bones of {armature_obj.name!r} the import would key are driven by constraints "
            f"({', '.join(blocked[:4])}{', ...' if len(blocked) > 4 else ''}) and follow no control "
            "it could key instead; import onto a rig that is keyed directly (the metarig, a deform "
            "or game rig) or Rigify's generated rig"
        )
    return out


def switch_channels(armature_obj) -> list[tuple[str, str, float]]:
    """(data path, group, value) of the custom properties to key so the limbs follow their FK
    controls (Rigify's ``IK_FK`` and ``FK_limb_follow``); empty for other rigs."""
    out = []
    for bone in armature_obj.pose.bones:
        for prop, value in SWITCHES.items():
            if prop in bone.keys():
                out.append((f'pose.bones["{bpy.utils.escape_identifier(bone.name)}"]["{prop}"]', bone.name, value))
    return out



def effective_parent(bone) -> str | None:
    """The name of the bone ``bone`` moves with: its parent, except that a parent ``DEF-x``
    with an ``ORG-x`` twin of the same rest matrix stands for that twin (Rigify's ORG- palm
    bones hang from ``DEF-hand``, which follows ``ORG-hand`` through the arm's tweak chain)."""
    parent = bone.parent
    if parent is None:
        return None
    if parent.name.startswith("DEF-"):
        twin = bone.id_data.bones.get("ORG-" + parent.name[4:])
        if twin is not None and np.allclose(twin.matrix_local, parent.matrix_local, atol=1e-6):
            return twin.name
    return parent.name
