"""One frame's files of the pose-map job, made without bpy so that a worker process can make them.

The main thread samples the rig (bpy) and hands each frame over as a ``MapFrame``: its keypoints
(a chunk of the sequence and the frame's index in it), where its files go, and its depth map or a
callable rasterising it (a DepthRaster). ``write_map_frame`` draws the pose map, encodes it as a
palette PNG, writes the depth map and the OpenPose JSON, the three together or none
(atomic_file). ``to_plain`` / ``write_plain`` carry a frame to a worker process as plain data.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np

from ..pose.formats import openpose_json
from ..pose.formats.atomic_file import write_files_atomic
from ..pose.keypoints import KeypointSequence
from ..pose.layouts import OPENPOSE_FULL
from .depth_frame import DepthRaster
from .png import encode_png
from .pose_map import PoseStyle, draw_pose_map_indexed


@dataclass(frozen=True)
class MapFrame:
    seq: KeypointSequence  # the chunk the frame was sampled in (OPENPOSE_FULL, read only)
    index: int  # the frame's place in seq
    pose_path: Path
    depth_path: Path
    keypoints_dir: Path
    style: PoseStyle
    parts: tuple[str, ...]  # the parts written to the JSON
    # The encoded depth map, a callable making it, or None: no depth map, and an old one at
    # depth_path is removed (Generate would send it beside the new pose map).
    depth: np.ndarray | Callable[[], np.ndarray] | None = None

    @property
    def frame(self) -> int:
        return int(self.seq.frame_numbers[self.index])


def write_map_frame(item: MapFrame) -> int:
    """Draw, encode and write one frame's files; returns its frame number. The files are written
    together (atomic_file.write_files_atomic): a failure (OSError) leaves the frame as it was."""
    width, height = item.seq.canvas
    indices, colours = draw_pose_map_indexed(item.seq.data[item.index], width, height, item.style)
    files = [(item.pose_path, encode_png(indices, palette=colours))]
    depth = item.depth() if callable(item.depth) else item.depth
    if depth is not None:
        files.append((item.depth_path, encode_png(depth, bit_depth=16 if depth.dtype == np.uint16 else 8)))
    files.append(openpose_json.frame_file(item.seq, item.index, item.keypoints_dir, parts=item.parts))
    write_files_atomic(files)
    if depth is None:
        item.depth_path.unlink(missing_ok=True)
    return item.frame


def _values(obj) -> dict:
    """A dataclass's fields, shallow (dataclasses.asdict would copy every array)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def to_plain(item: MapFrame) -> dict:
    """The frame as numpy arrays and builtins only, for a worker process (workers/processes.py),
    which cannot unpickle the add-on's own classes under Blender's package name."""
    depth = item.depth
    if isinstance(depth, DepthRaster):
        depth = ("raster", _values(depth))
    return {
        "points": item.seq.data[item.index], "canvas": tuple(item.seq.canvas), "frame": item.frame,
        "pose_path": str(item.pose_path), "depth_path": str(item.depth_path),
        "keypoints_dir": str(item.keypoints_dir), "style": _values(item.style), "parts": tuple(item.parts),
        "depth": depth,
    }


def write_plain(task: dict) -> int:
    """``write_map_frame`` of a frame made by ``to_plain`` (the worker process's side)."""
    seq = KeypointSequence(OPENPOSE_FULL, task["points"][None], task["canvas"], np.array([task["frame"]]))
    depth = task["depth"]
    if isinstance(depth, tuple):
        depth = DepthRaster(**depth[1])
    return write_map_frame(MapFrame(seq, 0, Path(task["pose_path"]), Path(task["depth_path"]),
                                    Path(task["keypoints_dir"]), PoseStyle(**task["style"]), task["parts"], depth))
