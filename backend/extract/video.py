"""Video decoding for extraction: frames in display order, upright, numbered by their timestamp.

    info = probe_video("clip.mp4")     # VideoInfo: fps, upright width/height, frame_count, rotation
    for frame in read_frames("clip.mp4", every=2, start=10, end=99):
        frame.index, frame.time, frame.rgb    # video frame number, seconds, (H, W, 3) uint8

PyAV reads whatever FFmpeg reads (mp4, mov, mkv, webm, avi; h264, hevc, vp9, av1, mpeg4...).
Phone videos are stored sideways with a display matrix saying how to turn them: the pixels are
turned here so every consumer sees the picture upright. Frame numbers come from timestamps
(``round((pts - stream start) * fps)``), so a variable-frame-rate clip (phones drop and stretch
frames) keeps each picture at its place in time; two pictures that round to the same number keep
the first.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from .base import ExtractionError

# Packets read to measure the typical frame interval (a few seconds of video; demuxing only).
_RATE_SAMPLE_PACKETS = 240
# A nominal rate within this fraction of the measured interval is taken as the video's rate.
_RATE_TOLERANCE = 0.02
# Seek instead of decoding from the start when ``start`` lies further in than this (seconds).
_SEEK_AFTER_S = 2.0


@dataclass(frozen=True)
class VideoInfo:
    path: str
    fps: float
    width: int  # upright, after rotation
    height: int
    frame_count: int  # frame numbers the video spans (last index + 1)
    rotation: int  # degrees counter-clockwise, in (-180, 180], turning the stored picture upright
    duration: float  # seconds


@dataclass(frozen=True)
class VideoFrame:
    index: int  # 0-based video frame number, from the timestamp
    time: float  # seconds from the stream's start
    rgb: np.ndarray  # (height, width, 3) uint8, upright


def probe_video(path) -> VideoInfo:
    """What ``read_frames`` will yield: the rate, the upright size and the frame count."""
    with _open(path) as (container, stream):
        fps = _frame_rate(container, stream, path)
        start = _stream_start(stream)
        rotation, width, height = _first_frame_geometry(container, stream, path)
        duration = _duration(container, stream)
        frame_count = _frame_count(container, stream, fps, start, duration)
    if not duration:
        duration = frame_count / fps
    return VideoInfo(str(path), float(fps), width, height, frame_count, rotation, float(duration))


def read_frames(path, every: int = 1, start: int | None = None, end: int | None = None) -> Iterator[VideoFrame]:
    """The frames numbered ``start``, ``start + every``, ... up to ``end`` (both inclusive, video
    frame indices; None = the first/last frame), decoded with FFmpeg's own threads."""
    every = int(every)
    if every < 1:
        raise ExtractionError(f"every must be 1 or more, got {every}")
    first = 0 if start is None else int(start)
    if first < 0 or (end is not None and int(end) < first):
        raise ExtractionError(f"bad frame range start={start} end={end} for {Path(path).name}")
    with _open(path) as (container, stream):
        fps = _frame_rate(container, stream, path)
        origin = _stream_start(stream)
        stream.thread_type = "AUTO"
        if first / fps > _SEEK_AFTER_S and origin is not None:
            # Lands on the key frame at or before ``start``; frames before it are decoded, not kept.
            target = origin + int((first / fps - 1.0 / fps) / stream.time_base)
            container.seek(max(origin, target), stream=stream, backward=True, any_frame=False)
        last_index = None
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                if origin is None:
                    origin = frame.pts
                time = float((frame.pts - origin) * stream.time_base)
                index = round(time * fps)
                if last_index is not None and index <= last_index:
                    continue  # rounds onto a number already given (variable rate)
                if end is not None and index > end:
                    break
                if index < first:
                    continue
                last_index = index
                if (index - first) % every:
                    continue
                yield VideoFrame(index, time, upright_rgb(frame))
        except av_errors() as error:
            raise ExtractionError(f"cannot decode {Path(path).name}: {error}") from None


