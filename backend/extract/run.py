"""One extraction: a video (or numbered pictures) in, the output folder of ``output.py`` out.

    result = extract_video("clip.mp4", "out/", extractor="mediapipe", every=2, start=0, end=99,
                           maps=True, on_progress=lambda done, total: ..., cancelled=lambda: False)
    result.frames, result.people, result.info      # what was written, extraction.json's document

Frames are decoded (``video.read_frames``), detected and written one at a time, in order, so a
long video never sits in memory and a download while the job runs sees finished frames.
``cancelled()`` is asked before each frame: once it says True the run stops, writes
``sequence.json`` and ``extraction.json`` for the frames it finished (``"complete": false``) and
raises ``ExtractionCancelled``. A failure midway writes the same two files for what was done,
then raises.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from . import PARTS, DEFAULT_EXTRACTOR, make_extractor
from .base import ExtractionError, Extractor
from .output import ExtractionOutput


class ExtractionCancelled(Exception):
    """The run was cancelled (``cancelled()`` said so); the frames finished before are kept."""


@dataclass
class ExtractionResult:
    out_dir: Path
    frames: list[int]  # the frame numbers written, in order
    people: list[int]  # people found in each of them
    info: dict  # extraction.json's document
    seconds: float  # wall time of the run (decoding, detection, writing)

    @property
    def frames_per_second(self) -> float:
        return len(self.frames) / self.seconds if self.seconds > 0 else 0.0


def _open_extractor(extractor, parts, model_dir, device) -> tuple[Extractor, bool]:
    """(the extractor, whether this run owns it and closes it at the end)."""
    if isinstance(extractor, Extractor):
        return extractor, False
    return make_extractor(str(extractor), parts=tuple(parts), model_dir=model_dir, device=device), True


def _run(frames: Iterable, total: int, output: ExtractionOutput, extractor: Extractor, source: dict,
         on_progress, cancelled, started: float) -> ExtractionResult:
    """Detect and write ``frames`` ((number, time, rgb) triples); finish the folder whatever happens."""
    info = extractor.info
    source = {**source, "extractor": info.name, "multi_person": bool(info.multi_person), "note": info.note}
    complete = False
    try:
        for number, seconds, rgb in frames:
            if cancelled is not None and cancelled():
                raise ExtractionCancelled(f"cancelled after {len(output.frames)} of {total} frame(s)")
            people = extractor.detect(rgb)
            output.add(number, seconds, people, world=extractor.world())
            if on_progress is not None:
                on_progress(len(output.frames), max(total, len(output.frames)))
        complete = True
    finally:
        document = output.finish({**source, "complete": complete})
    if not output.frames:
        raise ExtractionError(f"no frame of {source.get('video') or 'the pictures'} was in the range asked for")
    return ExtractionResult(
        output.out_dir, list(output.frames), list(document["people"]), document, time.perf_counter() - started
    )


def planned_frames(frame_count: int, every: int = 1, start: int | None = None, end: int | None = None) -> list[int]:
    """The video frame indices a run over a constant-rate video reads (a variable-rate video may
    lack some): the progress total, and the range check."""
    first = 0 if start is None else int(start)
    last = frame_count - 1 if end is None else min(int(end), frame_count - 1)
    return list(range(first, last + 1, int(every)))


def check_range(every: int, start: int | None, end: int | None, frame_count: int | None = None, name: str = "") -> None:
    """ExtractionError naming a bad every/start/end (before anything is decoded)."""
    if int(every) < 1:
        raise ExtractionError(f"every must be 1 or more, got {every}")
    if start is not None and int(start) < 0:
        raise ExtractionError(f"start must be 0 or more, got {start}")
    if start is not None and end is not None and int(end) < int(start):
        raise ExtractionError(f"end ({end}) is before start ({start})")
    if frame_count is not None and start is not None and int(start) >= frame_count:
        raise ExtractionError(
            f"start {start} is past the end of {name or 'the video'}: its frames are 0..{frame_count - 1}"
        )


def extract_video(
    video,
    out_dir,
    *,
    extractor=DEFAULT_EXTRACTOR,
    every: int = 1,
    start: int | None = None,
    end: int | None = None,
    maps: bool = False,
    parts=PARTS,
    model_dir=None,
    device: str = "auto",
    on_progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    name: str | None = None,
) -> ExtractionResult:
    """Extract the poses of ``video``'s frames start, start + every, ... up to end (video frame
    indices, 0-based, inclusive) into ``out_dir``. ``extractor``: a name (made and closed here)
    or an Extractor (left open). ``name``: the video's name for extraction.json (default: the
    file's). Raises ExtractionError (bad file or range, missing model), ExtractionCancelled."""
    from .video import probe_video, read_frames

    started = time.perf_counter()
    check_range(every, start, end)
    info = probe_video(video)
    label = name or Path(video).name
    check_range(every, start, end, info.frame_count, label)
    total = len(planned_frames(info.frame_count, every, start, end))
    source = {
        "video": label, "fps": info.fps, "width": info.width, "height": info.height,
        "frame_count": info.frame_count, "rotation": info.rotation, "every": int(every),
        "start": None if start is None else int(start), "end": None if end is None else int(end),
    }
    detector, owned = _open_extractor(extractor, parts, model_dir, device)
    try:
        output = ExtractionOutput(Path(out_dir), (info.width, info.height), tuple(parts), maps)
        frames = ((f.index, f.time, f.rgb) for f in read_frames(video, every=every, start=start, end=end))
        return _run(frames, total, output, detector, source, on_progress, cancelled, started)
    finally:
        if owned:
            detector.close()


