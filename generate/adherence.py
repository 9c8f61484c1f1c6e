"""Pose adherence of a generated folder, client side: what is sent, and the report that comes back.

A generated folder holds ``frame_NNNN.png``; the pose maps they were made from were drawn from
``keypoints/pose_NNNN_keypoints.json`` beside the pose maps (the pose-map job writes them there;
the panel's Generate renders its pose maps into ``<output>/poses``). ``gather_inputs`` pairs the
two by frame number, ``adherence_body`` turns the pairs into the ``POST /adherence`` document
(the PNG files' own bytes in base64, the keypoint documents as written), and ``unpack_report``
writes the finished job's ``adherence.json`` and ``adherence.png`` into the generated folder:
each through a temporary name, replacing an older report and never any other file.
``read_summary`` reads the report back for the panel and the batch command.
"""
from __future__ import annotations

import base64
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..draw.png import png_size, write_bytes_atomic
from ..pose.formats.sources import KeypointFileError, keypoint_files
from .client import PNG_SIGNATURE
from .controls import OUTPUT_PREFIX, ControlFolderError, frame_file_name, numbered_pngs

REPORT_JSON = "adherence.json"
REPORT_PNG = "adherence.png"
REPORT_FORMAT = "posebridge-adherence"
KEYPOINTS_FOLDER = "keypoints"
KEYPOINTS_PREFIX = "pose"
DEFAULT_EXTRACTOR = "mediapipe"
DEFAULT_THRESHOLD = 0.5


class AdherenceError(ValueError):
    """A folder or a report that cannot be used; the message names it and says what to do."""


@dataclass(frozen=True)
class AdherenceInputs:
    """The frames a check compares: generated image and expected keypoints, by frame number."""

    generated_dir: Path
    keypoints_dir: Path
    images: dict[int, Path]  # frame -> frame_NNNN.png, only frames with keypoints too
    keypoints: dict[int, Path]  # frame -> pose_NNNN_keypoints.json, the same frames
    without_keypoints: list[int]  # generated frames no keypoint file describes (not checked)
    not_generated: list[int]  # keypoint files with no generated frame (not checked)

    @property
    def frames(self) -> list[int]:
        return sorted(self.images)

    def notes(self) -> list[str]:
        """What is left out of the check, for the report."""
        notes = []
        if self.without_keypoints:
            notes.append(f"{len(self.without_keypoints)} generated frame(s) have no keypoints in "
                         f"{self.keypoints_dir} ({_frame_list(self.without_keypoints)}): not checked")
        if self.not_generated:
            notes.append(f"{len(self.not_generated)} pose frame(s) are not generated yet "
                         f"({_frame_list(self.not_generated)}): not checked")
        return notes


def keypoints_folder(poses_dir) -> Path:
    """Where the pose-map job writes the keypoints its maps were drawn from."""
    return Path(poses_dir) / KEYPOINTS_FOLDER


def _frame_list(numbers, limit: int = 8) -> str:
    numbers = sorted(numbers)
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")


def gather_inputs(generated_dir, keypoints_dir) -> AdherenceInputs:
    """Pair the generated frames with the keypoints their pose maps were drawn from.
    AdherenceError when either folder is missing or no frame has both."""
    generated_dir, keypoints_dir = Path(generated_dir), Path(keypoints_dir)
    if not generated_dir.is_dir():
        raise AdherenceError(f"{generated_dir}: no such folder of generated frames (generate first)")
    if not keypoints_dir.is_dir():
        raise AdherenceError(f"{keypoints_dir}: no keypoints beside the pose maps (the pose-map job "
                             "writes them there; render the pose maps again)")
    try:
        images = numbered_pngs(generated_dir, OUTPUT_PREFIX)
    except ControlFolderError as error:
        raise AdherenceError(str(error)) from None
    if not images:
        raise AdherenceError(f"{generated_dir}: no generated frames (frame_NNNN.png) to check")
    try:
        keypoints = keypoint_files(keypoints_dir, KEYPOINTS_PREFIX)
    except KeypointFileError as error:
        raise AdherenceError(str(error)) from None
    if not keypoints:
        raise AdherenceError(f"{keypoints_dir}: no pose_NNNN_keypoints.json to compare with")
    both = sorted(images.keys() & keypoints.keys())
    if not both:
        raise AdherenceError(
            f"no generated frame in {generated_dir} ({_frame_list(images)}) has keypoints in "
            f"{keypoints_dir} ({_frame_list(keypoints)}): were they made from other pose maps?")
    return AdherenceInputs(
        generated_dir, keypoints_dir, {f: images[f] for f in both}, {f: keypoints[f] for f in both},
        sorted(images.keys() - keypoints.keys()), sorted(keypoints.keys() - images.keys()))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise AdherenceError(f"{path}: cannot be read ({error.strerror or error})") from None


