"""Actions and keyframes on both of Blender's action APIs, written in bulk.

Blender 4.4 made actions *layered*: F-curves live in a channelbag of a keyframe strip of a layer,
one channelbag per *slot*, and an object plays the slot assigned to it (5.0 removed the old
``Action.fcurves``). Blender 4.2 LTS has only the legacy API: ``action.fcurves.new(data_path,
index, action_group)``. Everything version-dependent about actions is in this module.

Keys are written per F-curve in three C-level calls (``keyframe_points.add``, then
``foreach_set`` of the coordinates and of the interpolation) and one ``FCurve.update``, never
one ``keyframe_insert`` per bone per frame (thousands of times slower).
"""
from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

LAYERED = "layers" in bpy.types.Action.bl_rna.properties  # Blender 4.4 and later
STASH_TRACK = "[Action Stash]"  # Blender's own name for the NLA track that keeps old actions
INTERPOLATIONS = ("LINEAR", "BEZIER", "CONSTANT")


@dataclass
class Channel:
    """One F-curve's worth of values: ``data_path[index]`` at every key frame."""

    data_path: str
    index: int
    group: str
    values: np.ndarray  # (keys,)


def new_action(name: str):
    return bpy.data.actions.new(name)


def assign(obj, action):
    """Make ``action`` the one ``obj`` plays; on 4.4+ also give it a slot for ``obj`` and assign
    that slot. Returns the slot (None on 4.2)."""
    data = obj.animation_data or obj.animation_data_create()
    if data.use_tweak_mode:
        raise ValueError(f"{obj.name!r} is in NLA tweak mode; leave it before importing animation")
    if not LAYERED:
        data.action = action
        return None
    slot = next((s for s in action.slots if s.target_id_type in ("OBJECT", "UNSPECIFIED")), None)
    if slot is None:
        slot = action.slots.new(id_type="OBJECT", name=obj.name)
    data.action = action
    data.action_slot = slot
    return slot


def stash(obj):
    """Keep ``obj``'s current action as Blender's Action Editor does when a new one replaces it:
    on a muted NLA track named "[Action Stash]", so it is saved with the file, shows in the NLA
    editor and plays nothing. Returns the stashed action (None when there was none). The action
    itself is not touched."""
    data = obj.animation_data
    if data is None or data.action is None:
        return None
    action = data.action
    slot = data.action_slot if LAYERED else None
    track = data.nla_tracks.get(STASH_TRACK) or data.nla_tracks.new()
    track.name = STASH_TRACK
    start = int(np.floor(action.frame_range[0]))
    # Strips on one track may not overlap: put this one after those already stashed.
    for strip in track.strips:
        start = max(start, int(np.ceil(strip.frame_end)) + 1)
    strip = track.strips.new(action.name, start, action)
    if slot is not None and hasattr(strip, "action_slot"):
        strip.action_slot = slot
    track.mute = True
    return action


def fcurves(action, obj=None):
    """The action's F-curves (for ``obj``'s slot on 4.4+; the first slot without ``obj``)."""
    if not LAYERED:
        return list(action.fcurves)
    slot = None
    if obj is not None and obj.animation_data is not None and obj.animation_data.action == action:
        slot = obj.animation_data.action_slot
    if slot is None and len(action.slots):
        slot = action.slots[0]
    out = []
    for layer in action.layers:
        for strip in layer.strips:
            bag = strip.channelbag(slot) if slot is not None else None
            if bag is not None:
                out.extend(bag.fcurves)
    return out


def write_channels(obj, action, frames, channels: list[Channel], interpolation: str = "LINEAR") -> int:
    """Write every channel as a new F-curve with a key at each of ``frames``; ``action`` must be
    assigned to ``obj`` (``assign``). Returns the number of F-curves written."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interpolation!r} (known: {', '.join(INTERPOLATIONS)})")
    frames = np.asarray(frames, dtype=np.float32)
    keys = frames.shape[0]
    mode = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items[interpolation].value
    modes = np.full(keys, mode, dtype=np.int32)
    co = np.empty((keys, 2), dtype=np.float32)
    co[:, 0] = frames
    new_curve = _curve_factory(obj, action)
    for channel in channels:
        curve = new_curve(channel.data_path, channel.index, channel.group)
        points = curve.keyframe_points
        points.add(keys)
        co[:, 1] = channel.values
        points.foreach_set("co", co.ravel())
        points.foreach_set("interpolation", modes)
        curve.update()  # handles (for Bezier) and the curve's cached range
    return len(channels)


def _curve_factory(obj, action):
    if not LAYERED:
        return lambda path, index, group: action.fcurves.new(path, index=index, action_group=group)
    slot = obj.animation_data.action_slot
    layer = action.layers[0] if len(action.layers) else action.layers.new("Layer")
    strip = layer.strips[0] if len(layer.strips) else layer.strips.new(type="KEYFRAME")
    bag = strip.channelbag(slot, ensure=True)
    groups = {}

    def new(path, index, group):
        try:
            return bag.fcurves.new(path, index=index, group_name=group)
        except TypeError:  # 4.4 has no group_name here
            curve = bag.fcurves.new(path, index=index)
            if group:
                if group not in groups:
                    groups[group] = bag.groups.get(group) or bag.groups.new(group)
                curve.group = groups[group]
            return curve

    return new
