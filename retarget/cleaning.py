"""``clean``: the cleaning steps in the order that works, with one set of options.

Order and why: confidence gating first (junk points must not steer anything after it); swap
repair before filling (interpolating between a flipped frame and a correct one would draw a
limb halfway across the body); gap filling before smoothing (the filter then runs through short
gaps instead of restarting at each); smoothing last. Person tracking (``tracking.track_person``)
comes before all of this when the sequence has several people.
"""
from __future__ import annotations

from dataclasses import dataclass

from .filters import CleanReport, fill_gaps, gate_confidence, smooth_one_euro
from ..pose.keypoints import KeypointSequence
from .swaps import repair_swaps


@dataclass
class CleanOptions:
    """Settings of ``clean``; the defaults suit OpenPose/DWPose output of real video."""

    min_confidence: float = 0.1  # points below become absent (0 keeps everything)
    max_gap: int = 10            # longest run of missing frames to fill (0 = no filling)
    hold_ends: bool = True       # gaps touching the clip's ends hold the nearest known value
    repair_swaps: bool = True
    max_swap_frames: int = 6     # longest left/right flip undone
    smooth: bool = True
    smooth_strength: float = 1.0  # divides min_cutoff and beta: 2 = smoother, 0.5 = lighter
    min_cutoff: float = 1.0      # Hz, One Euro cutoff at rest
    beta: float = 5.0            # Hz per (person size / s): how fast the cutoff opens with speed
    d_cutoff: float = 1.0        # Hz, cutoff of the speed estimate
    zero_lag: bool = True        # also filter backwards in time and average: the lags cancel
    fps: float = 30.0            # the clip's frame rate


def clean(seq: KeypointSequence, options: CleanOptions | None = None) -> tuple[KeypointSequence, CleanReport]:
    """Gate, repair swaps, fill gaps and smooth ``seq``; returns the result and a report."""
    opts = options or CleanOptions()
    report = CleanReport()
    out = seq
    if opts.min_confidence > 0:
        out = gate_confidence(out, opts.min_confidence, report)
    report.frames_with_nobody = int((~out.present.any(axis=(1, 2))).sum())
    if opts.repair_swaps:
        out = repair_swaps(out, opts.max_swap_frames, report)
    if opts.max_gap > 0:
        out = fill_gaps(out, opts.max_gap, opts.hold_ends, report)
    if opts.smooth and opts.smooth_strength > 0:
        out = smooth_one_euro(
            out, min_cutoff=opts.min_cutoff, beta=opts.beta, d_cutoff=opts.d_cutoff,
            fps=opts.fps, strength=opts.smooth_strength, zero_lag=opts.zero_lag, report=report,
        )
    if out is seq:
        out = KeypointSequence(seq.layout, seq.data.copy(), seq.canvas, seq.frame_numbers.copy())
    return out, report
