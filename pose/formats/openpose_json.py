"""OpenPose's per-frame JSON (``version`` 1.3): one file per frame, a ``people`` list.

Each person carries flat ``[x0, y0, c0, x1, y1, c1, ...]`` lists in pixels of the image:
``pose_keypoints_2d`` (body), ``face_keypoints_2d``, ``hand_left_keypoints_2d`` and
``hand_right_keypoints_2d``. Absent points are written ``0, 0, 0``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..keypoints import KeypointSequence
from .atomic_file import write_bytes_atomic

# Which layout part feeds which OpenPose key.
PART_KEYS = (
    ("body", "pose_keypoints_2d"),
    ("face", "face_keypoints_2d"),
    ("hand_left", "hand_left_keypoints_2d"),
    ("hand_right", "hand_right_keypoints_2d"),
)
OPENPOSE_VERSION = 1.3


def _flat(points: np.ndarray) -> list[float]:
    """(n, 3) -> flat list, absent points as exact zeros, 2 decimals for x/y."""
    points = points.astype(np.float64, copy=True)
    absent = points[:, 2] <= 0
    points[absent] = 0.0
    points[:, :2] = np.round(points[:, :2], 2)
    points[:, 2] = np.round(points[:, 2], 3)
    return points.reshape(-1).tolist()


def person_dict(seq: KeypointSequence, frame: int, person: int, parts=None) -> dict:
    """One person of one frame as an OpenPose ``people[]`` entry (also ComfyUI's).

    ``parts`` limits which parts are written (others become ``[]``, as OpenPose writes a
    part it did not detect); by default every part of the layout.
    """
    entry: dict = {"person_id": [-1]}
    for part_name, key in PART_KEYS:
        if seq.layout.has_part(part_name) and (parts is None or part_name in parts):
            part = seq.layout.part(part_name)
            entry[key] = _flat(seq.data[frame, person, part.start:part.stop])
        else:
            entry[key] = []
    for key in ("pose_keypoints_3d", "face_keypoints_3d", "hand_left_keypoints_3d", "hand_right_keypoints_3d"):
        entry[key] = []
    return entry


def frame_people(seq: KeypointSequence, frame: int, parts=None) -> list[dict]:
    """Everyone with at least one present point in this frame."""
    present = seq.data[frame, :, :, 2] > 0
    return [person_dict(seq, frame, p, parts) for p in range(seq.people_count) if present[p].any()]


def frame_document(seq: KeypointSequence, frame: int, parts=None) -> dict:
    return {"version": OPENPOSE_VERSION, "people": frame_people(seq, frame, parts)}


def json_bytes(document) -> bytes:
    """Compact JSON, encoded in one call: json.dump to a file goes through the encoder's chunked
    path, about 3x slower."""
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def write_json_atomic(path: Path, document) -> None:
    """Write ``document`` as compact JSON, whole or not at all (atomic_file)."""
    write_bytes_atomic(path, json_bytes(document))


def frame_file_name(frame_number: int, prefix: str = "pose") -> str:
    return f"{prefix}_{frame_number:04d}_keypoints.json"


def frame_file(seq: KeypointSequence, frame: int, folder: Path, prefix: str = "pose", parts=None) -> tuple[Path, bytes]:
    """(path, JSON bytes) of one frame's file in ``folder``, not yet written (a caller writing
    it together with other files: draw/map_frame.py)."""
    path = Path(folder) / frame_file_name(int(seq.frame_numbers[frame]), prefix)
    return path, json_bytes(frame_document(seq, frame, parts))


def write_frame(seq: KeypointSequence, frame: int, folder: Path, prefix: str = "pose", parts=None) -> Path:
    path, data = frame_file(seq, frame, folder, prefix, parts)
    write_bytes_atomic(path, data)
    return path


def read_people(document: dict) -> list[dict[str, np.ndarray]]:
    """Each person's parts as (n, 3) float32 arrays keyed by OpenPose key; missing keys omitted."""
    if not isinstance(document, dict) or not isinstance(document.get("people"), list):
        raise ValueError("not an OpenPose frame: expected an object with a 'people' list")
    people = []
    for index, person in enumerate(document["people"]):
        parts = {}
        for _, key in PART_KEYS:
            values = person.get(key)
            if not values:
                continue
            array = np.asarray(values, dtype=np.float32)
            if array.ndim != 1 or array.size % 3:
                raise ValueError(f"person {index}: {key} must be a flat list of x, y, confidence triples")
            parts[key] = array.reshape(-1, 3)
        people.append(parts)
    return people


def read_frame(path: Path) -> list[dict[str, np.ndarray]]:
    with open(path, encoding="utf-8") as handle:
        try:
            document = json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not JSON ({error})") from None
    return read_people(document)
