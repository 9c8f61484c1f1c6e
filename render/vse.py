"""Generated frames in the Video Sequence Editor: one image-sequence strip, placed and updated.

Blender 4.2 calls the strip collections ``sequences`` / ``sequences_all``; 5.x calls them
``strips`` / ``strips_all``. Everything here goes through :func:`strips_collection` and
:func:`find_strip` so the rest of the code never asks which one it runs on.

Placement rules (kept here so the operator and the tests share one definition):

* One strip, element ``i`` shows at ``frame_start + i``. Files are used in the order given.
* A new strip goes on the lowest channel *above* every strip overlapping its range, so the
  generated frames are what the preview and a render show; user strips are never moved, trimmed
  or deleted. Only when that would pass Blender's last channel does it take the lowest free one.
* Re-running with the same name updates that strip in place (directory, files, length, start) and
  keeps its channel, user transforms and modifiers; it moves only if its channel is now taken over
  the new range. Trims and hold offsets are reset so the strip shows exactly the given frames.
* Gaps in numbered frames (frame 3 missing from 1..5) are the caller's to resolve with
  :func:`timeline_elements`, which holds the previous frame so later frames keep their timing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import bpy

from ..draw.png import png_size

# Blender's channels run from 1 to 128 (the RNA hard maximum of Strip.channel).
MAX_CHANNEL = 128
# How a new strip is scaled into the render frame: the whole image visible, aspect kept.
FIT_METHOD = "FIT"
# Generated frames are 8-bit sRGB PNGs; say so rather than trust the config's byte default.
COLORSPACE = "sRGB"
# Where the scale our fit gave is remembered, so a later update can tell whether the user
# changed the transform (keep it) or not (refit to the new image size).
_FIT_KEY = "posebridge_fit_scale"


@dataclass(frozen=True)
class TimelineElements:
    """Strip elements for numbered frames: ``filenames[i]`` shows at ``frame_start + i``."""

    frame_start: int
    filenames: list[str]
    held: list[int]  # frame numbers with no file of their own, showing the previous frame


def timeline_elements(frames: Mapping[int, str]) -> TimelineElements:
    """Elements for ``{frame number: filename}`` that keep every frame at its own time.

    A frame missing from the middle (3 in 1, 2, 4, 5) holds the previous file, so frames 4 and 5
    still land on 4 and 5; a strip of just the given files would slide them one frame early.
    ``held`` lists the filled frames so the caller can say so.
    """
    if not frames:
        raise ValueError("no frames to place")
    numbers = sorted(int(f) for f in frames)
    by_number = {int(f): name for f, name in frames.items()}
    filenames, held = [], []
    for number in range(numbers[0], numbers[-1] + 1):
        name = by_number.get(number)
        if name is None:
            held.append(number)
            name = filenames[-1]
        filenames.append(name)
    return TimelineElements(numbers[0], filenames, held)


# --- the 4.2 / 5.x collection names -----------------------------------------------------------


def _children(owner):
    """The strips directly inside a sequence editor or a meta strip."""
    return owner.strips if hasattr(owner, "strips") else owner.sequences


def strips_collection(scene):
    """The scene's top-level strip collection, creating the sequence editor when absent."""
    return _children(scene.sequence_editor_create())


def find_strip(scene, name: str):
    """The strip called ``name`` anywhere in the scene (metas included), or None. Never creates
    a sequence editor."""
    editor = scene.sequence_editor
    if editor is None:
        return None
    everything = editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all
    return everything.get(name)


def _siblings(scene, strip):
    """The collection holding ``strip``: the top level, or the meta strip it was moved into."""
    parent = strip.parent_meta() if hasattr(strip, "parent_meta") else None
    return _children(parent) if parent is not None else strips_collection(scene)


# --- channels ---------------------------------------------------------------------------------


def choose_channel(occupied, start: int, end: int, keep: int | None = None) -> int:
    """A channel where ``[start, end)`` overlaps nothing in ``occupied`` (``(channel, start, end)``
    triples, ends exclusive). ``keep`` wins when free; otherwise the lowest channel above every
    overlapping strip, else the lowest free one."""
    overlapping = [c for c, s, e in occupied if s < end and start < e]
    taken = set(overlapping)
    if keep is not None and keep not in taken:
        return keep
    above = max(overlapping, default=0) + 1
    if above <= MAX_CHANNEL:
        return above
    for channel in range(1, MAX_CHANNEL + 1):
        if channel not in taken:
            return channel
    raise RuntimeError(f"every VSE channel is taken over frames {start}..{end - 1}")


def _occupied(collection, exclude=None):
    return [
        (s.channel, s.frame_final_start, s.frame_final_end)
        for s in collection
        if exclude is None or s.name != exclude.name
    ]


# --- fitting ----------------------------------------------------------------------------------


def _fit_scale(scene, size) -> float:
    """Blender's FIT: the largest scale that shows the whole image inside the render frame."""
    # Blender fits to the full resolution; the percentage only scales the final render.
    return min(scene.render.resolution_x / size[0], scene.render.resolution_y / size[1])


def _refit_if_untouched(scene, strip, first_file: Path) -> None:
    """After an update: scale to the new image size, unless the user changed our fit."""
    remembered = strip.get(_FIT_KEY)
    size = png_size(first_file)
    transform = strip.transform
    if remembered is None or size is None:
        return
    untouched = all(abs(v - remembered) < 1e-6 for v in (transform.scale_x, transform.scale_y))
    if untouched:
        transform.scale_x = transform.scale_y = strip[_FIT_KEY] = _fit_scale(scene, size)


