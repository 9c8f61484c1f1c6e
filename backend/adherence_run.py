"""Check a generated folder's pose adherence: detect, compare, write adherence.json and .png.

    document = check_adherence("shot/generated", "shot/poses/keypoints")

reads ``generated_dir/frame_NNNN.png`` and the keypoints their pose maps were drawn from
(``keypoints_dir/pose_NNNN_keypoints.json``), runs an extractor (``backend.extract``) on every
generated frame that has keypoints, compares (``adherence.compare``) and writes the report and
its picture (``adherence_report``) into ``out_dir`` (the generated folder by default).

The expected keypoints are in pixels of the pose maps' canvas: the file's own canvas when it
carries one, else the size of the pose map beside the keypoints folder (``../pose_NNNN.png``),
else the generated frame's size. They are scaled onto the generated frames when the two differ.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..draw.png import png_size
from ..pose.formats.openpose_json import read_people, write_json_atomic
from ..pose.formats.readers import KeypointFileError, load_keypoints
from ..pose.formats.sources import frame_number_from_name, keypoint_files, numbered_pngs
from ..pose.keypoints import KeypointSequence
from ..pose.layouts import IMPORT
from .adherence import compare
from .adherence_report import write_report

REPORT_JSON = "adherence.json"
REPORT_PNG = "adherence.png"
FRAME_PREFIX = "frame"
KEYPOINTS_PREFIX = "pose"


class AdherenceError(ValueError):
    """Inputs that cannot be checked (missing folder, no frame pairs, unreadable file)."""


class AdherenceCancelled(RuntimeError):
    """``cancelled()`` said stop; nothing was written."""


def _pairs(generated_dir: Path, keypoints_dir: Path):
    for folder, what in ((generated_dir, "generated frames"), (keypoints_dir, "keypoints")):
        if not folder.is_dir():
            raise AdherenceError(f"{folder}: no such folder of {what}")
    try:  # two files of one frame number, say: named, as every other unusable input
        images = numbered_pngs(generated_dir, FRAME_PREFIX)
        keypoints = keypoint_files(keypoints_dir)
    except ValueError as error:
        raise AdherenceError(str(error)) from None
    both = sorted(images.keys() & keypoints.keys())
    if not both:
        raise AdherenceError(
            f"no frame has both a generated picture in {generated_dir} ({len(images)} frame_NNNN.png) "
            f"and keypoints in {keypoints_dir} ({len(keypoints)} pose_NNNN_keypoints.json)"
        )
    notes = []
    if images.keys() - keypoints.keys():
        count = len(images.keys() - keypoints.keys())
        notes.append(f"{count} generated frame(s) have no keypoints: not checked")
    if keypoints.keys() - images.keys():
        count = len(keypoints.keys() - images.keys())
        notes.append(f"{count} keypoint file(s) have no generated frame: not checked")
    return [(n, images[n], keypoints[n]) for n in both], notes


def read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as error:
        raise AdherenceError(f"{path}: not a readable picture ({error})") from None


def read_expected(path: Path, frame_size: tuple[int, int]) -> np.ndarray:
    """(people, len(IMPORT), 3) expected keypoints in pixels of a ``frame_size`` (w, h) frame;
    (0, ...) for a frame without anybody."""
    try:
        people = read_people(json.loads(path.read_bytes()))
    except (OSError, ValueError) as error:
        raise AdherenceError(f"{path}: not an OpenPose keypoint file ({error})") from None
    if not any((part[:, 2] > 0).any() for person in people for part in person.values()):
        return np.zeros((0, len(IMPORT), 3), np.float32)
    pose_map = path.parent.parent / f"{KEYPOINTS_PREFIX}_{frame_number_from_name(path.name):04d}.png"
    canvas = png_size(pose_map) or frame_size
    try:
        seq = load_keypoints(path, canvas=canvas).sequence
    except KeypointFileError as error:
        raise AdherenceError(str(error)) from None
    data = seq.data[0].copy()
    if seq.canvas != tuple(frame_size):
        data[..., 0] *= frame_size[0] / seq.canvas[0]
        data[..., 1] *= frame_size[1] / seq.canvas[1]
    return data


def _stack(frames: list[np.ndarray]) -> np.ndarray:
    most = max([1] + [len(f) for f in frames])
    data = np.zeros((len(frames), most, len(IMPORT), 3), np.float32)
    for i, people in enumerate(frames):
        data[i, : len(people)] = people
    return data


def _parts(expected: list[np.ndarray]) -> tuple[str, ...]:
    """The face is never scored; hands only when the pose maps have them."""
    hands = [IMPORT.part(side) for side in ("hand_left", "hand_right")]
    if any((people[:, p.start:p.stop, 2] > 0).any() for people in expected for p in hands):
        return ("body", "hands")
    return ("body",)


def check_adherence(generated_dir, keypoints_dir, out_dir=None, extractor: str = "mediapipe",
                    threshold: float = 0.5, on_progress=None, cancelled=None, extractor_options=None) -> dict:
    """Detect, compare and write ``adherence.json`` and ``adherence.png``; returns the document
    (``adherence.compare``'s, plus ``extractor_note`` and the notes about unpaired frames).

    ``on_progress(done, total)`` after each detected frame; ``cancelled()`` is asked before each
    frame (AdherenceCancelled). ``extractor_options``: keyword arguments for ``make_extractor``
    (``parts``, ``model_dir``, ``device``). AdherenceError for unusable inputs; the extractor's
    ExtractionError as it comes."""
    from .extract import make_extractor  # the detector runtimes load only when a check runs

    generated_dir, keypoints_dir = Path(generated_dir), Path(keypoints_dir)
    out_dir = Path(out_dir) if out_dir is not None else generated_dir
    pairs, notes = _pairs(generated_dir, keypoints_dir)
    size = read_rgb(pairs[0][1]).shape[1::-1]  # the first frame's (w, h): the report's canvas
    expected = [read_expected(json_path, size) for _, _, json_path in pairs]
    options = dict(extractor_options or {})
    options.setdefault("parts", _parts(expected))
    detected, previous = [], None
    with make_extractor(extractor, **options) as detector:
        for done, (number, image_path, _) in enumerate(pairs):
            if cancelled is not None and cancelled():
                raise AdherenceCancelled("adherence check cancelled")
            if previous is not None and number != previous + 1:
                detector.reset()  # not the next picture of a video: forget the tracking
            rgb = read_rgb(image_path)
            people = np.array(detector.detect(rgb), np.float32)
            if rgb.shape[1::-1] != size:  # a frame of another size: onto the report's canvas
                people[..., 0] *= size[0] / rgb.shape[1]
                people[..., 1] *= size[1] / rgb.shape[0]
            detected.append(people)
            previous = number
            if on_progress is not None:
                on_progress(done + 1, len(pairs))
        info = detector.info
    numbers = [number for number, _, _ in pairs]
    document = compare(
        KeypointSequence(IMPORT, _stack(expected), size, numbers),
        KeypointSequence(IMPORT, _stack(detected), size, numbers),
        threshold=threshold, extractor=info.name,
    )
    document["extractor_note"] = info.note
    document["notes"] = notes + document["notes"]
    if "hands" not in _parts(expected):
        document["notes"].append("the pose maps have no hands: hands not checked")
    elif "hands" not in options["parts"]:
        document["notes"].append(
            "hands not detected (extractor parts): every expected hand point counts as missed")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / REPORT_JSON, document)
    at = {number: i for i, number in enumerate(numbers)}
    worst = [n for n in document["worst_frames"] if n in at]
    write_report(
        out_dir / REPORT_PNG, document,
        {n: read_rgb(pairs[at[n]][1]) for n in worst},
        {n: expected[at[n]] for n in worst},
        {n: detected[at[n]] for n in worst},
    )
    return document
