"""Context windows over a shot: which frames the motion module sees together, how overlapping
windows are blended, and FreeNoise's repeated initial noise. Pure numpy, no torch.

A motion module (AnimateDiff) attends over 16-32 frames. A longer shot is covered by windows of
``length`` frames that start every ``stride`` frames; the last window ends on the shot's last
frame, so every window is full length and every frame is covered. At each denoising step every
window predicts noise for its frames and each frame takes the weighted mean of its windows'
predictions: weights fall towards a window's edges (a pyramid), so a frame near one window's
edge is decided mostly by the window that has it in the middle, and no seam shows where one
window ends.

FreeNoise (Qiu et al. 2023): the initial noise of frames past the first window repeats, shuffled,
the noise of the frames a window earlier, so every window starts from noise of the same make-up
and the look does not drift from window to window.
"""

from __future__ import annotations

import numpy as np

DEFAULT_CONTEXT_LENGTH = 16
DEFAULT_CONTEXT_STRIDE = 4


def context_windows(num_frames: int, length: int, stride: int) -> list[range]:
    """Windows (ranges of frame indices) covering ``num_frames`` frames, in increasing order.

    A shot that fits one window is one window of all its frames. Otherwise windows of ``length``
    frames start at 0, stride, 2*stride, ... and one more window ends on the last frame if the
    regular ones do not reach it.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1 (got {num_frames})")
    if length < 1 or stride < 1:
        raise ValueError(f"context length and stride must be at least 1 (got {length}, {stride})")
    if stride > length:
        raise ValueError(f"context stride ({stride}) must not exceed the context length ({length})")
    if num_frames <= length:
        return [range(num_frames)]
    starts = list(range(0, num_frames - length + 1, stride))
    if starts[-1] + length < num_frames:
        starts.append(num_frames - length)
    return [range(s, s + length) for s in starts]


def window_weights(length: int) -> np.ndarray:
    """Pyramid weights of one window's frames: 1, 2, ... up to the middle, then down again.
    Every weight is positive, so a frame covered by one window alone still gets its prediction."""
    position = np.arange(length, dtype=np.float64)
    return np.minimum(position + 1, length - position)


def frame_weight_sums(num_frames: int, windows: list[range]) -> np.ndarray:
    """For each frame, the sum of its weights over the windows that hold it (all positive)."""
    sums = np.zeros(num_frames, dtype=np.float64)
    for window in windows:
        sums[window.start : window.stop] += window_weights(len(window))
    return sums


def window_overhead(num_frames: int, length: int, stride: int) -> float:
    """How many times the average frame goes through the motion UNet per step (1.0: once)."""
    windows = context_windows(num_frames, length, stride)
    return sum(len(w) for w in windows) / num_frames


def freenoise_sources(num_frames: int, length: int, stride: int, seed: int) -> np.ndarray:
    """Index of the frame whose initial noise each frame takes (``sources[i] == i`` for the
    frames that draw their own: the first window).

    Past the first window, each block of ``stride`` frames takes a shuffled copy of the sources
    of the block ``length`` frames earlier, so the noise of any window is a permutation of the
    first window's noise. Seeded: the same shot and seed give the same shuffle.
    """
    sources = np.arange(num_frames)
    if num_frames <= length:
        return sources
    rng = np.random.default_rng(seed)
    for start in range(length, num_frames, stride):
        stop = min(start + stride, num_frames)
        earlier = sources[start - length : start - length + (stop - start)]
        sources[start:stop] = earlier[rng.permutation(stop - start)]
    return sources


def retire_before(windows: list[range], index: int) -> int:
    """The first frame that windows from ``index`` on still need (frames before it can be
    dropped from per-step caches); ``windows[-1].stop`` once all windows are done."""
    return windows[index].start if index < len(windows) else windows[-1].stop
