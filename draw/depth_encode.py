"""Depth maps (distances, np.inf for no surface) as the grey images depth ControlNets expect.

Convention: near bright, far dark, empty background black. ControlNet's depth models were
trained on MiDaS output, which is *inverse* depth (disparity) normalised so the nearest thing is
white; ``mode="inverse"`` reproduces that, ``mode="linear"`` maps distance linearly instead.

One ``DepthRange`` is used for a whole shot (``shot_depth_range`` over all its frames, or a
range the user sets), never a per-frame min/max: with per-frame normalisation a static wall
changes grey level whenever a character walks closer or farther, which the model sees as flicker.

Surfaces are encoded in 1 .. max (255 or 65535) and only empty pixels are 0: the farthest
surface of the range is then still distinguishable from "nothing here" (useful for masking and
for checking a map), at the cost of one grey level the model cannot notice.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MODES = ("inverse", "linear")


@dataclass(frozen=True)
class DepthRange:
    """The distances mapped to the brightest (``near``) and darkest (``far``) surface levels."""

    near: float
    far: float

    def __post_init__(self) -> None:
        near, far = float(self.near), float(self.far)
        if not (math.isfinite(near) and math.isfinite(far) and 0 < near < far):
            raise ValueError(f"depth range needs finite 0 < near < far, got near={near}, far={far}")
        object.__setattr__(self, "near", near)
        object.__setattr__(self, "far", far)


def shot_depth_range(depth_frames) -> DepthRange:
    """The range of finite depths over all frames of a shot (one pass over any iterable).

    A shot whose surfaces all lie at one distance (a single wall facing the camera) gets a
    range starting there and a hair farther, so they encode as the brightest level.
    """
    lo, hi = math.inf, -math.inf
    for depth in depth_frames:
        depth = np.asarray(depth)
        finite = depth[np.isfinite(depth)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    if lo == math.inf:
        raise ValueError("no surface in any frame: nothing to take a depth range from "
                         "(is the camera looking at the scene?)")
    if lo <= 0:
        raise ValueError(f"depths must be positive distances, got a minimum of {lo}")
    if hi == lo:
        hi = lo * (1 + 1e-6)
    return DepthRange(lo, hi)


def encode_depth(depth, depth_range: DepthRange, mode: str = "inverse",
                 bit_depth: int = 8) -> np.ndarray:
    """(H, W) uint8 / uint16 grey image of a depth map.

    ``depth`` (H, W): distances, np.inf (or NaN) where there is no surface. Surfaces nearer
    than ``depth_range.near`` or farther than ``.far`` are clipped to the brightest / darkest
    level. ``mode`` "inverse" encodes (1/z - 1/far) / (1/near - 1/far), "linear" encodes
    (far - z) / (far - near); the result in 0..1 is scaled to 1 .. 2**bit_depth - 1, and empty
    pixels are 0.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    dtype = {8: np.uint8, 16: np.uint16}.get(bit_depth)
    if dtype is None:
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got {depth.shape}")
    near, far = depth_range.near, depth_range.far
    surface = np.isfinite(depth)
    z = np.clip(np.where(surface, depth, far), near, far)
    if mode == "inverse":
        level = (1.0 / z - 1.0 / far) / (1.0 / near - 1.0 / far)
    else:
        level = (far - z) / (far - near)
    top = (1 << bit_depth) - 1
    # Clip again: rounding in the formulas may step a hair outside 0..1 at the range ends.
    out = 1.0 + np.rint(np.clip(level, 0.0, 1.0) * (top - 1))
    out[~surface] = 0
    return out.astype(dtype)
