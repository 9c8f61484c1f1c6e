"""Panels: layout only. Every action is an operator; every value a property."""
from __future__ import annotations

import bpy

from ..generate import families
from ..generate.extraction import is_video
from ..operators.preview import preview_icon_id
from ..render import rig_presets


def selected_character(context):
    """The armature picked in the characters list (None when the row is not an armature)."""
    scene = context.scene
    index = scene.posebridge.character_index
    if 0 <= index < len(scene.objects):
        obj = scene.objects[index]
        if obj.type == "ARMATURE":
            return obj
    return None


class POSEBRIDGE_UL_characters(bpy.types.UIList):
    """The scene's armatures: include toggle, name and the rig map that will be used."""

    def draw_item(self, _context, layout, _data, obj, _icon, _active_data, _active_prop, _index):
        row = layout.row(align=True)
        row.prop(obj.posebridge, "include", text="")
        row.label(text=obj.name, icon="ARMATURE_DATA")
        row.label(text=rig_presets.describe(obj))

    def filter_items(self, _context, data, propname):
        objects = getattr(data, propname)
        flags = [self.bitflag_filter_item if o.type == "ARMATURE" else 0 for o in objects]
        return flags, []


def _row(layout, settings, *names) -> None:
    """Several properties side by side."""
    row = layout.row(align=True)
    for name in names:
        row.prop(settings, name)


