"""An extraction's output folder, written frame by frame as the detector finishes each one.

    OUT/keypoints/frame_NNNN_keypoints.json   OpenPose 1.3, one per frame (NNNN: video frame index)
    OUT/sequence.json                         ComfyUI POSE_KEYPOINT list, the frames in order
    OUT/extraction.json                       the video's rate, size and the frames read (below)
    OUT/maps/pose_NNNN.png                    with maps only: the pose maps
    OUT/world.json                            where the extractor has them: 3-D body landmarks

    output = ExtractionOutput(out_dir, canvas=(1080, 1920), parts=("body", "hands"), maps=True)
    output.add(12, 0.2, people)                # (people, len(IMPORT), 3) from Extractor.detect
    output.finish(info)                        # sequence.json and extraction.json

Every file is written through a temporary name and moved into place, so a reader (a download
while the job runs, a crash) sees whole files only. The keypoints and maps use the project's own
writers and drawing code with the pose-map job's defaults, so Import Pose reads the folder as it
reads any OpenPose output and a map is what the pose-map job would draw from the same points:
the points as written (``as_written``), so a map is exactly the drawing of its JSON file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...draw.png import write_bytes_atomic, write_png
from ...draw.pose_map import PoseStyle, draw_sequence_frame
from ...pose.formats import comfyui, openpose_json
from ...pose.keypoints import KeypointSequence
from ...pose.layouts import IMPORT

FORMAT = "posebridge-extraction"
VERSION = 1
KEYPOINTS_DIR = "keypoints"
MAPS_DIR = "maps"
SEQUENCE_FILE = "sequence.json"
INFO_FILE = "extraction.json"
WORLD_FILE = "world.json"
WORLD_FORMAT = "posebridge-world"
# The 3-D landmarks kept: the COCO-18 body (IMPORT's first 18 points), what the lifter reads.
WORLD_POINTS = 18
WORLD_AXES = "camera-aligned: x right, y down, z away from the camera; metres about the mid-hip"
FRAME_PREFIX = "frame"

# Extractor parts (backend/extract PARTS) -> the OpenPose parts the JSON files carry; the parts
# not extracted are written as OpenPose writes a part it did not look for: an empty list.
_JSON_PARTS = {"body": ("body",), "hands": ("hand_left", "hand_right"), "face": ("face",)}


def as_written(people: np.ndarray) -> np.ndarray:
    """The points as the JSON files hold them and the readers read them back: x, y rounded to 2
    decimals, confidence to 3, and absent (all zero) where the confidence rounds to 0, a
    coordinate is negative or not finite, or the point sits at exactly 0, 0
    (pose/formats/readers.py). Maps are drawn from these, so a map is the drawing of its file."""
    points = np.array(people, np.float64).reshape(-1, len(IMPORT), 3)
    points[..., :2] = np.round(points[..., :2], 2)
    points[..., 2] = np.round(points[..., 2], 3)
    finite = np.isfinite(points).all(axis=-1)
    xy = np.where(finite[..., None], points[..., :2], -1.0)
    absent = ~finite | (points[..., 2] <= 0) | (xy < 0).any(axis=-1) | (xy == 0).all(axis=-1)
    points[absent] = 0.0
    return points.astype(np.float32)


def json_parts(parts) -> tuple[str, ...]:
    return tuple(name for part in parts for name in _JSON_PARTS[part])


def keypoint_path(out_dir, frame: int) -> Path:
    return Path(out_dir) / KEYPOINTS_DIR / openpose_json.frame_file_name(frame, FRAME_PREFIX)


def map_path(out_dir, frame: int) -> Path:
    return Path(out_dir) / MAPS_DIR / f"pose_{frame:04d}.png"


@dataclass
class ExtractionOutput:
    """The folder being written. ``canvas`` is (width, height) of the pictures the points are in."""

    out_dir: Path
    canvas: tuple[int, int]
    parts: tuple[str, ...] = ("body", "hands", "face")
    maps: bool = False
    style: PoseStyle = field(default_factory=PoseStyle)  # the pose-map job's defaults
    frames: list[int] = field(default_factory=list)
    times: list[float | None] = field(default_factory=list)
    people: list[np.ndarray] = field(default_factory=list)
    world: list[np.ndarray | None] = field(default_factory=list)  # per frame: the first person's

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.canvas = (int(self.canvas[0]), int(self.canvas[1]))
        (self.out_dir / KEYPOINTS_DIR).mkdir(parents=True, exist_ok=True)
        if self.maps:
            (self.out_dir / MAPS_DIR).mkdir(exist_ok=True)

    def frame_sequence(self, frame: int, people: np.ndarray) -> KeypointSequence:
        """One frame as a KeypointSequence in the import layout (at least one, absent, person)."""
        people = as_written(people)
        if not len(people):
            people = np.zeros((1, len(IMPORT), 3), np.float32)
        return KeypointSequence(IMPORT, people[None], self.canvas, np.array([frame]))

    def add(self, frame: int, time: float | None, people: np.ndarray, world: np.ndarray | None = None) -> None:
        """Write one frame's keypoints (and map) now; keep them for sequence.json, and the
        extractor's 3-D landmarks (``Extractor.world``) for world.json."""
        seq = self.frame_sequence(int(frame), people)
        openpose_json.write_frame(seq, 0, self.out_dir / KEYPOINTS_DIR, prefix=FRAME_PREFIX,
                                  parts=json_parts(self.parts))
        if self.maps:
            write_png(map_path(self.out_dir, int(frame)), draw_sequence_frame(seq, 0, self.style))
        self.frames.append(int(frame))
        self.times.append(None if time is None else float(time))
        self.people.append(seq.data[0])
        self.world.append(None if world is None or not len(world) else np.asarray(world, np.float32)[0, :WORLD_POINTS])

    def sequence(self) -> KeypointSequence | None:
        """Every frame written so far, people padded to the most in a frame; None before any."""
        if not self.frames:
            return None
        most = max(len(p) for p in self.people)
        data = np.zeros((len(self.frames), most, len(IMPORT), 3), np.float32)
        for index, people in enumerate(self.people):
            data[index, : len(people)] = people
        return KeypointSequence(IMPORT, data, self.canvas, np.array(self.frames))

    def finish(self, info: dict) -> dict:
        """Write sequence.json (when a frame was written) and extraction.json: ``info`` holds the
        source's keys (video, fps, width, height, frame_count, rotation, every, start, end,
        extractor, multi_person, note, complete); the frames and times come from here."""
        seq = self.sequence()
        if seq is not None:
            comfyui.write_sequence(seq, self.out_dir / SEQUENCE_FILE, parts=json_parts(self.parts))
        document = {
            "format": FORMAT,
            "version": VERSION,
            **info,
            "frames": list(self.frames),
            "times": None if any(t is None for t in self.times) else [round(t, 6) for t in self.times],
            "people": [int(np.count_nonzero((p[..., 2] > 0).any(axis=1))) for p in self.people],
        }
        write_bytes_atomic(self.out_dir / INFO_FILE, json.dumps(document, indent=1).encode("utf-8"))
        self._write_world(info.get("extractor", ""))
        return document

    def _write_world(self, source: str) -> None:
        """world.json: per frame the first person's 3-D body landmarks (x, y, z, confidence per
        COCO-18 point, rounded to the millimetre) or null; not written when no frame has any."""
        if not any(w is not None for w in self.world):
            return
        points = [None if w is None else np.round(w.astype(np.float64), 4).tolist() for w in self.world]
        document = {"format": WORLD_FORMAT, "version": VERSION, "source": source, "axes": WORLD_AXES,
                    "layout": "coco18", "frames": list(self.frames), "points": points}
        write_bytes_atomic(self.out_dir / WORLD_FILE, json.dumps(document).encode("utf-8"))