def _keypoint_document(path: Path) -> dict:
    try:
        document = json.loads(_read(path))
    except ValueError as error:
        raise AdherenceError(f"{path}: not JSON ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("people"), list):
        raise AdherenceError(f"{path}: not an OpenPose frame (no 'people' list)")
    return document


def _with_canvas(document: dict, pose_map: Path) -> dict:
    """The document with its pose map's size as ``canvas_width``/``canvas_height``: the points
    are in the pose map's pixels, and the backend scales them onto the generated frames when
    those were made at another size. A document's own canvas wins; no pose map, no canvas (the
    backend then takes the generated frame's size)."""
    size = png_size(pose_map)
    if size is None or "canvas_width" in document or "canvas_height" in document:
        return document
    return {**document, "canvas_width": int(size[0]), "canvas_height": int(size[1])}


def adherence_body(inputs: AdherenceInputs, extractor: str = DEFAULT_EXTRACTOR,
                   threshold: float | None = None) -> dict:
    """The ``POST /adherence`` document: every paired frame's PNG (its own bytes, base64) and the
    keypoint document its pose map was drawn from, with that pose map's size (``_with_canvas``;
    the pose maps are ``pose_NNNN.png`` in the folder above ``keypoints/``)."""
    generated = []
    for frame, path in sorted(inputs.images.items()):
        data = _read(path)
        if not data.startswith(PNG_SIGNATURE):
            raise AdherenceError(f"{path}: not a PNG image")
        generated.append({"frame": int(frame), "image": base64.b64encode(data).decode("ascii")})
    poses_dir = inputs.keypoints_dir.parent
    keypoints = [{"frame": int(frame), "document": _with_canvas(
                      _keypoint_document(path), poses_dir / frame_file_name(KEYPOINTS_PREFIX, frame))}
                 for frame, path in sorted(inputs.keypoints.items())]
    body = {"name": inputs.generated_dir.name[:200], "generated": generated, "keypoints": keypoints,
            "extractor": str(extractor)}
    if threshold is not None:
        body["threshold"] = float(threshold)
    return body


def _check_report(document, where: str) -> dict:
    if not (isinstance(document, dict) and document.get("format") == REPORT_FORMAT
            and isinstance(document.get("frames"), list)):
        raise AdherenceError(f"{where}: not a PoseBridge adherence report")
    return document


def unpack_report(archive: bytes, generated_dir) -> list[Path]:
    """Write the result zip's ``adherence.json`` (required) and ``adherence.png`` into the
    generated folder, each atomically; an older report is replaced, nothing else is touched
    (whatever else the zip holds is ignored, so no name in it can reach another file)."""
    generated_dir = Path(generated_dir)
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
            members = {Path(info.filename).name: info for info in bundle.infolist() if not info.is_dir()}
            files = {name: bundle.read(members[name]) for name in (REPORT_JSON, REPORT_PNG) if name in members}
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise AdherenceError(f"the backend's adherence result is not a readable zip ({error})") from None
    if REPORT_JSON not in files:
        raise AdherenceError(f"the backend's adherence result has no {REPORT_JSON}")
    try:
        _check_report(json.loads(files[REPORT_JSON]), f"the backend's {REPORT_JSON}")
    except ValueError as error:
        if isinstance(error, AdherenceError):
            raise
        raise AdherenceError(f"the backend's {REPORT_JSON} is not JSON ({error})") from None
    if REPORT_PNG in files and not files[REPORT_PNG].startswith(PNG_SIGNATURE):
        raise AdherenceError(f"the backend's {REPORT_PNG} is not a PNG image")
    generated_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in (REPORT_JSON, REPORT_PNG):  # the picture is dropped if a new report has none
        if name in files:
            write_bytes_atomic(generated_dir / name, files[name])
            written.append(generated_dir / name)
        elif (generated_dir / name).is_file():
            (generated_dir / name).unlink()
    return written


@dataclass(frozen=True)
class AdherenceSummary:
    """What the panel and the batch command show of a report."""

    score: float  # the shot's mean body PCK, 0..1
    threshold: float | None
    extractor: str
    frames_checked: int
    worst_frames: list[int]  # worst first
    flagged_frames: list[int]  # ascending
    report: Path

    @property
    def worst_frame(self) -> int | None:
        return self.worst_frames[0] if self.worst_frames else None

    def flagged_text(self, limit: int = 8) -> str:
        """``"3, 7, 12 and 4 more"``, or ``"none"``."""
        return _frame_list(self.flagged_frames, limit) if self.flagged_frames else "none"

    def text(self) -> str:
        worst = f", worst frame {self.worst_frame}" if self.worst_frame is not None else ""
        return (f"pose adherence {self.score:.2f} over {self.frames_checked} frame(s){worst}; "
                f"{len(self.flagged_frames)} flagged: {self.flagged_text()}")


def summary_of(document: dict, report: Path) -> AdherenceSummary:
    """The summary of an adherence.json document; AdherenceError when it lacks the score."""
    document = _check_report(document, str(report))
    try:
        score = float(document["score"])
        worst = [int(f) for f in document.get("worst_frames") or []]
        flagged = sorted(int(f) for f in document.get("flagged_frames") or [])
        threshold = document.get("threshold")
        threshold = None if threshold is None else float(threshold)
    except (KeyError, TypeError, ValueError) as error:
        raise AdherenceError(f"{report}: the report's score or frame lists are unreadable ({error})") from None
    return AdherenceSummary(score, threshold, str(document.get("extractor") or "?"),
                            len(document["frames"]), worst, flagged, Path(report))


_cache: dict[Path, tuple[tuple[int, int], AdherenceSummary | None]] = {}


def read_summary(generated_dir) -> AdherenceSummary | None:
    """The summary of ``generated_dir/adherence.json``; None when there is no readable report.
    Cached by the file's modification time and size: the panel asks on every redraw."""
    path = Path(generated_dir) / REPORT_JSON
    try:
        stat = path.stat()
    except OSError:
        _cache.pop(path, None)
        return None
    key = (stat.st_mtime_ns, stat.st_size)
    cached = _cache.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        summary = summary_of(json.loads(path.read_bytes()), path)
    except (OSError, ValueError):  # AdherenceError is a ValueError too
        summary = None
    _cache[path] = (key, summary)
    return summary
