"""Operators: one user action each. They read properties, call render/, pose/ and draw/, report."""
from .adherence import CLASSES as _ADHERENCE_CLASSES
from .custom_map import CLASSES as _MAP_CLASSES
from .generate import CLASSES as _GENERATE_CLASSES, stop_local_backend
from .import_pose import POSEBRIDGE_OT_import_pose
from .loras import CLASSES as _LORA_CLASSES
from .preview import POSEBRIDGE_OT_preview_pose_map, release_previews
from .render_pose_maps import POSEBRIDGE_OT_render_pose_maps

CLASSES = (
    POSEBRIDGE_OT_render_pose_maps,
    POSEBRIDGE_OT_preview_pose_map,
    POSEBRIDGE_OT_import_pose,
) + _MAP_CLASSES + _GENERATE_CLASSES + _LORA_CLASSES + _ADHERENCE_CLASSES

__all__ = ["CLASSES", "release_previews", "stop_local_backend"]
