"""An extraction's result on the Blender side, standard library only: where it goes, how its zip
is unpacked, and what its ``extraction.json`` says (docs/backend_api.md, ``POST /extract``).

The zip comes from the network, so unpacking trusts none of its names: absolute paths, ``..``,
drive letters, links and anything that would land outside the target folder are refused before
a byte is written. A result folder is always new (``<stem>``, then ``<stem>_2``, ...): an earlier
extraction, and anything the user put beside it, is never overwritten.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm")
FORMAT = "posebridge-extraction"
INFO_FILE = "extraction.json"
KEYPOINTS_DIR = "keypoints"
EXTRACTORS = ("mediapipe", "dwpose")
# A result is JSON keypoints and, with maps, PNGs: far below this once unpacked.
MAX_UNPACKED_BYTES = 4 << 30


class ExtractionFileError(ValueError):
    """The result (zip or extraction.json) cannot be used; the message names what and where."""


def is_video(path) -> bool:
    """Whether ``path`` names a video file by its suffix (the Import Pose source may be either)."""
    return Path(str(path)).suffix.lower() in VIDEO_SUFFIXES


def new_result_folder(root, stem: str) -> Path:
    """Create and return a folder for one result: ``root/stem``, or ``root/stem_2``, ``_3``...
    when that exists. Made with mkdir, so two runs at once never get the same one."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem).strip(".") or "video"
    number = 1
    while True:
        folder = root / (safe if number == 1 else f"{safe}_{number}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            number += 1


def _safe_member(info: zipfile.ZipInfo) -> PurePosixPath | None:
    """The member's relative path, None for a folder entry; raises for a name that could write
    outside the target or a link."""
    name = info.filename.replace("\\", "/")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ExtractionFileError(f"the result holds a link {info.filename!r}: refused")
    path = PurePosixPath(name)
    if path.is_absolute() or ":" in name or any(part == ".." for part in path.parts):
        raise ExtractionFileError(f"the result holds a file outside its folder ({info.filename!r}): refused")
    if name.endswith("/") or not path.parts:
        return None
    return path


def unpack_result(data: bytes, folder) -> list[Path]:
    """Unpack the zip ``data`` into the existing ``folder``; returns the files written. Every
    name is checked before anything is written (see the module doc)."""
    folder = Path(folder).resolve()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ExtractionFileError("the backend's result is not a zip file") from None
    with archive:
        members = [(info, _safe_member(info)) for info in archive.infolist()]
        total = sum(info.file_size for info, _ in members)
        if total > MAX_UNPACKED_BYTES:
            raise ExtractionFileError(f"the result would unpack to {total} bytes: refused")
        written = []
        for info, relative in members:
            if relative is None:
                continue
            target = folder.joinpath(*relative.parts)
            if folder not in target.resolve().parents:
                raise ExtractionFileError(f"the result holds a file outside its folder ({info.filename!r}): refused")
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as source, open(target, "xb") as sink:
                    shutil.copyfileobj(source, sink)
            except FileExistsError:
                raise ExtractionFileError(f"the result names {info.filename!r} twice") from None
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
                raise ExtractionFileError(f"the result's {info.filename!r} is damaged ({error})") from None
            written.append(target)
    return written


@dataclass(frozen=True)
class ExtractionInfo:
    """``extraction.json``: the video's rate and size, and which of its frames were read."""

    video: str
    fps: float
    width: int
    height: int
    frame_count: int
    rotation: int
    frames: tuple[int, ...]  # video frame indices extracted (0-based)
    times: tuple[float, ...]  # their times in seconds
    every: int
    extractor: str
    multi_person: bool
    note: str
    start: int | None = None
    end: int | None = None

    @property
    def duration(self) -> float:
        """Seconds from the first extracted frame to the last."""
        return self.times[-1] - self.times[0] if self.times else 0.0


def _number(document: dict, key: str, kind, path: Path, positive: bool = True):
    value = document.get(key)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ExtractionFileError(f"{path}: {key!r} is missing or not a number ({value!r})") from None
    if positive and not number > 0:
        raise ExtractionFileError(f"{path}: {key!r} must be positive, got {value!r}")
    return number


def read_extraction(folder) -> ExtractionInfo:
    """Read and check ``folder/extraction.json``; ExtractionFileError naming the problem."""
    path = Path(folder) / INFO_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ExtractionFileError(f"{path}: cannot be read ({error.strerror or error})") from None
    except ValueError:
        raise ExtractionFileError(f"{path}: not JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ExtractionFileError(f"{path}: not a PoseBridge extraction (format {FORMAT!r})")
    if int(document.get("version", 0)) != 1:
        raise ExtractionFileError(f"{path}: version {document.get('version')!r} is not one this add-on reads (1)")
    frames = document.get("frames") or []
    times = document.get("times") or []
    if not frames:
        raise ExtractionFileError(f"{path}: no frames were extracted")
    if len(frames) != len(times):
        raise ExtractionFileError(f"{path}: {len(frames)} frames but {len(times)} times")
    try:
        frames, times = tuple(int(f) for f in frames), tuple(float(t) for t in times)
    except (TypeError, ValueError):
        raise ExtractionFileError(f"{path}: frames and times must be numbers") from None
    if any(b <= a for a, b in zip(times, times[1:])):
        raise ExtractionFileError(f"{path}: the frame times do not increase")
    optional = {k: (None if document.get(k) is None else int(document[k])) for k in ("start", "end")}
    return ExtractionInfo(
        video=str(document.get("video") or ""),
        fps=_number(document, "fps", float, path),
        width=_number(document, "width", int, path),
        height=_number(document, "height", int, path),
        frame_count=_number(document, "frame_count", int, path, positive=False),
        rotation=int(document.get("rotation") or 0),
        frames=frames,
        times=times,
        every=max(1, int(document.get("every") or 1)),
        extractor=str(document.get("extractor") or ""),
        multi_person=bool(document.get("multi_person")),
        note=str(document.get("note") or ""),
        **optional,
    )


def keypoints_folder(folder) -> Path:
    """The result's OpenPose JSON folder; ExtractionFileError when it has none."""
    path = Path(folder) / KEYPOINTS_DIR
    if not path.is_dir() or not any(path.glob("*_keypoints.json")):
        raise ExtractionFileError(f"{path}: the result has no keypoint files")
    return path


def remove_folder(folder) -> None:
    """Remove a result folder this run made (after a failed unpack): never a user's folder."""
    shutil.rmtree(os.fspath(folder), ignore_errors=True)
