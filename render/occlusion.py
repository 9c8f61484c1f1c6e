"""Occlusion-aware keypoints, Blender side: the first surface at every pixel of each frame.

The pose-map job hides keypoints with ``draw.occlusion`` against a z-buffer of the evaluated scene
as the render shows it (render/depth_scene.py: armature-deformed meshes, modifiers, render
visibility), from the depsgraph ``frame_set`` already evaluated for the keypoints. With depth maps
on, their raster is reused (``DepthFrames.collector``); otherwise this rasterises the frame once
more, at the job's size so that a keypoint's pixel is exactly the map's pixel.
"""
from __future__ import annotations

import numpy as np

from .depth_maps import depth_layers, nearest_surface
from .depth_scene import SCENE, SceneTriangles

# Nearest-surface buffers are kept for a chunk of frames (the keypoints are placed after the
# chunk is sampled): at most this many bytes of them, i.e. 16 frames up to 1080p, fewer above.
BUFFER_BUDGET = 160 * 2 ** 20


class SurfaceFrames:
    """A ``sample_frames`` hook source: every rendered surface of the job's frames."""

    def __init__(self, armatures, width: int, height: int):
        # The whole scene is the subject: everything rendered hides keypoints; holdouts (the
        # reader's occluders) too, as the render shows background there.
        self.reader = SceneTriangles(SCENE, armatures)
        self.size = (width, height)

    def collector(self, surfaces: dict):
        """A hook filling ``surfaces`` {chunk index: (H, W) depth of the nearest surface}."""
        def collect(index, graph, world_to_camera, projection):
            triangles = self.reader.read(graph, world_to_camera)
            surfaces[index] = nearest_surface(*depth_layers(triangles, projection, *self.size))
        return collect


def chunk_frames(width: int, height: int, most: int) -> int:
    """How many frames' buffers fit the budget (at least one, at most ``most``)."""
    per_frame = width * height * np.dtype(np.float32).itemsize
    return max(1, min(most, BUFFER_BUDGET // per_frame))
