"""What a job's step generator may yield besides its progress.

Jobs yield their finished fraction, or ``(fraction, what comes next)`` while they work in
Blender. ``Waiting(fraction, what)`` says the job is waiting on something outside Blender (the
generation backend): it touches no Blender data until its next step, so the operator hands the
UI back to the user (editing, scrubbing, saving) and only keeps ESC for cancelling.
"""
from __future__ import annotations

from typing import NamedTuple


class Waiting(NamedTuple):
    fraction: float
    stage: str