def _remember_fit(strip) -> None:
    if abs(strip.transform.scale_x - strip.transform.scale_y) < 1e-6:
        strip[_FIT_KEY] = strip.transform.scale_x


# --- placing ----------------------------------------------------------------------------------


def _checked_files(directory, filenames: Sequence[str]) -> tuple[str, list[str]]:
    """(directory as given, with a trailing separator as Blender keeps it, filenames); raises
    when a file is missing. A blend-relative ``//frames`` is checked where it points."""
    directory = os.path.join(str(directory), "")
    filenames = [str(f) for f in filenames]
    if not filenames:
        raise ValueError("an image sequence needs at least one file")
    for name in filenames:
        if os.path.basename(name) != name:
            raise ValueError(f"{name!r}: give file names inside the directory, not paths")
    on_disk = Path(bpy.path.abspath(directory))
    missing = sorted({n for n in filenames if not (on_disk / n).is_file()})
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise FileNotFoundError(f"{on_disk}: no such frame file(s): {shown}")
    return directory, filenames


def _set_elements(strip, filenames: list[str]) -> None:
    """Make the strip's element list exactly ``filenames``, reusing the elements it has."""
    elements = strip.elements
    for element, name in zip(elements, filenames):
        element.filename = name
    for name in filenames[len(elements):]:
        elements.append(name)
    while len(elements) > len(filenames):
        elements.pop(len(elements) - 1)


def place_image_sequence(scene, name: str, directory, filenames: Sequence[str], frame_start: int):
    """Show ``filenames`` (inside ``directory``, in this order) as ONE image strip called ``name``
    starting at ``frame_start``; see the module notes for channel, update and gap rules.

    Returns the strip. Raises FileNotFoundError for a missing file and ValueError when a strip
    called ``name`` exists but is not an image strip (it is left alone).
    """
    directory, filenames = _checked_files(directory, filenames)
    frame_start = int(frame_start)
    end = frame_start + len(filenames)
    strip = find_strip(scene, name)
    if strip is not None and strip.type != "IMAGE":
        raise ValueError(f"the VSE already has a {strip.type.lower()} strip called {name!r}; rename it first")

    if strip is None:
        collection = strips_collection(scene)
        channel = choose_channel(_occupied(collection), frame_start, end)
        strip = collection.new_image(name, directory + filenames[0], channel, frame_start, fit_method=FIT_METHOD)
        _set_elements(strip, filenames)
        _remember_fit(strip)
    else:
        channel = choose_channel(_occupied(_siblings(scene, strip), strip), frame_start, end, keep=strip.channel)
        strip.directory = directory
        _set_elements(strip, filenames)
        strip.frame_offset_start = strip.frame_offset_end = 0
        strip.animation_offset_start = strip.animation_offset_end = 0
        # Moving the start may nudge the strip up if it overlaps on its old channel (Blender
        # shuffles the moved strip only); the channel set last puts it where we chose.
        strip.frame_start = frame_start
        strip.channel = channel
        _refit_if_untouched(scene, strip, Path(bpy.path.abspath(directory)) / filenames[0])
        # A regeneration rewrites files under the same names: drop images cached from before.
        strip.invalidate_cache("RAW")
    strip.colorspace_settings.name = COLORSPACE
    if (strip.channel, strip.frame_final_start, strip.frame_final_end) != (channel, frame_start, end):
        raise RuntimeError(
            f"strip {name!r} ended on channel {strip.channel} at {strip.frame_final_start}.."
            f"{strip.frame_final_end - 1}, expected channel {channel} at {frame_start}..{end - 1}"
        )
    return strip


# --- a reference video ------------------------------------------------------------------------


def place_movie(scene, name: str, filepath, frame_start: int, video_fps: float, frame_count: int):
    """Add the video ``filepath`` as a NEW movie strip whose first frame shows at ``frame_start``,
    playing in real time at the scene's rate; returns (movie strip, speed strip or None).

    Nothing is replaced: Blender gives the strip a unique name, and it goes on a channel that is
    free over its range (choose_channel). A movie strip shows one video frame per scene frame, and
    the API cannot set its playback rate (only the Add Movie operator can, from the editor), so
    when the rates differ a Speed effect strip on the channel above plays it at
    ``video_fps / scene fps`` and the movie strip is cut to the video's length in scene frames.
    """
    scene_fps = scene.render.fps / scene.render.fps_base
    length = max(1, round(frame_count * scene_fps / video_fps))
    frame_start = int(frame_start)
    collection = strips_collection(scene)
    channel = choose_channel(_occupied(collection), frame_start, frame_start + length)
    movie = collection.new_movie(name, str(filepath), channel, frame_start, fit_method=FIT_METHOD)
    if abs(video_fps - scene_fps) < 1e-3:
        return movie, None
    movie.frame_final_duration = length
    channel = choose_channel(_occupied(collection), frame_start, frame_start + length)  # above the movie
    if channel <= movie.channel:  # the effect must lie above the movie to be what shows
        below = movie.channel
        collection.remove(movie)
        raise RuntimeError(f"no free VSE channel above {below} over frames {frame_start}.."
                           f"{frame_start + length - 1} for the reference video")
    source = {"input1": movie} if bpy.app.version >= (5, 0, 0) else {"seq1": movie}
    ends = {"length": length} if bpy.app.version >= (5, 0, 0) else {"frame_end": frame_start + length}
    speed = collection.new_effect(f"{movie.name} speed", "SPEED", channel, frame_start, **source, **ends)
    speed.speed_control = "MULTIPLY"
    speed.speed_factor = video_fps / scene_fps
    return movie, speed
