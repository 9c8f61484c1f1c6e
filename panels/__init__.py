"""The PoseBridge tab in the 3D viewport's sidebar (N-panel)."""
from .generate import POSEBRIDGE_PT_generate, POSEBRIDGE_UL_loras
from .pose_maps import CLASSES as _POSE_MAP_CLASSES

CLASSES = _POSE_MAP_CLASSES + (POSEBRIDGE_UL_loras, POSEBRIDGE_PT_generate)

__all__ = ["CLASSES"]
