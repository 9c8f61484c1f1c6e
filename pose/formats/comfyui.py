"""ComfyUI's POSE_KEYPOINT: a list of frames, each ``{people, canvas_width, canvas_height}``.

People use OpenPose's keys (``pose_keypoints_2d`` ...) with coordinates in pixels of the
canvas, as ComfyUI's DWPose preprocessor writes them, so the poses feed ComfyUI's pose nodes.
"""
from __future__ import annotations

from pathlib import Path

from ..keypoints import KeypointSequence
from .openpose_json import frame_people, write_json_atomic


def sequence_document(seq: KeypointSequence, parts=None) -> list[dict]:
    width, height = seq.canvas
    return [
        {"people": frame_people(seq, frame, parts), "canvas_width": width, "canvas_height": height}
        for frame in range(seq.frame_count)
    ]


def write_sequence(seq: KeypointSequence, path: Path, parts=None) -> Path:
    write_json_atomic(Path(path), sequence_document(seq, parts))
    return Path(path)
