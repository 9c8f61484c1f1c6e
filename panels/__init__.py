"""The PoseBridge tab in the 3D viewport's sidebar (N-panel)."""
from .pose_maps import CLASSES

__all__ = ["CLASSES"]
