"""The Generate panel: backend, prompt and settings, and what to do with the frames."""
from __future__ import annotations

import bpy

from .. import preferences
from ..generate import families
from ..operators.adherence import report_summary
from .pose_maps import _SidebarPanel


class POSEBRIDGE_PT_generate(_SidebarPanel, bpy.types.Panel):
    """Pose maps of the range -> the generation backend -> one image strip in the VSE."""

    bl_label = "Generate"
    bl_idname = "POSEBRIDGE_PT_generate"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        settings = context.scene.posebridge.generate
        prefs = preferences.get(context)
        box = layout.box()
        if prefs is not None:
            box.prop(prefs, "backend_url", text="Backend")
            box.prop(prefs, "token")
        else:
            box.label(text=f"Backend: {preferences.DEFAULT_BACKEND_URL}", icon="URL")
        row = box.row(align=True)
        row.operator("posebridge.start_backend", icon="PLAY")
        row.operator("posebridge.stop_backend", icon="PAUSE", text="")
        layout.prop(settings, "prompt")
        layout.prop(settings, "negative")
        layout.row(align=True).prop(settings, "quality", expand=True)
        if settings.quality == "PREVIEW":
            _draw_preview(layout)
        layout.prop(settings, "pipeline")
        offered = _not_offered(settings.pipeline)
        if offered:
            layout.label(text=offered, icon="ERROR")
        if settings.pipeline == "WAN_VACE":
            _draw_wan(layout, context, settings)
        row = layout.row(align=True)
        row.prop(settings, "seed")
        row.prop(settings, "steps")
        layout.prop(settings, "guidance")
        row = layout.row(align=True)
        row.label(text="Control")
        row.prop(settings, "pose_scale")
        row.prop(settings, "depth_scale")
        _draw_loras(layout, settings)
        _draw_identity(layout, settings)
        _draw_advanced(layout, settings)
        layout.prop(settings, "output_dir")
        layout.prop(settings, "overwrite")
        layout.prop(settings, "name")
        layout.operator("posebridge.generate", icon="SHADERFX")
        row = layout.row(align=True)
        row.operator("posebridge.export_video", icon="FILE_MOVIE")
        row.operator("posebridge.compare_sheet", icon="IMAGE_DATA")
        _draw_adherence(layout, context, settings)


def _not_offered(choice: str) -> str:
    """What to say when the last backend seen does not run the chosen pipeline ("" otherwise)."""
    health = families.seen_health() or {}
    pipelines = health.get("pipelines")
    name = choice.lower().replace("_", "-")
    if choice == "AUTO" or pipelines is None or name in pipelines:
        return ""
    family = {"sdxl": "SDXL ", "sd15": "SD1.5 "}.get(health.get("family"), "")
    return f"The {family}backend runs: {', '.join(pipelines)}"


def _draw_preview(layout) -> None:
    """What a preview will run, as the backend last said."""
    health = families.seen_health()
    preview = (health or {}).get("preview")
    if health is None:
        text = "Preview: the backend's few-step LoRA, half size, into preview/"
    elif preview:
        text = f"Preview: {preview['steps']} steps with {preview['lora'].split('/')[-1]}, half size, into preview/"
    else:
        text = f"No preview on this backend: {health.get('preview_unavailable') or 'no preview LoRA'}"
    layout.label(text=text, icon="INFO" if health is None or preview else "ERROR")


def _draw_adherence(layout, context, settings) -> None:
    """Check Pose Adherence, and what the output folder's report says."""
    box = layout.box()
    row = box.row(align=True)
    row.operator("posebridge.check_adherence", icon="ARMATURE_DATA")
    row.prop(settings, "adherence_threshold", text="Flag Below")
    summary = report_summary(context)
    if summary is None:
        return
    row = box.row()
    row.label(text=f"Score {summary.score:.2f} ({summary.frames_checked} frames)")
    if summary.worst_frame is not None:
        row.operator("posebridge.jump_to_worst_frame", text=f"Worst: {summary.worst_frame}",
                     icon="FRAME_NEXT")
    if summary.flagged_frames:
        box.label(text=f"Flagged ({len(summary.flagged_frames)}): {summary.flagged_text(limit=6)}",
                  icon="ERROR")
    else:
        box.label(text="No frame flagged", icon="CHECKMARK")


