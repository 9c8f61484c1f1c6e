"""The extractor interface: one RGB picture in, the people in it out, in the import layout.

    extractor = make_extractor("mediapipe")          # backend/extract/__init__.py
    people = extractor.detect(rgb)                   # (people, len(IMPORT), 3) float32, pixels
    extractor.close()

``rgb`` is a (height, width, 3) uint8 array, upright (rotation already applied by the decoder).
Points are x, y in pixels of that picture (origin top-left, y down) and a confidence in [0, 1];
absent points are (0, 0, 0). The layout is ``pose.layouts.IMPORT``: OpenPose's COCO-18 body, both
hands (21 each), the face (70: iBUG-68 and two pupils), then mid-hip, head top and the feet, so
the writers, the drawing code, tracking, cleaning and the lift take the result as it is.

Extractors are stateful (MediaPipe tracks between calls): use one per video, in frame order, and
``reset()`` before a picture that does not follow the previous one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...pose.layouts import IMPORT

POINTS = len(IMPORT)


class ExtractionError(RuntimeError):
    """An extraction that cannot run (missing model file, unreadable video, bad argument): the
    message names the problem and what to do."""


@dataclass(frozen=True)
class ExtractorInfo:
    name: str
    multi_person: bool
    # One sentence for reports, e.g. "MediaPipe sees one person: the most prominent".
    note: str = ""


class Extractor:
    info: ExtractorInfo

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        """(people, POINTS, 3) float32 in pixels of ``rgb``; (0, POINTS, 3) when nobody is seen."""
        raise NotImplementedError

    def world(self) -> np.ndarray | None:
        """3-D landmarks of the last ``detect``'s people, where the extractor has them: (people,
        POINTS, 4) float32, x right, y down, z away from the camera, in metres about the person's
        mid-hip, and a confidence (0: absent). None when the extractor gives none (the import
        then reads depth from the lifter alone)."""
        return None

    def reset(self) -> None:
        """Forget tracking state (the next picture does not follow the last)."""

    def close(self) -> None:
        """Free the models."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def no_people() -> np.ndarray:
    return np.zeros((0, POINTS, 3), np.float32)


def set_midpoint(person: np.ndarray, target: str, a: str, b: str) -> None:
    """``target`` = the mean of ``a`` and ``b`` (confidence, the last column, the lower of the
    two) when both exist; ``person`` (POINTS, 3) pixels or (POINTS, 4) 3-D points."""
    ia, ib, it = IMPORT.find(a), IMPORT.find(b), IMPORT.find(target)
    if person[ia, -1] > 0 and person[ib, -1] > 0:
        person[it, :-1] = (person[ia, :-1] + person[ib, :-1]) / 2
        person[it, -1] = min(person[ia, -1], person[ib, -1])
