"""Reading detector keypoint files (OpenPose, ComfyUI, DWPose) into one KeypointSequence.

``load_keypoints(path)`` reads a folder of OpenPose frame files, a ComfyUI POSE_KEYPOINT file or
one OpenPose frame (see :mod:`.sources`), recognises the body layout from its point count
(COCO-18, COCO-17, COCO-17 + feet, BODY_25, BODY_25B, DWPose-133), hands (21) and face (68/70),
and returns the clip in the IMPORT layout, every point under its name, in pixels.

Conventions: a point is absent (confidence 0, x = y = 0) when its confidence is <= 0 or not a
number, a coordinate is negative, not finite or absurdly large (DWPose writes -1), or it sits at
exactly 0, 0 (OpenPose writes 0, 0, 0). The people axis is the largest number of people in a frame; the
people a frame lacks are all absent. Neck and mid_hip are derived (midpoint, lower confidence)
when the source layout has no such point.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..keypoints import KeypointSequence
from ..layouts import (
    BODY_LAYOUTS_BY_COUNT, FACE68, FACE70, HAND21, IMPORT, Layout, pick_body_layout,
)
from .sources import KeypointFileError, RawClip, read_source

__all__ = ["COORDINATES", "ImportedKeypoints", "KeypointFileError", "load_keypoints", "parse_canvas"]

COORDINATES = ("auto", "pixels", "normalized")
# Normalised coordinates are fractions of the canvas; detectors put a few points slightly past
# the edge. No pixel-coordinate clip fits inside 1.05 px, so the margin cannot mislead.
NORMALIZED_LIMIT = 1.05
# No image is a million pixels across: a coordinate past this is a writer's garbage (float32's
# largest number, say), and would overflow the tracking and lift maths. Such a point is absent.
MAX_COORDINATE = 1e6

# (IMPORT part, OpenPose key, the point counts it may have). Hands (HAND21) and faces (FACE68,
# FACE70's first 68) are in IMPORT's order already, so they are copied as they come.
_PARTS = (
    ("body", "pose_keypoints_2d", ()),
    ("hand_left", "hand_left_keypoints_2d", (len(HAND21),)),
    ("hand_right", "hand_right_keypoints_2d", (len(HAND21),)),
    ("face", "face_keypoints_2d", (len(FACE68), len(FACE70))),
)
_BODY_LAYOUTS = {
    layout.name: layout for group in BODY_LAYOUTS_BY_COUNT.values() for layout in group
}


@dataclass(frozen=True)
class ImportedKeypoints:
    """A keypoint clip as read from a file, in the IMPORT layout, with what was found out.

    ``sequence`` is in pixels of ``canvas`` once the canvas is known. While it is not
    (``needs_canvas``: a folder of OpenPose files and no ``canvas`` argument), ``sequence``
    holds a stand-in: normalised coordinates on a 1x1 canvas, or pixel coordinates on the
    smallest canvas holding every point; ``with_canvas(w, h)`` gives the real thing.
    """

    sequence: KeypointSequence
    source_layout: str  # the body layout found, e.g. "body25b"
    parts: tuple[str, ...]  # parts with any point: "body", "hand_left", "hand_right", "face"
    coordinates: str  # "pixels" or "normalized": how the file gave them
    canvas: tuple[int, int] | None
    canvas_source: str  # "file", "argument", "unknown" (or what with_canvas was told)
    path: Path
    notes: tuple[str, ...] = ()

    @property
    def needs_canvas(self) -> bool:
        return self.canvas is None

    def with_canvas(self, width: int, height: int, source: str = "argument") -> "ImportedKeypoints":
        """The same clip on a ``width`` x ``height`` canvas; normalised coordinates are rescaled."""
        canvas = parse_canvas((width, height))
        data = self.sequence.data.copy()
        if self.coordinates == "normalized":
            old_w, old_h = self.sequence.canvas
            data[..., 0] *= canvas[0] / old_w
            data[..., 1] *= canvas[1] / old_h
        sequence = KeypointSequence(IMPORT, data, canvas, self.sequence.frame_numbers.copy())
        note = f"canvas {canvas[0]}x{canvas[1]} from {source}"
        return replace(
            self, sequence=sequence, canvas=canvas, canvas_source=source, notes=self.notes + (note,)
        )


def parse_canvas(value) -> tuple[int, int] | None:
    """``None``, ``(w, h)`` or ``"WxH"`` -> ``(w, h)`` positive integers (or None)."""
    if value is None:
        return None
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", value)
        if not match:
            raise ValueError(f"canvas must be WIDTHxHEIGHT (e.g. 1920x1080), got {value!r}")
        value = (match.group(1), match.group(2))
    try:
        width, height = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"canvas must be (width, height), got {value!r}") from None
    if width <= 0 or height <= 0:
        raise ValueError(f"canvas must be positive, got {width}x{height}")
    return width, height


def _body_choice(layout) -> Layout | None:
    """None/"auto" or a body layout (or a name such as "BODY_25B", "coco-18") -> Layout or None."""
    if layout is None or isinstance(layout, Layout):
        return layout
    key = re.sub(r"[-_ ]", "", str(layout).lower())
    if key == "auto":
        return None
    for name, candidate in _BODY_LAYOUTS.items():
        if re.sub(r"_", "", name) == key:
            return candidate
    known = ", ".join(sorted(_BODY_LAYOUTS))
    raise ValueError(f"unknown body layout {layout!r} (known: auto, {known})")


_MAPS: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _to_import(layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(source indices, IMPORT indices) of the points both layouts name."""
    if layout.name not in _MAPS:
        pairs = [(i, IMPORT.find(p)) for i, p in enumerate(layout.points)]
        pairs = [(i, j) for i, j in pairs if j is not None]
        _MAPS[layout.name] = (np.array([i for i, _ in pairs]), np.array([j for _, j in pairs]))
    return _MAPS[layout.name]


