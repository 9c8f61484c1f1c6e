"""Blender-side glue: reading poses and cameras, rendering pose maps. Imports bpy."""
