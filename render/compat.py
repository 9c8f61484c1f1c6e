"""The differences between Blender 4.2 LTS and 5.x, in one place.

Everything version-dependent goes through here so the rest of the code reads as if there
were one Blender.
"""
from __future__ import annotations

import bpy

VERSION = bpy.app.version


def eevee_engine() -> str:
    """EEVEE's engine id: 'BLENDER_EEVEE_NEXT' on 4.2-4.x, 'BLENDER_EEVEE' again from 5.0."""
    items = bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items.keys()
    return "BLENDER_EEVEE_NEXT" if "BLENDER_EEVEE_NEXT" in items else "BLENDER_EEVEE"


def is_background() -> bool:
    return bool(bpy.app.background)