def _clear_absent(points: np.ndarray) -> None:
    """Zero every point a detector marks missing (see the module docstring), in place."""
    x, y, c = points[..., 0], points[..., 1], points[..., 2]
    with np.errstate(invalid="ignore"):
        # ~(a >= 0) is also true for NaN; inf and absurd sizes fail the < MAX_COORDINATE test.
        absent = ~(c > 0) | ~(x >= 0) | ~(y >= 0) | ((x == 0) & (y == 0))
        absent |= ~(x < MAX_COORDINATE) | ~(y < MAX_COORDINATE) | ~np.isfinite(c)
    points[absent] = 0.0


def _gather(clip: RawClip):
    """Every person of every frame: the frame each belongs to, and per part a (people, n, 3) array
    plus which people carry that part. One flat list per part keeps numpy's work to one call."""
    owners: list[int] = []
    flat = {key: [] for _, key, _ in _PARTS}
    lengths = {key: [] for _, key, _ in _PARTS}
    for frame, people in enumerate(clip.frames):
        for person in people:
            if not isinstance(person, dict):
                raise KeypointFileError(f"{clip.labels[frame]}: a 'people' entry is not an object")
            owners.append(frame)
            for _, key, _ in _PARTS:
                values = person.get(key) or []
                if not isinstance(values, list):
                    raise KeypointFileError(f"{clip.labels[frame]}: {key} is not a list")
                flat[key] += values
                lengths[key].append(len(values))
    owners_array = np.array(owners, np.int64)
    parts = {}
    for part, key, _ in _PARTS:
        sizes = np.array(lengths[key], np.int64)
        has = sizes > 0
        if not has.any():
            continue
        first = int(np.argmax(has))
        size = int(sizes[first])
        odd = np.flatnonzero(has & (sizes != size))
        if len(odd):
            where = clip.labels[owners[odd[0]]]
            raise KeypointFileError(
                f"{where}: {key} has {sizes[odd[0]] // 3} points here but {size // 3} in "
                f"{clip.labels[owners[first]]} (point counts differ between frames)"
            )
        if size % 3:
            raise KeypointFileError(
                f"{clip.labels[owners[first]]}: {key} is not a flat list of x, y, confidence triples"
            )
        try:
            with np.errstate(over="ignore"):  # past float32's range: inf, then absent (_clear_absent)
                values = np.array(flat[key], np.float32)
        except (TypeError, ValueError):
            values = None
        if values is None or values.ndim != 1:  # e.g. nested [[x, y, c], ...] or strings
            raise KeypointFileError(f"{clip.path}: {key} must be a flat list of numbers")
        points = np.zeros((len(owners), size // 3, 3), np.float32)
        points[has] = values.reshape(-1, size // 3, 3)
        _clear_absent(points)
        parts[part] = (points, has)
    return owners_array, parts


def _midpoint(out: np.ndarray, target: str, a: str, b: str) -> None:
    """Set ``target`` to the midpoint of ``a`` and ``b``, present only where both are."""
    ia, ib = IMPORT.index(a), IMPORT.index(b)
    conf = np.minimum(out[:, ia, 2], out[:, ib, 2])
    mid = 0.5 * (out[:, ia, :2] + out[:, ib, :2])
    mid[conf <= 0] = 0.0
    out[:, IMPORT.index(target), :2] = mid
    out[:, IMPORT.index(target), 2] = conf


def _assemble(clip: RawClip, layout_choice: Layout | None, notes: list[str]):
    """(people, IMPORT points, 3) for every person, their frames, the body layout, the parts."""
    if not clip.frames:
        raise KeypointFileError(f"{clip.path}: empty sequence, no frames")
    owners, parts = _gather(clip)
    if not len(owners):
        raise KeypointFileError(
            f"{clip.path}: empty sequence, no person in any of its {len(clip.frames)} frames"
        )
    if "body" not in parts:
        raise KeypointFileError(f"{clip.path}: no body keypoints (pose_keypoints_2d) in any frame")
    body, body_has = parts["body"]
    try:
        layout, why = pick_body_layout(body.shape[1], body[body_has], layout_choice)
    except ValueError as error:
        problem = "" if layout_choice is not None else "unknown layout: "
        raise KeypointFileError(f"{clip.path}: {problem}{error}") from None
    notes.append(f"body layout {why}")
    out = np.zeros((len(owners), len(IMPORT), 3), np.float32)
    src, dst = _to_import(layout)
    out[:, dst] = body[:, src]
    # Separate hand/face lists (OpenPose, ComfyUI) are taken as given; with DWPose-133 they are
    # normally empty because its body list already carries hands and face.
    for part, key, counts in _PARTS[1:]:
        if part not in parts:
            continue
        points, has = parts[part]
        count = points.shape[1]
        if count not in counts:
            raise KeypointFileError(
                f"{clip.path}: unknown layout: {key} has {count} points "
                f"(known: {', '.join(map(str, counts))})"
            )
        start = IMPORT.part(part).start
        out[np.ix_(np.flatnonzero(has), np.arange(start, start + count))] = points[has]
        if part == "face":
            notes.append(f"face: {count} points")
    for point, (a, b) in (("neck", ("l_shoulder", "r_shoulder")), ("mid_hip", ("l_hip", "r_hip"))):
        if layout.find(point) is None:
            _midpoint(out, point, a, b)
            notes.append(f"{point} derived: midpoint of {a} and {b}")
    present = out[..., 2] > 0
    found = tuple(
        p for p, _, _ in _PARTS if present[:, IMPORT.part(p).start:IMPORT.part(p).stop].any()
    )
    return out, owners, layout, found


def _canvas(clip: RawClip, argument, notes: list[str]) -> tuple[tuple[int, int] | None, str]:
    """The file's canvas, else the argument, else unknown; with the source's name."""
    if clip.canvas is not None:
        if argument is not None and argument != clip.canvas:
            notes.append(
                f"the file's canvas {clip.canvas[0]}x{clip.canvas[1]} is used, "
                f"not the {argument[0]}x{argument[1]} given"
            )
        canvas, source = clip.canvas, "file"
    elif argument is not None:
        canvas, source = argument, "argument"
    else:
        notes.append("canvas unknown: the caller must give one (with_canvas)")
        return None, "unknown"
    notes.append(f"canvas {canvas[0]}x{canvas[1]} from {source}")
    return canvas, source


def _to_pixels(people, present, coordinates, canvas, notes) -> tuple[int, int]:
    """Scale normalised coordinates by the canvas, in place; the canvas the data now has
    (the real one, or a stand-in while it is unknown: see ImportedKeypoints)."""
    if coordinates == "normalized":
        if canvas is None:
            return 1, 1
        people[..., 0] *= canvas[0]
        people[..., 1] *= canvas[1]
    xy = people[..., :2][present]
    if canvas is None:
        return math.ceil(float(xy[:, 0].max())) + 1, math.ceil(float(xy[:, 1].max())) + 1
    outside = int(np.count_nonzero((xy[:, 0] > canvas[0]) | (xy[:, 1] > canvas[1])))
    if outside:
        notes.append(f"{outside} present points lie outside the {canvas[0]}x{canvas[1]} canvas")
    return canvas


def _by_frame(people: np.ndarray, owners: np.ndarray, frames: int, notes: list[str]) -> np.ndarray:
    """(frames, most people in a frame, points, 3): each person in its frame, in file order."""
    counts = np.bincount(owners, minlength=frames)
    slots = np.arange(len(owners)) - (np.cumsum(counts) - counts)[owners]
    data = np.zeros((frames, int(counts.max()), people.shape[1], 3), np.float32)
    data[owners, slots] = people
    notes.append(
        f"{frames} frames, up to {int(counts.max())} people; "
        f"{np.count_nonzero(counts == 0)} frame(s) with nobody, "
        f"{np.count_nonzero(counts > 1)} with several people"
    )
    return data


def load_keypoints(path, layout=None, coordinates: str = "auto", canvas=None) -> ImportedKeypoints:
    """Read a keypoint folder or file into the IMPORT layout (see the module docstring).

    ``layout``: the body layout, None/"auto" to detect it from the point count (25 points are
    told apart from the data: ``layouts.pick_body_layout``). ``coordinates``: "auto" (normalised
    when every present x and y lies within 0..1.05 over the whole clip), "pixels" or
    "normalized". ``canvas``: (w, h) or "WxH", used when the file carries none.
    Raises KeypointFileError for a file it cannot read, ValueError for a bad argument.
    """
    if coordinates not in COORDINATES:
        raise ValueError(f"coordinates must be one of {', '.join(COORDINATES)}: {coordinates!r}")
    canvas_argument = parse_canvas(canvas)
    layout_choice = _body_choice(layout)
    clip = read_source(path)
    notes = list(clip.notes)
    people, owners, body_layout, found = _assemble(clip, layout_choice, notes)

    present = people[..., 2] > 0
    if not present.any():
        raise KeypointFileError(f"{clip.path}: empty sequence, no keypoint in any frame")
    if coordinates == "auto":
        largest = float(people[..., :2][present].max())
        coordinates = "normalized" if largest <= NORMALIZED_LIMIT else "pixels"
        notes.append(f"coordinates {coordinates} (detected: largest x or y is {largest:.4g})")
    else:
        notes.append(f"coordinates {coordinates} (as asked)")
    canvas, canvas_source = _canvas(clip, canvas_argument, notes)
    data_canvas = _to_pixels(people, present, coordinates, canvas, notes)
    data = _by_frame(people, owners, len(clip.frames), notes)

    sequence = KeypointSequence(IMPORT, data, data_canvas, np.array(clip.frame_numbers))
    return ImportedKeypoints(
        sequence, body_layout.name, found, coordinates, canvas, canvas_source, clip.path, tuple(notes)
    )