class _SidebarPanel:
    """Where every PoseBridge panel lives: the 3D viewport's sidebar, PoseBridge tab."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "PoseBridge"


class POSEBRIDGE_PT_pose_maps(_SidebarPanel, bpy.types.Panel):
    bl_label = "Pose Maps"
    bl_idname = "POSEBRIDGE_PT_pose_maps"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.posebridge
        layout.label(text="Characters")
        layout.template_list(
            "POSEBRIDGE_UL_characters", "", context.scene, "objects", settings, "character_index", rows=3
        )
        character = selected_character(context)
        if character is not None:
            layout.prop(character.posebridge, "preset")

        column = layout.column(align=True)
        column.prop(settings, "camera")
        column.prop(settings, "use_scene_frames")
        if not settings.use_scene_frames:
            _row(column, settings, "frame_start", "frame_end")
        column.prop(settings, "use_scene_resolution")
        if not settings.use_scene_resolution:
            _row(column, settings, "resolution_x", "resolution_y")
        row = layout.row(align=True)
        row.prop(settings, "hands", toggle=True)
        row.prop(settings, "face", toggle=True)
        layout.prop(settings, "line_widths")
        note = families.describe(settings.line_widths)
        if note:
            layout.label(text=note, icon="INFO")
        layout.prop(settings, "occlusion", toggle=True, icon="HIDE_ON")
        _draw_depth(layout, settings)
        layout.prop(settings, "output_dir")
        layout.operator("posebridge.render_pose_maps", icon="RENDER_ANIMATION")


def _draw_depth(layout, settings) -> None:
    """The Depth toggle; its options only while it is on."""
    column = layout.column(align=True)
    column.prop(settings, "depth", toggle=True, icon="MOD_OPACITY")
    if not settings.depth:
        return
    column.row(align=True).prop(settings, "depth_mode", expand=True)
    column.row(align=True).prop(settings, "depth_bits", expand=True)
    column.row(align=True).prop(settings, "depth_subject", expand=True)
    column.prop(settings, "depth_use_range")
    if settings.depth_use_range:
        _row(column, settings, "depth_near", "depth_far")


class POSEBRIDGE_PT_custom_map(_SidebarPanel, bpy.types.Panel):
    bl_label = "Custom Rig Map"
    bl_idname = "POSEBRIDGE_PT_custom_map"
    bl_parent_id = "POSEBRIDGE_PT_pose_maps"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context):
        return selected_character(context) is not None

    def draw(self, context):
        layout = self.layout
        character = selected_character(context)
        rig = character.posebridge
        if rig.preset != "CUSTOM":
            layout.label(text="Set the rig map to Custom to edit it")
            layout.operator("posebridge.custom_map_from_preset", icon="PRESET")
            return
        layout.operator("posebridge.custom_map_from_preset", icon="PRESET")
        row = layout.row()
        row.template_list("POSEBRIDGE_UL_map_entries", "", rig, "custom_map", rig, "custom_map_index", rows=6)
        buttons = row.column(align=True)
        buttons.operator("posebridge.custom_map_add", icon="ADD", text="")
        buttons.operator("posebridge.custom_map_remove", icon="REMOVE", text="")
        if 0 <= rig.custom_map_index < len(rig.custom_map):
            entry = rig.custom_map[rig.custom_map_index]
            layout.prop(entry, "keypoint")
            layout.prop_search(entry, "bone", character.data, "bones")
            layout.prop(entry, "anchor", expand=True)
        layout.prop_search(rig, "custom_head_bone", character.data, "bones")


class POSEBRIDGE_UL_map_entries(bpy.types.UIList):
    def draw_item(self, _context, layout, _data, entry, _icon, _active_data, _active_prop, _index):
        row = layout.row(align=True)
        row.label(text=entry.keypoint or "?")
        row.label(text=f"{entry.bone or '-'} ({entry.anchor.lower()})", icon="BONE_DATA")


class POSEBRIDGE_PT_preview(_SidebarPanel, bpy.types.Panel):
    bl_label = "Preview"
    bl_idname = "POSEBRIDGE_PT_preview"
    bl_parent_id = "POSEBRIDGE_PT_pose_maps"

    def draw(self, context):
        layout = self.layout
        layout.operator("posebridge.preview_pose_map", icon="HIDE_OFF", text="Preview Current Frame")
        icon = preview_icon_id()
        if icon:
            layout.template_icon(icon_value=icon, scale=10.0)


class POSEBRIDGE_PT_import_pose(_SidebarPanel, bpy.types.Panel):
    """A reference clip's keypoints onto a rig: the rig keeps its own proportions."""

    bl_label = "Import Pose"
    bl_idname = "POSEBRIDGE_PT_import_pose"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        settings = context.scene.posebridge.importer
        layout.prop(settings, "keypoints")
        video = is_video(settings.keypoints)
        if video:
            _draw_video(layout, settings)
        else:
            column = layout.column(align=True)
            column.prop(settings, "layout")
            column.prop(settings, "coordinates")
            _row(column, settings, *(("use_canvas", "canvas_x", "canvas_y") if settings.use_canvas else ("use_canvas",)))
        column = layout.column(align=True)
        column.prop(settings, "person")
        if settings.person == "INDEX":
            column.prop(settings, "person_index")
        elif settings.person == "PIXEL":
            _row(column, settings, "person_x", "person_y")
        column = layout.column(align=True)
        column.prop(settings, "min_confidence")
        _row(column, settings, *(("smooth", "smooth_strength") if settings.smooth else ("smooth",)))
        column.prop(settings, "fix_swaps")
        column = layout.column(align=True)
        column.prop(settings, "armature")
        column.prop(settings, "camera")
        column.prop(settings, "use_scene_start")
        if not settings.use_scene_start:
            column.prop(settings, "start_frame")
        column.prop(settings, "depth_mode")
        column.prop(settings, "lift")
        if settings.lift == "learned":
            column.prop(settings, "camera_tilt")
        column.prop(settings, "ground")
        if video:
            layout.operator("posebridge.import_pose", icon="IMPORT", text="Extract and Import")
        else:
            layout.operator("posebridge.import_pose", icon="IMPORT")


def _draw_video(layout, settings) -> None:
    """A video source: how the backend extracts it, and where the video goes beside the keys."""
    column = layout.column(align=True)
    column.prop(settings, "extractor")
    column.prop(settings, "video_every")
    _row(column, settings, *(("use_video_range", "video_start", "video_end") if settings.use_video_range
                             else ("use_video_range",)))
    column.prop(settings, "extract_dir")
    _row(column, settings, "add_movie_strip", "add_background")
    row = column.row(align=True)
    row.label(text="Backend: the Generate panel's", icon="INFO")
    row.operator("posebridge.start_backend", icon="PLAY", text="Start Local")


CLASSES = (
    POSEBRIDGE_UL_characters,
    POSEBRIDGE_UL_map_entries,
    POSEBRIDGE_PT_pose_maps,
    POSEBRIDGE_PT_custom_map,
    POSEBRIDGE_PT_preview,
    POSEBRIDGE_PT_import_pose,
)
