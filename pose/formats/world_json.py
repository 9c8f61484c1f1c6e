"""``world.json``: a detector's own 3-D body, per frame, beside an extraction's keypoints.

Written by the backend's extraction (``backend/extract/output.py``) where the extractor has 3-D
landmarks (MediaPipe's world landmarks); read by the import as a second witness to depth:

    {"format": "posebridge-world", "version": 1, "source": "mediapipe", "layout": "coco18",
     "axes": "camera-aligned: x right, y down, z away from the camera; metres about the mid-hip",
     "frames": [10, 12, ...], "points": [[[x, y, z, confidence] x 18] or null, ...]}

``frames`` are the video frame indices of the keypoint files; a frame without a body is null.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WORLD_FILE = "world.json"
FORMAT = "posebridge-world"
POINTS = 18  # COCO-18


@dataclass
class WorldLandmarks:
    source: str  # the extractor, e.g. "mediapipe"
    frames: np.ndarray  # (F,) video frame indices
    points: np.ndarray  # (F, 18, 4) x, y, z (metres, camera-aligned, y down, z away), confidence; 0 absent


def read_world(path) -> WorldLandmarks | None:
    """The world landmarks in ``path`` (a world.json file, or the folder holding it, or the
    extraction's keypoints folder beside it); None when there is no such file. Raises
    ValueError naming the problem for a file that is not one."""
    path = Path(path)
    candidates = [path] if path.suffix == ".json" else [path / WORLD_FILE, path.parent / WORLD_FILE]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        return None
    try:
        document = json.loads(found.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{found}: not readable JSON ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{found}: not a {FORMAT} file")
    frames, rows = document.get("frames"), document.get("points")
    if not isinstance(frames, list) or not isinstance(rows, list) or len(frames) != len(rows):
        raise ValueError(f"{found}: 'frames' and 'points' must be lists of one length")
    points = np.zeros((len(rows), POINTS, 4))
    for index, row in enumerate(rows):
        if row is None:
            continue
        values = np.asarray(row, dtype=np.float64)
        if values.shape != (POINTS, 4) or not np.isfinite(values).all():
            raise ValueError(f"{found}: frame {frames[index]} must hold {POINTS} finite x, y, z, confidence rows")
        points[index] = values
    try:
        numbers = np.asarray(frames, dtype=np.int64)
    except (TypeError, ValueError):
        raise ValueError(f"{found}: 'frames' must be integers") from None
    return WorldLandmarks(str(document.get("source", "")), numbers, points)
