"""One frame's depth from its triangles in camera space (pure numpy: any thread or process).

The subject and the occluders (holdouts; the set, when only the characters are shown) are
rasterised into two z-buffers; the depth map shows the subject with background where an
occluder is in front, and the occlusion test reads the nearest surface of either.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .depth_encode import DepthRange, encode_depth
from .depth_raster import rasterize_depth


def clip_range(projection) -> tuple[float, float]:
    """The camera's clip start / end, read back from its window matrix (calc_matrix_camera
    builds it from them): the render shows nothing nearer or farther."""
    m = np.asarray(projection, dtype=np.float64)
    if m[3, 3] == 1.0:  # orthographic: m22 = -2 / (f - n), m23 = -(f + n) / (f - n)
        span = -2.0 / m[2, 2]
        far_plus_near = -m[2, 3] * span
        return (far_plus_near - span) / 2.0, (far_plus_near + span) / 2.0
    # perspective: m22 = -(f + n) / (f - n), m23 = -2 f n / (f - n)
    return m[2, 3] / (m[2, 2] - 1.0), m[2, 3] / (m[2, 2] + 1.0)


def depth_image(triangles, projection, width: int, height: int) -> np.ndarray:
    """(H, W) float32 view-axis depth, inf where empty; occluders punch background holes."""
    return shown_depth(*depth_layers(triangles, projection, width, height))


def depth_layers(triangles, projection, width: int, height: int):
    """(subject, occluders) z-buffers (H, W) float32 of a frame's two triangle sets, clipped as
    the camera clips; occluders is None when there are none."""
    near, far = clip_range(projection)
    near = max(near, 1e-6)

    def raster(tris):
        return rasterize_depth(tris, projection, width, height, near=near, far=max(far, near * 2))

    return raster(triangles.subject), (raster(triangles.occluders) if len(triangles.occluders) else None)


def shown_depth(subject, occluders):
    """What the depth map shows: the subject, background where an occluder is in front."""
    return subject if occluders is None else np.where(occluders < subject, np.float32(np.inf), subject)


def nearest_surface(subject, occluders):
    """The first surface on each pixel's sight line, whatever it is (the occlusion test's
    z-buffer: holdouts and a masked-out set hide keypoints as they hide the character)."""
    return subject if occluders is None else np.minimum(subject, occluders)


@dataclass(frozen=True)
class DepthRaster:
    """Everything a frame's encoded depth map needs once the scene is read: a worker makes it."""

    subject: np.ndarray  # (T, 3, 3) float32 triangles in camera space
    occluders: np.ndarray
    projection: np.ndarray  # the camera's 4x4 window matrix
    width: int
    height: int
    near: float  # the shot's DepthRange
    far: float
    mode: str
    bits: int

    def __call__(self) -> np.ndarray:
        depth = depth_image(self, self.projection, self.width, self.height)
        return encode_depth(depth, DepthRange(self.near, self.far), mode=self.mode, bit_depth=self.bits)
