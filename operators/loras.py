"""The Generate panel's LoRA list: add and remove entries (undoable)."""
from __future__ import annotations

import bpy


class POSEBRIDGE_OT_lora_add(bpy.types.Operator):
    """Add a LoRA to the list (choose its file or type a Hugging Face id)"""

    bl_idname = "posebridge.lora_add"
    bl_label = "Add LoRA"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        settings = context.scene.posebridge.generate
        settings.loras.add()
        settings.lora_index = len(settings.loras) - 1
        return {"FINISHED"}


class POSEBRIDGE_OT_lora_remove(bpy.types.Operator):
    """Remove the selected LoRA from the list"""

    bl_idname = "posebridge.lora_remove"
    bl_label = "Remove LoRA"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        settings = context.scene.posebridge.generate
        return 0 <= settings.lora_index < len(settings.loras)

    def execute(self, context):
        settings = context.scene.posebridge.generate
        settings.loras.remove(settings.lora_index)
        settings.lora_index = max(0, min(settings.lora_index, len(settings.loras) - 1))
        return {"FINISHED"}


CLASSES = (POSEBRIDGE_OT_lora_add, POSEBRIDGE_OT_lora_remove)
