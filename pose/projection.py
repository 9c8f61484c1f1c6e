"""Project 3-D world points to image pixels exactly as Blender renders them through a camera.

Matrices are Blender's: ``world_to_camera`` is the camera's ``matrix_world`` with its scale
removed, inverted (the camera looks down its local -Z, +Y up), and ``projection`` is the
OpenGL-style window matrix that ``Object.calc_matrix_camera`` returns and the render engines use.
Normalised device coordinates (NDC) -1..1 then cover the whole image: NDC x = -1 is the left
edge of the first pixel column and +1 the right edge of the last; NDC y = +1 is the top edge.

Pixel convention (the one of OpenPose / ControlNet keypoints and OpenCV): origin top-left, y down,
and the CENTRE of pixel column i is x = i, so the image spans -0.5 .. width - 0.5 (likewise y).
Blender's rasterisers and Cycles sample pixel i at i + 0.5 measured from the left image edge, so

    x = (ndc_x + 1) * width / 2 - 0.5        y = (1 - ndc_y) * height / 2 - 0.5

puts a point exactly on the centre of the pixel Blender shades for it (checked against Workbench
and Cycles renders in tests/blender/test_camera_projection.py).

Visibility is what a detector could see: the point is in front of the camera (camera-space
z < 0) and inside the image, -0.5 <= x < width - 0.5 and -0.5 <= y < height - 0.5, i.e. inside
some pixel. The clip_start / clip_end distances are deliberately ignored: they cull geometry, but a
keypoint is a property of the character, not a surface that is clipped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def project_points(points_world, world_to_camera, projection, width: int, height: int):
    """Pixel positions and visibility of world-space points.

    Either one camera: matrices (4, 4) and points (..., 3); or one camera per frame: matrices
    (frames, 4, 4) and points (frames, ..., 3), where a leading points axis of 1 is broadcast
    over all frames (static points seen by an animated camera).

    Returns ``xy`` float64 (..., 2) in pixels (convention in the module docstring) and ``visible``
    bool (...). ``xy`` of points in front of the camera is meaningful even outside the image (for
    clipping limbs at the frame edge); for points behind the camera it is not (NaN on the camera
    plane itself).
    """
    points = np.asarray(points_world, dtype=np.float64)
    world_to_camera = np.asarray(world_to_camera, dtype=np.float64)
    projection = np.asarray(projection, dtype=np.float64)
    if points.shape[-1:] != (3,):
        raise ValueError(f"points must be (..., 3), got {points.shape}")
    if world_to_camera.shape[-2:] != (4, 4) or world_to_camera.ndim not in (2, 3):
        raise ValueError(
            f"world_to_camera must be (4, 4) or (frames, 4, 4), got {world_to_camera.shape}"
        )
    if projection.shape != world_to_camera.shape:
        raise ValueError(
            f"projection {projection.shape} and world_to_camera {world_to_camera.shape} "
            "differ in shape"
        )
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")

    # Only four rows are needed: clip x, y, w and camera-space z (for "in front").
    full = projection @ world_to_camera
    rows = np.stack(
        [full[..., 0, :], full[..., 1, :], full[..., 3, :], world_to_camera[..., 2, :]], axis=-2
    )
    homogeneous = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], axis=-1)
    if rows.ndim == 3:
        frames = rows.shape[0]
        if points.ndim < 2 or points.shape[0] not in (1, frames):
            raise ValueError(
                f"{frames} per-frame matrices need points shaped ({frames}, ..., 3) "
                f"or (1, ..., 3), got {points.shape}"
            )
        # (frames, all points of a frame, 4) @ (frames, 4, 4): one small matmul per frame.
        flat = homogeneous.reshape(points.shape[0], -1, 4) @ rows.swapaxes(-1, -2)
        transformed = flat.reshape((frames,) + points.shape[1:-1] + (4,))
    else:
        transformed = homogeneous @ rows.T
    clip_x, clip_y, clip_w, camera_z = np.moveaxis(transformed, -1, 0)

    with np.errstate(divide="ignore", invalid="ignore"):
        ndc_x = np.where(clip_w != 0, clip_x / clip_w, np.nan)
        ndc_y = np.where(clip_w != 0, clip_y / clip_w, np.nan)
    x = (ndc_x + 1.0) * (width / 2.0) - 0.5
    y = (1.0 - ndc_y) * (height / 2.0) - 0.5
    xy = np.stack([x, y], axis=-1)

    in_front = camera_z < 0
    with np.errstate(invalid="ignore"):  # NaN compares False: not visible
        inside = (x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)
    return xy, in_front & inside


@dataclass
class CameraProjection:
    """A render camera sampled per frame: what ``project_points`` needs, frame by frame."""

    world_to_camera: np.ndarray  # (frames, 4, 4) float64
    projection: np.ndarray  # (frames, 4, 4) float64, Blender's window matrix
    width: int  # output image size in pixels
    height: int
    frame_numbers: np.ndarray  # (frames,) int, e.g. Blender frame numbers

    def __post_init__(self) -> None:
        self.world_to_camera = np.asarray(self.world_to_camera, dtype=np.float64)
        self.projection = np.asarray(self.projection, dtype=np.float64)
        self.frame_numbers = np.asarray(self.frame_numbers, dtype=np.int64)
        frames = self.frame_numbers.shape[0] if self.frame_numbers.ndim == 1 else -1
        for name in ("world_to_camera", "projection"):
            shape = getattr(self, name).shape
            if shape != (frames, 4, 4):
                raise ValueError(
                    f"{name} must be (frames, 4, 4) with one matrix per frame number "
                    f"({self.frame_numbers.shape} frame numbers), got {shape}"
                )
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        self.width, self.height = int(self.width), int(self.height)

    @property
    def frame_count(self) -> int:
        return self.frame_numbers.shape[0]

    @property
    def canvas(self) -> tuple[int, int]:
        """(width, height), as ``KeypointSequence.canvas``."""
        return (self.width, self.height)

    def project(self, points_world):
        """``project_points`` with this camera: points (frames, ..., 3) or (1, ..., 3)."""
        return project_points(
            points_world, self.world_to_camera, self.projection, self.width, self.height
        )
