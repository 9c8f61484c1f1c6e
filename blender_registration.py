"""Registers the extension's properties, operators and panels with Blender."""
import atexit

import bpy

from . import preferences, properties
from .operators import CLASSES as OPERATOR_CLASSES, release_previews, stop_local_backend
from .panels import CLASSES as PANEL_CLASSES

CLASSES = (preferences.POSEBRIDGE_AP_preferences,) + OPERATOR_CLASSES + PANEL_CLASSES


def register():
    properties.register()
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    # Blender 4.2 quits without unregistering add-ons: a backend it started must still go.
    atexit.register(stop_local_backend)


def unregister():
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
    release_previews()
    stop_local_backend()  # a backend this Blender started goes with it
    atexit.unregister(stop_local_backend)
    properties.unregister()
