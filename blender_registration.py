"""Registers the extension's properties, operators and panels with Blender."""
import bpy

from . import properties
from .operators import CLASSES as OPERATOR_CLASSES, release_previews
from .panels import CLASSES as PANEL_CLASSES


def register():
    properties.register()
    for cls in OPERATOR_CLASSES + PANEL_CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(OPERATOR_CLASSES + PANEL_CLASSES):
        bpy.utils.unregister_class(cls)
    release_previews()
    properties.unregister()
