"""What the lift's steps share (``lift``; the steps ``lift_torso``, ``lift_limbs``,
``lift_groups``): the costs of the pass over the frames that settles each two-way choice, the
fits that start from a mirrored reading or settle after smoothing, and small matrix helpers.
"""
from __future__ import annotations

import numpy as np

# Costs of the pass that settles towards/away, in squared unit directions. Steps between
# frames cost little up to about 20 degrees and steeply beyond: a limb cannot jump from one
# reading to the other, so a switch happens where the two meet (the limb across the line of
# sight), not wherever the other reading costs a little less for long enough.
_CONTINUITY = {"weight": 1.0, "jump": 0.35, "jump_weight": 100.0}
_FIT_WEIGHT = 100.0  # ray residual of a rigid group, relative to the group's size squared
# The mirrored reading starts close to its answer (exact for a flat set seen from afar).
_MIRROR_FIT = {"iterations": 3, "rough_steps": 0}
# After smoothing: ridge-damped steps that restore what the rays determine well.
_SETTLE_FIT = {"iterations": 2, "rough_steps": 0, "ridge": 0.05}
_FILLED_WEIGHT = 0.5  # trust in an interpolated point


def _same_reading(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where the mirrored start fell back into the first reading's basin (seen face-on, the
    two readings coincide): (F,) bool, within about 3 degrees."""
    return np.sum((a - b) ** 2, axis=(-2, -1)) < 0.01


def _to4(rotation: np.ndarray, translation: np.ndarray | None = None) -> np.ndarray:
    out = np.zeros(rotation.shape[:-2] + (4, 4))
    out[..., :3, :3] = rotation
    out[..., 3, 3] = 1.0
    if translation is not None:
        out[..., :3, 3] = translation
    return out