class POSEBRIDGE_UL_loras(bpy.types.UIList):
    """The LoRAs sent with a job: on/off, file or Hugging Face id, weight."""

    def draw_item(self, _context, layout, _data, item, _icon, _active_data, _active_prop, _index):
        row = layout.row(align=True)
        row.prop(item, "enabled", text="")
        row.prop(item, "source", text="")
        row.prop(item, "weight", text="")


def _draw_loras(layout, settings) -> None:
    """Character and style LoRAs, each with its weight (frames and AnimateDiff)."""
    header, body = layout.panel("POSEBRIDGE_PT_generate_loras", default_closed=True)
    count = sum(1 for item in settings.loras if item.enabled and item.source.strip())
    header.label(text=f"LoRAs ({count})" if count else "LoRAs")
    if body is None:
        return
    row = body.row()
    row.active = settings.pipeline != "WAN_VACE"
    row.template_list("POSEBRIDGE_UL_loras", "", settings, "loras", settings, "lora_index", rows=2)
    buttons = row.column(align=True)
    buttons.operator("posebridge.lora_add", text="", icon="ADD")
    buttons.operator("posebridge.lora_remove", text="", icon="REMOVE")
    if settings.pipeline == "WAN_VACE" and count:
        body.label(text="Wan VACE takes no LoRA: they are not sent", icon="INFO")


def _draw_identity(layout, settings) -> None:
    """The character's reference image and how strongly the frames follow it."""
    header, body = layout.panel("POSEBRIDGE_PT_generate_identity", default_closed=True)
    header.label(text="Identity Reference")
    if body is None:
        return
    body.prop(settings, "reference")
    row = body.row()
    row.active = bool(settings.reference.strip())  # the scale means nothing without an image
    row.prop(settings, "identity_scale")


def _draw_wan(layout, context, settings) -> None:
    """Wan VACE's own settings, and what its frame rate means for the shot."""
    box = layout.box()
    box.prop(settings, "wan_resolution")
    depth = context.scene.posebridge.depth
    row = box.row()
    row.active = depth  # the choice only matters when there are depth maps to show
    row.prop(settings, "vace_control")
    if not depth and settings.vace_control in ("DEPTH", "POSE_OVER_DEPTH"):
        box.label(text="Needs depth maps: turn on Depth in Pose Maps", icon="ERROR")
    box.prop(settings, "segment", text="Segment (0: 81)")
    render = context.scene.render
    fps = render.fps / (render.fps_base or 1.0)
    # Wan's clips are 16 fps, but each frame is made from one pose map: the timing stays the
    # animator's whatever the scene's rate, only the motion per frame differs from training.
    box.label(text=f"Wan is trained at 16 fps, the scene runs at {fps:.4g}:", icon="INFO")
    box.label(text="frames follow the pose maps 1:1, your timing holds")


def _draw_advanced(layout, settings) -> None:
    """AnimateDiff's context windows and segments, Frames' batch: the defaults suit most shots."""
    header, body = layout.panel("POSEBRIDGE_PT_generate_advanced", default_closed=True)
    header.label(text="Advanced")
    if body is None:
        return
    column = body.column()
    # Context windows are AnimateDiff's (Wan sees a whole segment at once); Frames has none.
    column.active = settings.pipeline in ("AUTO", "ANIMATEDIFF")
    row = column.row(align=True)
    row.prop(settings, "context_length")
    row.prop(settings, "context_stride")
    if settings.pipeline != "WAN_VACE":  # Wan's segment is drawn with its settings
        row = body.row()
        row.active = settings.pipeline != "FRAMES"  # Frames makes each frame on its own
        label = {"text": "Segment (0: whole range)"} if settings.pipeline == "ANIMATEDIFF" else {}
        row.prop(settings, "segment", **label)
    row = body.row()
    row.active = settings.pipeline in ("AUTO", "FRAMES")  # the video pipelines make no batches
    row.prop(settings, "batch")