def upright_rgb(frame) -> np.ndarray:
    """The frame as (H, W, 3) uint8 RGB, turned by its display matrix so it stands upright."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = _quarter_turns(_rotation(frame))
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


# --- helpers ---------------------------------------------------------------------------------

class _open:
    """``with _open(path) as (container, stream)``: the file's first video stream, or an
    ExtractionError that names the file."""

    def __init__(self, path):
        self.path = Path(path)
        self.container = None

    def __enter__(self):
        import av

        if not self.path.is_file():
            raise ExtractionError(f"video file not found: {self.path}")
        try:
            self.container = av.open(str(self.path))
        except av_errors() as error:
            raise ExtractionError(f"cannot read {self.path.name} as a video: {error}") from None
        if not self.container.streams.video:
            self.container.close()
            raise ExtractionError(f"{self.path.name} has no video stream")
        return self.container, self.container.streams.video[0]

    def __exit__(self, *exc):
        if self.container is not None:
            self.container.close()


def av_errors():
    import av

    return (av.error.FFmpegError, UnicodeDecodeError)


def _rotation(frame) -> int:
    """Degrees counter-clockwise that make the frame upright (FFmpeg's display matrix), in
    (-180, 180]."""
    degrees = int(getattr(frame, "rotation", 0) or 0)
    return -((180 - degrees) % 360 - 180)


def _quarter_turns(rotation: int) -> int:
    # Display matrices of real videos hold multiples of 90 degrees; round anything else.
    return int(round(rotation / 90.0)) % 4


def _first_frame_geometry(container, stream, path) -> tuple[int, int, int]:
    """(rotation, upright width, upright height) from the first decoded frame: the display
    matrix reaches the frames as side data, whatever container carried it."""
    try:
        frame = next(iter(container.decode(stream)), None)
    except av_errors() as error:
        raise ExtractionError(f"cannot decode {Path(path).name}: {error}") from None
    if frame is None:
        raise ExtractionError(f"{Path(path).name} has no decodable video frame")
    rotation = _rotation(frame)
    turns = _quarter_turns(rotation)
    width, height = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
    container.seek(0)
    return rotation, width, height


def _stream_start(stream) -> int | None:
    return stream.start_time if stream.start_time is not None else None


def _packet_times(container, stream, limit: int | None) -> list[int]:
    """Presentation timestamps of the first ``limit`` video packets (all when None), sorted;
    demuxing only, no decoding."""
    times = []
    for packet in container.demux(stream):
        if packet.pts is not None:
            times.append(packet.pts)
            if limit is not None and len(times) >= limit:
                break
    container.seek(0)
    return sorted(times)


def _frame_rate(container, stream, path) -> float:
    """The video's frame rate: the container's nominal rate when it matches the typical interval
    between frames (the median, so dropped frames of a variable-rate clip do not pull it down),
    else the rate of that interval."""
    nominal = [r for r in (stream.guessed_rate, stream.average_rate, stream.base_rate) if r]
    times = _packet_times(container, stream, _RATE_SAMPLE_PACKETS)
    gaps = np.diff(times)
    gaps = gaps[gaps > 0]
    if len(gaps):
        measured = 1.0 / float(np.median(gaps) * stream.time_base)
        for rate in nominal:
            if abs(float(rate) - measured) <= _RATE_TOLERANCE * measured:
                return float(rate)
        return measured
    if nominal:
        return float(nominal[0])
    raise ExtractionError(f"cannot tell the frame rate of {Path(path).name}")


def _duration(container, stream) -> float:
    if stream.duration:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return float(Fraction(container.duration, 1_000_000))
    return 0.0


def _frame_count(container, stream, fps: float, start, duration: float) -> int:
    """The number of frame indices: the stored count when it matches the duration (a constant
    rate), else counted from the timestamps of every packet (demuxing only)."""
    stored = int(stream.frames or 0)
    if stored and duration and abs(round(duration * fps) - stored) <= 1:
        return stored
    times = _packet_times(container, stream, None)
    if not times:
        return stored
    origin = times[0] if start is None else start
    return int(round(float((times[-1] - origin) * stream.time_base) * fps)) + 1
