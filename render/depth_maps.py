"""Depth maps for the pose-map job: options, the shot's depth range, one frame's grey image.

One normalisation for the whole shot, never per frame (per-frame min/max makes a static wall
flicker as a character walks): either the user's near/far, or the range the shot's frames
actually show, measured in a first pass over the frame range at reduced resolution. That pass
costs one more scene evaluation per frame plus a small raster; keeping full-resolution depth of
every frame in memory instead would need 8 MB per 1080p frame, i.e. gigabytes for a long shot.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..draw.depth_encode import MODES, DepthRange, encode_depth, shot_depth_range
from ..draw.depth_frame import (  # noqa: F401 (depth_image, clip_range: part of this module's API)
    DepthRaster, clip_range, depth_image, depth_layers, nearest_surface, shown_depth,
)
from .depth_scene import CHARACTERS, SUBJECTS, SceneTriangles
from .sampling import sample_frames

BIT_DEPTHS = (8, 16)
# Longest side of the range pass's images: nearest and farthest surfaces are large enough to
# be seen at this size (a thin limb may be missed: it then clips at the near end, no flicker).
RANGE_SIDE = 128
RANGE_CHUNK = 16


@dataclass(frozen=True)
class DepthOptions:
    mode: str = "inverse"  # inverse (near detail, what ControlNet depth models were trained on) | linear
    bits: int = 8
    subject: str = "scene"  # scene | characters (the set masked out)
    near_far: tuple[float, float] | None = None  # None: the shot's own range

    def check(self) -> str | None:
        """What is wrong with the options, worded for the user, or None."""
        if self.mode not in MODES:
            return f"unknown depth mode {self.mode!r} (known: {', '.join(MODES)})"
        if self.bits not in BIT_DEPTHS:
            return f"depth bits must be 8 or 16, got {self.bits}"
        if self.subject not in SUBJECTS:
            return f"unknown depth subject {self.subject!r} (known: {', '.join(SUBJECTS)})"
        if self.near_far is not None:
            near, far = self.near_far
            if not (0 < near < far < float("inf")):
                return f"depth range needs 0 < near < far, got near {near}, far {far}"
        return None

    def describe(self) -> str:
        shown = "characters" if self.subject == CHARACTERS else "scene"
        return f"{self.mode} {self.bits}-bit depth of the {shown}"


def range_size(width: int, height: int) -> tuple[int, int]:
    scale = min(1.0, RANGE_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def measure_range(scene, frames, armatures, camera, width: int, height: int, reader: SceneTriangles):
    """Step generator over the frame range: yields the fraction done, returns the DepthRange.

    The projection is the full-size one (the same framing); only fewer pixels are sampled."""
    small = range_size(width, height)
    near, far = np.inf, -np.inf
    for first in range(0, len(frames), RANGE_CHUNK):
        chunk = frames[first:first + RANGE_CHUNK]
        images = []

        def collect(_index, graph, world_to_camera, projection):
            images.append(depth_image(reader.read(graph, world_to_camera), projection, *small))

        sample_frames(scene, chunk, armatures, camera, width, height, each_frame=collect)
        finite = [d for d in images if np.isfinite(d).any()]
        if finite:
            # Chunk by chunk, so memory stays bounded however long the shot.
            chunk_range = shot_depth_range(finite)
            near, far = min(near, chunk_range.near), max(far, chunk_range.far)
        yield (first + len(chunk)) / len(frames)
    return make_range(near, far)


def make_range(near: float, far: float):
    """A DepthRange; an empty shot (nothing in view) gets any valid one: all its maps are black."""
    if not np.isfinite(near) or not np.isfinite(far):
        near, far = 1.0, 2.0
    if far <= near:
        far = near * 1.001 + 1e-6  # a flat shot: one grey level
    return DepthRange(float(near), float(far))


def encode(depth: np.ndarray, depth_range, options: DepthOptions) -> np.ndarray:
    return encode_depth(depth, depth_range, mode=options.mode, bit_depth=options.bits)


class DepthFrames:
    """The job's depth side: the range first (a step generator), then a hook for
    ``sample_frames`` that turns each evaluated frame into its encoded grey image."""

    def __init__(self, options: DepthOptions, armatures, width: int, height: int):
        self.options = options
        self.reader = SceneTriangles(options.subject, armatures)
        self.armatures = list(armatures)
        self.size = (width, height)
        self.range = make_range(*options.near_far) if options.near_far else None

    def measure(self, scene, frames, camera):
        """Step generator: the shot's range unless the user set one; yields fractions."""
        if self.range is None:
            self.range = yield from measure_range(scene, frames, self.armatures, camera, *self.size, self.reader)

    def collector(self, images: dict, surfaces: dict | None = None):
        """A sample_frames hook filling ``images`` {chunk index: the frame's encoded (H, W)
        image, or the DepthRaster that makes it} and, when given, ``surfaces`` {chunk index:
        nearest_surface}.

        The scene is read now (bpy: the main thread). Without ``surfaces`` the rasterising is
        left to the job's workers (a DepthRaster); occlusion needs the surfaces before the
        keypoints are placed, so then the raster is made now and shared."""
        options = self.options

        def collect(index, graph, world_to_camera, projection):
            triangles = self.reader.read(graph, world_to_camera)
            if surfaces is None:
                images[index] = DepthRaster(triangles.subject, triangles.occluders, np.asarray(projection),
                                            *self.size, self.range.near, self.range.far, options.mode, options.bits)
            else:
                layers = depth_layers(triangles, projection, *self.size)
                surfaces[index] = nearest_surface(*layers)
                images[index] = encode(shown_depth(*layers), self.range, options)
        return collect
