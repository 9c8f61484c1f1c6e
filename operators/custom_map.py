"""Editing an armature's custom rig map (saved on the object in the .blend). All undoable."""
from __future__ import annotations

import bpy

from ..pose import rigmap_presets
from ..render import joints, rig_presets


def _character(context):
    from ..panels.pose_maps import selected_character

    return selected_character(context)


class _CharacterOperator(bpy.types.Operator):
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return _character(context) is not None


class POSEBRIDGE_OT_custom_map_add(_CharacterOperator):
    """Add a keypoint to the custom rig map"""

    bl_idname = "posebridge.custom_map_add"
    bl_label = "Add Map Entry"

    def execute(self, context):
        settings = _character(context).posebridge
        settings.custom_map.add()
        settings.custom_map_index = len(settings.custom_map) - 1
        return {"FINISHED"}


class POSEBRIDGE_OT_custom_map_remove(_CharacterOperator):
    """Remove the selected keypoint from the custom rig map"""

    bl_idname = "posebridge.custom_map_remove"
    bl_label = "Remove Map Entry"

    def execute(self, context):
        settings = _character(context).posebridge
        if not 0 <= settings.custom_map_index < len(settings.custom_map):
            self.report({"WARNING"}, "No map entry selected")
            return {"CANCELLED"}
        settings.custom_map.remove(settings.custom_map_index)
        settings.custom_map_index = min(settings.custom_map_index, len(settings.custom_map) - 1)
        return {"FINISHED"}


class POSEBRIDGE_OT_custom_map_from_preset(_CharacterOperator):
    """Start a custom map from the preset that fits this armature (replaces the custom entries)"""

    bl_idname = "posebridge.custom_map_from_preset"
    bl_label = "Custom Map from Preset"

    def invoke(self, context, event):
        if len(_character(context).posebridge.custom_map):
            return context.window_manager.invoke_confirm(
                self, event, title="Replace custom map?",
                message="The armature's custom map entries will be replaced.", confirm_text="Replace",
            )
        return self.execute(context)

    def execute(self, context):
        obj = _character(context)
        found = rigmap_presets.detect(joints.bone_names(obj))
        if found is None:
            self.report({"ERROR"}, f"No preset fits {obj.name}; add entries by hand")
            return {"CANCELLED"}
        settings = obj.posebridge
        settings.custom_map.clear()
        for keypoint, bone, anchor in rig_presets.simple_entries(found.rigmap):
            entry = settings.custom_map.add()
            entry.keypoint, entry.bone, entry.anchor = keypoint, bone, anchor
        head_bone = rig_presets.head_bone_of(found.rigmap)
        if head_bone:
            settings.custom_head_bone = head_bone
        settings.preset = rig_presets.CUSTOM
        self.report({"INFO"}, f"Custom map: {len(settings.custom_map)} entries from {found.preset.label}")
        return {"FINISHED"}


CLASSES = (POSEBRIDGE_OT_custom_map_add, POSEBRIDGE_OT_custom_map_remove, POSEBRIDGE_OT_custom_map_from_preset)
