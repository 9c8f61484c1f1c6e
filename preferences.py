"""Add-on preferences: where the generation backend is, and how to start a local one.

Saved with Blender's user preferences, not in .blend files: a shot opened on another machine
talks to that machine's backend, and the token never travels inside a .blend.
"""
from __future__ import annotations

import bpy
from bpy.props import IntProperty, StringProperty

DEFAULT_BACKEND_URL = "http://127.0.0.1:8765"

# The root package: "posebridge" when loaded by cli.py or the tests, "bl_ext.<repo>.posebridge"
# when installed as an extension. AddonPreferences are looked up by exactly that name.
ADDON_PACKAGE = __package__


class POSEBRIDGE_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    backend_url: StringProperty(
        name="Backend URL", default=DEFAULT_BACKEND_URL,
        description="Address of the PoseBridge generation backend (posebridge-backend serve)",
    )
    token: StringProperty(
        name="Token", subtype="PASSWORD",
        description="The backend's --token; empty when it runs without one (loopback only)",
    )
    python: StringProperty(
        name="Backend Python", subtype="FILE_PATH",
        description="Python interpreter with torch and diffusers, for 'Start Local Backend' "
        "(e.g. the venv where you ran pip install '.[backend]')",
    )
    model: StringProperty(
        name="Model", default="",
        description="--model for a started backend: a hub id, a diffusers folder, a single-file "
        "checkpoint, or a make-tiny-model folder; empty uses the backend's default",
    )
    port: IntProperty(name="Port", default=8765, min=1, max=65535,
                      description="Loopback port for 'Start Local Backend'")

    def draw(self, _context):
        layout = self.layout
        layout.prop(self, "backend_url")
        layout.prop(self, "token")
        box = layout.box()
        box.label(text="Start Local Backend")
        box.prop(self, "python")
        box.prop(self, "model")
        box.prop(self, "port")


def get(context=None):
    """The add-on's preferences (None when the add-on is not registered as an add-on, e.g. loaded
    by a script without enabling it: callers then fall back to the defaults)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon is not None else None