def _picture_shape(image) -> tuple:
    """(height, width, channels) of an array, or of an image file from its header (not decoded)."""
    if isinstance(image, (str, Path)):
        from PIL import Image

        try:
            with Image.open(image) as opened:
                return (opened.height, opened.width, 3)
        except OSError as error:
            raise ExtractionError(f"{Path(image).name}: not a readable picture ({error})") from None
    return tuple(np.shape(image))


def _picture_rgb(image) -> np.ndarray:
    """An array as it is, an image file decoded to RGB when its turn comes."""
    if isinstance(image, (str, Path)):
        from PIL import Image

        with Image.open(image) as opened:
            return np.asarray(opened.convert("RGB"))
    return np.asarray(image, np.uint8)


def extract_pictures(
    pictures,
    out_dir,
    *,
    fps: float | None = None,
    extractor=DEFAULT_EXTRACTOR,
    maps: bool = False,
    parts=PARTS,
    model_dir=None,
    device: str = "auto",
    on_progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    name: str = "",
) -> ExtractionResult:
    """Extract the poses of ``pictures``, (frame number, picture) pairs of one size, taken in
    frame-number order; a picture is a (H, W, 3) uint8 RGB array or an image file's path (read
    when its turn comes, so a long clip is not held decoded). ``fps`` (optional) gives their
    times (frame / fps); without it extraction.json's ``fps`` and ``times`` are null."""
    pictures = sorted(((int(n), image) for n, image in pictures), key=lambda pair: pair[0])
    if not pictures:
        raise ExtractionError("no pictures to extract poses from")
    numbers = [n for n, _ in pictures]
    if len(set(numbers)) != len(numbers):
        raise ExtractionError(f"duplicate frame numbers: {sorted({n for n in numbers if numbers.count(n) > 1})}")
    if fps is not None and not float(fps) > 0:
        raise ExtractionError(f"fps must be above 0, got {fps}")
    shapes = {_picture_shape(image) for _, image in pictures}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3 or next(iter(shapes))[2] != 3:
        raise ExtractionError(f"the pictures must be RGB (height, width, 3) of one size, got {sorted(shapes)}")
    height, width, _ = next(iter(shapes))
    started = time.perf_counter()
    source = {
        "video": name or None, "fps": None if fps is None else float(fps), "width": int(width), "height": int(height),
        "frame_count": len(pictures), "rotation": 0, "every": 1, "start": numbers[0], "end": numbers[-1],
    }
    detector, owned = _open_extractor(extractor, parts, model_dir, device)
    try:
        output = ExtractionOutput(Path(out_dir), (width, height), tuple(parts), maps)
        frames = ((n, None if fps is None else n / float(fps), _picture_rgb(image)) for n, image in pictures)
        return _run(frames, len(pictures), output, detector, source, on_progress, cancelled, started)
    finally:
        if owned:
            detector.close()
