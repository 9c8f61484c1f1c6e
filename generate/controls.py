"""The control inputs of a generation: pose maps (and depth maps) found in folders, by frame.

The pose-map job writes ``pose_NNNN.png`` (``{frame:04d}``, so frame -5 is ``pose_-005.png``);
depth maps follow the same pattern as ``depth_NNNN.png``, and generated frames land as
``frame_NNNN.png`` with the number of the pose map they came from. Frame numbers are read with
the same parser the keypoint reader uses, so both sides agree on signs and padding.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..pose.formats.sources import numbered_pngs as _numbered_pngs

POSE_PREFIX = "pose"
DEPTH_PREFIX = "depth"
OUTPUT_PREFIX = "frame"


class ControlFolderError(ValueError):
    """A pose or depth folder that cannot be used; the message names the folder and the problem."""


@dataclass(frozen=True)
class ControlFrame:
    """One frame's control images: files, read as bytes when hashed or sent (never re-encoded)."""

    frame: int
    pose: Path
    depth: Path | None = None


def frame_file_name(prefix: str, frame: int) -> str:
    """``frame_file_name("pose", 12)`` -> ``pose_0012.png``; the pose-map job's own padding."""
    return f"{prefix}_{int(frame):04d}.png"


def numbered_pngs(folder: Path, prefix: str) -> dict[int, Path]:
    """``{frame: path}`` of the ``<prefix>_<number>.png`` files in ``folder``; two files with one
    frame number are a ControlFolderError rather than a guess."""
    try:
        return _numbered_pngs(folder, prefix)
    except ValueError as error:
        raise ControlFolderError(str(error)) from None


def _existing_folder(folder, what: str) -> Path:
    folder = Path(folder)
    if not folder.exists():
        raise ControlFolderError(f"{folder}: no such {what} folder")
    if not folder.is_dir():
        raise ControlFolderError(f"{folder}: not a folder (expected a folder of {what} maps)")
    return folder


def _frame_list(numbers: Iterable[int]) -> str:
    numbers = sorted(numbers)
    shown = ", ".join(str(n) for n in numbers[:8])
    return shown + (f" and {len(numbers) - 8} more" if len(numbers) > 8 else "")


def control_frames(poses_dir, depth_dir=None, frames: Iterable[int] | None = None) -> list[ControlFrame]:
    """The pose maps in ``poses_dir`` paired by frame number with the depth maps in ``depth_dir``.

    ``frames`` limits the result to those frame numbers (each must have a pose map). With a depth
    folder, every pose frame used needs its depth map: a generation gets depth for all frames or
    for none (the backend's rule), so a gap is an error naming the frames, not a silent skip.
    Returns frames in ascending order.
    """
    poses_dir = _existing_folder(poses_dir, "pose")
    poses = numbered_pngs(poses_dir, POSE_PREFIX)
    if not poses:
        raise ControlFolderError(
            f"{poses_dir}: no pose maps in this folder (expected {frame_file_name(POSE_PREFIX, 1)}, ...)"
        )
    if frames is not None:
        wanted = sorted({int(f) for f in frames})
        if not wanted:
            raise ControlFolderError("no frames asked for")
        absent = [f for f in wanted if f not in poses]
        if absent:
            raise ControlFolderError(f"{poses_dir}: no pose map for frame(s) {_frame_list(absent)}")
        poses = {f: poses[f] for f in wanted}
    depths: dict[int, Path] = {}
    if depth_dir is not None:
        depth_dir = _existing_folder(depth_dir, "depth")
        depths = numbered_pngs(depth_dir, DEPTH_PREFIX)
        if not depths:
            raise ControlFolderError(
                f"{depth_dir}: no depth maps in this folder (expected {frame_file_name(DEPTH_PREFIX, 1)}, ...)"
            )
        absent = [f for f in poses if f not in depths]
        if absent:
            example = frame_file_name(DEPTH_PREFIX, min(absent))
            raise ControlFolderError(
                f"{depth_dir}: no depth map for frame(s) {_frame_list(absent)} (expected {example}); "
                "every pose frame needs one, or leave the depth folder out"
            )
    return [ControlFrame(f, poses[f], depths.get(f)) for f in sorted(poses)]
