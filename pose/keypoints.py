"""The one representation every path speaks: a keypoint sequence.

``data`` is float32 of shape (frames, people, points, 3): x and y in pixels of the canvas
(origin top-left, y down, like an image) and a confidence in [0, 1]. Confidence 0 means the
point is absent; an absent point's x and y are meaningless and are kept at 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layouts import Layout


@dataclass
class KeypointSequence:
    layout: Layout
    data: np.ndarray
    canvas: tuple[int, int]  # (width, height) in pixels
    frame_numbers: np.ndarray  # int, one per frame (e.g. Blender frame numbers)

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data, dtype=np.float32)
        if self.data.ndim != 4 or self.data.shape[2:] != (len(self.layout), 3):
            raise ValueError(
                f"keypoint data must be (frames, people, {len(self.layout)}, 3) for layout "
                f"{self.layout.name!r}, got {self.data.shape}"
            )
        self.frame_numbers = np.asarray(self.frame_numbers, dtype=np.int64)
        if self.frame_numbers.shape != (self.data.shape[0],):
            raise ValueError(
                f"{self.data.shape[0]} frames but {self.frame_numbers.shape[0]} frame numbers"
            )
        width, height = self.canvas
        if width <= 0 or height <= 0:
            raise ValueError(f"canvas must be positive, got {width}x{height}")
        self.canvas = (int(width), int(height))

    @classmethod
    def empty(cls, layout: Layout, frame_numbers, people: int, canvas) -> "KeypointSequence":
        frames = len(frame_numbers)
        return cls(layout, np.zeros((frames, people, len(layout), 3), np.float32), canvas, frame_numbers)

    @property
    def frame_count(self) -> int:
        return self.data.shape[0]

    @property
    def people_count(self) -> int:
        return self.data.shape[1]

    @property
    def present(self) -> np.ndarray:
        """Boolean (frames, people, points): which points exist."""
        return self.data[..., 2] > 0

    def part(self, name: str) -> np.ndarray:
        """The (frames, people, part points, 3) slice of one part, e.g. ``"hand_left"``."""
        part = self.layout.part(name)
        return self.data[:, :, part.start:part.stop]

    def frame(self, index: int) -> "KeypointSequence":
        """A one-frame sequence (a view on the same data)."""
        return KeypointSequence(
            self.layout, self.data[index:index + 1], self.canvas, self.frame_numbers[index:index + 1]
        )

    def clear_absent(self) -> None:
        """Zero x and y wherever confidence is 0, so absent points never carry stale positions."""
        self.data[~self.present] = 0.0

    def to_layout(self, target: Layout) -> "KeypointSequence":
        """Re-order into another layout by point name; points the source lacks are absent."""
        out = np.zeros(self.data.shape[:2] + (len(target), 3), np.float32)
        for i, name in enumerate(target.points):
            j = self.layout.find(name)
            if j is not None:
                out[:, :, i] = self.data[:, :, j]
        return KeypointSequence(target, out, self.canvas, self.frame_numbers.copy())
