"""Fitting a keypoint canvas into the render frame.

A clip's canvas (say 1080x1920 portrait) rarely has the render's aspect. The canvas is scaled
to fit inside the frame, centred, as a video laid into the frame would be, so that limb
directions are never distorted; the caller reports the fit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..pose.keypoints import KeypointSequence


@dataclass(frozen=True)
class CanvasFit:
    scale: float
    offset: tuple[float, float]  # added after scaling, in render pixels
    letterboxed: bool  # the aspects differ: bars left/right or top/bottom

    def describe(self, canvas, frame) -> str:
        if not self.letterboxed:
            return f"canvas {canvas[0]}x{canvas[1]} scaled {self.scale:.3g}x to the frame {frame[0]}x{frame[1]}"
        return (
            f"canvas {canvas[0]}x{canvas[1]} has another aspect than the frame {frame[0]}x{frame[1]}: "
            f"fitted inside it, centred (scale {self.scale:.3g}, offset {self.offset[0]:.1f}, {self.offset[1]:.1f} px)"
        )


def canvas_fit(canvas: tuple[int, int], frame: tuple[int, int]) -> CanvasFit:
    """How a ``canvas`` (w, h) maps into ``frame`` (w, h): uniform scale, centred."""
    scale = min(frame[0] / canvas[0], frame[1] / canvas[1])
    # Pixel centres sit at integer coordinates (x = i is the centre of column i), so the
    # image spans -0.5 .. w - 0.5: scale about that edge, not about 0.
    offset = tuple(
        (f - c * scale) / 2.0 + 0.5 * scale - 0.5 for c, f in zip(canvas, frame)
    )
    letterboxed = abs(canvas[0] * frame[1] - canvas[1] * frame[0]) > 0.5 * max(canvas[1], frame[1])
    return CanvasFit(scale, (float(offset[0]), float(offset[1])), letterboxed)


def fit_into_frame(seq: KeypointSequence, frame: tuple[int, int]) -> tuple[KeypointSequence, CanvasFit]:
    """``seq`` in pixels of ``frame`` (absent points stay absent at 0, 0)."""
    fit = canvas_fit(seq.canvas, frame)
    data = seq.data.copy()
    present = data[..., 2] > 0
    data[..., 0] = np.where(present, data[..., 0] * fit.scale + fit.offset[0], 0.0)
    data[..., 1] = np.where(present, data[..., 1] * fit.scale + fit.offset[1], 0.0)
    return KeypointSequence(seq.layout, data, frame, seq.frame_numbers.copy()), fit
