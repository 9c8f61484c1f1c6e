"""Prompt travel: a prompt per frame range, blended across each change. Pure Python.

    parse_prompt_schedule("0: walking in a forest | 48: running in the rain")
    -> {0: "walking in a forest", 48: "running in the rain"}

Keys are frame numbers (the job's frame numbers: Blender's). A frame before the first key takes
the first prompt, a frame at or after the last key the last one; a frame between two keys takes
both prompts' text embeddings mixed linearly by where it lies between them, so the look travels
from one prompt to the next over the whole span instead of jumping on one frame.
"""

from __future__ import annotations

import re

_KEY = re.compile(r"^\s*(-?\d+)\s*:(.*)$", re.DOTALL)


def parse_prompt_schedule(text: str) -> dict[int, str] | None:
    """``"N: prompt | M: prompt"`` -> {N: prompt, M: prompt}; None when ``text`` is a plain prompt
    (its first part does not start with a frame number and a colon). A schedule with a part that
    lacks its number, a repeated number or an empty prompt raises ValueError naming it."""
    parts = text.split("|")
    if not _KEY.match(parts[0]):
        return None
    schedule: dict[int, str] = {}
    for part in parts:
        match = _KEY.match(part)
        if not match:
            raise ValueError(f"prompt schedule part {part.strip()!r} does not start with 'FRAME:'")
        frame, prompt = int(match.group(1)), match.group(2).strip()
        if frame in schedule:
            raise ValueError(f"prompt schedule names frame {frame} twice")
        if not prompt:
            raise ValueError(f"prompt schedule: the prompt for frame {frame} is empty")
        schedule[frame] = prompt
    return dict(sorted(schedule.items()))


def check_schedule(schedule: dict) -> dict[int, str]:
    """A schedule as the API gives it (keys may be strings of integers) -> {int: str}, sorted.
    Raises ValueError naming a bad key or prompt."""
    if not isinstance(schedule, dict) or not schedule:
        raise ValueError("prompts must be a non-empty map of frame number -> prompt")
    checked = {}
    for key, prompt in schedule.items():
        try:
            frame = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"prompts: key {key!r} is not a frame number") from None
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"prompts: the prompt for frame {frame} must be a non-empty string")
        if frame in checked:
            raise ValueError(f"prompts names frame {frame} twice")
        checked[frame] = prompt.strip()
    return dict(sorted(checked.items()))


def prompt_blend(frames: list[int], schedule: dict[int, str]) -> list[tuple[str, str, float]]:
    """For each frame number: (prompt a, prompt b, t), the frame's text embedding being
    (1 - t) * embed(a) + t * embed(b)."""
    keys = sorted(schedule)
    blends = []
    for frame in frames:
        if frame <= keys[0]:
            blends.append((schedule[keys[0]], schedule[keys[0]], 0.0))
            continue
        if frame >= keys[-1]:
            blends.append((schedule[keys[-1]], schedule[keys[-1]], 0.0))
            continue
        after = next(i for i, key in enumerate(keys) if key > frame)
        lo, hi = keys[after - 1], keys[after]
        blends.append((schedule[lo], schedule[hi], (frame - lo) / (hi - lo)))
    return blends
