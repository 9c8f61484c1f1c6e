"""Finding and parsing keypoint files: which frames, in which order, from which file.

Three inputs are recognised, all speaking OpenPose's ``people[]`` entries:

* a folder of per-frame OpenPose JSON files, ordered by the last number in each file name;
* one ComfyUI POSE_KEYPOINT file: a list of frames ``{people, canvas_width, canvas_height}``;
* one OpenPose frame file (``{"version": ..., "people": [...]}``).

This module only says what the frames are; :mod:`.readers` turns them into arrays.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path


class KeypointFileError(ValueError):
    """A keypoint file or folder that cannot be read; the message names the file and the problem."""


@dataclass
class RawClip:
    """Parsed frames before any interpretation: OpenPose ``people`` lists, one per frame."""

    path: Path
    kind: str  # "openpose folder", "comfyui", "openpose frame"
    frames: list[list]  # one ``people`` list per frame
    frame_numbers: list[int]
    labels: list[str]  # where each frame came from, for error messages
    canvas: tuple[int, int] | None = None  # from the file (ComfyUI), else None
    notes: list[str] = field(default_factory=list)


# The last number; a minus right after "_" (or at the start) is a sign, as in our own
# pose_-005_keypoints.json for frame -5, while "cam01-0012" keeps "-" as a separator.
_LAST_NUMBER = re.compile(r"(?:(?<=_)-|^-)?\d+(?!.*\d)")


def frame_number_from_name(name: str) -> int | None:
    """The last number in a file name, without its ``.json``: ``cam01.0012.json`` -> 12,
    ``pose_-005_keypoints.json`` -> -5."""
    stem = name[:-5] if name.lower().endswith(".json") else name
    match = _LAST_NUMBER.search(stem)
    return int(match.group(0)) if match else None


def numbered_pngs(folder, prefix: str) -> dict[int, Path]:
    """``{frame: path}`` of the ``<prefix>_<number>.png`` files in ``folder`` (``pose_-005.png``
    is -5). Two files with one number (``pose_1.png`` and ``pose_0001.png``) are a ValueError
    rather than a guess; hidden files (write_png's ``.pose_0001.png.<id>.tmp``) never match."""
    folder = Path(folder)
    found: dict[int, Path] = {}
    for path in folder.iterdir():
        name = path.name
        if not (name.startswith(prefix + "_") and name.lower().endswith(".png") and path.is_file()):
            continue
        number = frame_number_from_name(name[:-4])
        if number is None:
            continue
        if number in found:
            raise ValueError(f"{folder}: {found[number].name} and {name} both carry frame number {number}")
        found[number] = path
    return found


KEYPOINTS_SUFFIX = "_keypoints.json"


def keypoint_files(folder, prefix: str = "pose") -> dict[int, Path]:
    """``{frame: path}`` of the ``<prefix>_NNNN_keypoints.json`` files in ``folder`` (what the
    pose-map job writes beside its maps). Two files with one frame number (``pose_1_...`` and
    ``pose_0001_...``) are a KeypointFileError naming both: which one the maps came from is
    not ours to guess."""
    folder = Path(folder)
    found: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        name = path.name
        if not (name.startswith(prefix + "_") and name.endswith(KEYPOINTS_SUFFIX) and path.is_file()):
            continue
        number = frame_number_from_name(name[: -len(KEYPOINTS_SUFFIX)])
        if number is None:
            continue
        if number in found:
            raise KeypointFileError(f"{folder}: {found[number].name} and {name} both carry frame number "
                                    f"{number}: remove one")
        found[number] = path
    return found


def _load_json(path: Path):
    try:
        return json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise KeypointFileError(f"{path}: not JSON ({error})") from None
    except OSError as error:
        raise KeypointFileError(f"{path}: cannot be read ({error.strerror or error})") from None


def _people(document, label: str) -> list:
    if isinstance(document, dict) and isinstance(document.get("people"), list):
        return document["people"]
    raise KeypointFileError(
        f"{label}: not an OpenPose frame (expected an object with a 'people' list)"
    )


def _canvas(frame: dict, label: str) -> tuple[int, int] | None:
    width, height = frame.get("canvas_width"), frame.get("canvas_height")
    if width is None and height is None:
        return None
    try:
        canvas = (int(width), int(height))
    except (TypeError, ValueError):
        canvas = (0, 0)
    if canvas[0] <= 0 or canvas[1] <= 0 or canvas != (width, height):
        raise KeypointFileError(
            f"{label}: canvas_width and canvas_height must be positive integers, "
            f"got {width!r} and {height!r}"
        )
    return canvas


def _folder(folder: Path) -> RawClip:
    files = [p for p in folder.iterdir() if p.suffix.lower() == ".json" and p.is_file()]
    if not files:
        raise KeypointFileError(f"{folder}: no JSON files in this folder")
    notes = []
    # OpenPose names its output *_keypoints.json; when those are there, anything else (our
    # own sequence.json beside them, for instance) is not a frame.
    keypoint_files = [p for p in files if p.name.lower().endswith("_keypoints.json")]
    if keypoint_files and len(keypoint_files) < len(files):
        others = sorted(p.name for p in files if not p.name.lower().endswith("_keypoints.json"))
        names = ", ".join(others[:3])
        notes.append(f"ignored {len(others)} JSON file(s) not named *_keypoints.json: {names}")
        files = keypoint_files
    numbered = {}
    unnumbered = []
    for path in files:
        number = frame_number_from_name(path.name)
        if number is None:
            unnumbered.append(path.name)
        elif number in numbered:
            raise KeypointFileError(
                f"{folder}: {numbered[number].name} and {path.name} both carry frame number {number}"
            )
        else:
            numbered[number] = path
    if not numbered:
        raise KeypointFileError(
            f"{folder}: no JSON file name carries a frame number (e.g. pose_0001_keypoints.json)"
        )
    if unnumbered:
        names = ", ".join(sorted(unnumbered)[:3])
        notes.append(f"ignored {len(unnumbered)} JSON file(s) without a frame number: {names}")
    order = sorted(numbered)
    paths = [numbered[n] for n in order]
    frames = [_people(_load_json(p), str(p)) for p in paths]
    notes.insert(0, f"{len(paths)} OpenPose frame files from {folder}")
    return RawClip(folder, "openpose folder", frames, order, [str(p) for p in paths], None, notes)


def _comfyui(path: Path, document: list) -> RawClip:
    frames, canvases = [], []
    for index, frame in enumerate(document):
        label = f"{path}, frame {index}"
        if not isinstance(frame, dict) or not isinstance(frame.get("people"), list):
            raise KeypointFileError(
                f"{label}: not a ComfyUI POSE_KEYPOINT frame "
                "(expected an object with a 'people' list)"
            )
        frames.append(frame["people"])
        canvases.append(_canvas(frame, label))
    known = [c for c in canvases if c is not None]
    notes = [f"{len(frames)} frames of a ComfyUI POSE_KEYPOINT file {path}"]
    if len(set(known)) > 1:
        sizes = ", ".join(sorted({f"{w}x{h}" for w, h in known}))
        notes.append(f"the canvas changes between frames ({sizes}); using the first one")
    labels = [f"{path}, frame {i}" for i in range(len(frames))]
    canvas = known[0] if known else None
    return RawClip(path, "comfyui", frames, list(range(len(frames))), labels, canvas, notes)


def read_source(path) -> RawClip:
    """The frames of a folder or file, in order; raises KeypointFileError for what it cannot read."""
    path = Path(path)
    if path.is_dir():
        return _folder(path)
    if not path.exists():
        raise KeypointFileError(f"{path}: no such file or folder")
    document = _load_json(path)
    if isinstance(document, list):
        return _comfyui(path, document)
    if isinstance(document, dict) and isinstance(document.get("people"), list):
        number = frame_number_from_name(path.name)
        canvas = _canvas(document, str(path))  # a single ComfyUI frame carries one
        notes = [f"one OpenPose frame {path}"]
        frames = [document["people"]]
        return RawClip(path, "openpose frame", frames, [number or 0], [str(path)], canvas, notes)
    raise KeypointFileError(
        f"{path}: not an OpenPose or ComfyUI keypoint file (expected an object with a 'people' "
        "list, or a list of such frames)"
    )
