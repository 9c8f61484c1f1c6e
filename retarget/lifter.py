"""The learned 2-D -> 3-D lifter, inference in pure numpy (no torch in the add-on).

A VideoPose3D-style network: 1-D dilated convolutions over time (kernel 3, dilations 1, 3, 9:
27 frames seen per output frame) read the COCO-18 body keypoints of a whole clip and give each
frame's 3-D joints in the camera frame (x right, y down, z away from the camera) relative to
the mid-hip, in the same units as the normalised 2-D input (about metres at the hip's depth),
plus for each of the 8 limbs the probability that its far end is nearer the camera.

``normalise`` is shared with the training script (``train/make_dataset.py``), so the network
sees exactly what it was trained on. Weights: ``lifter_weights.npz`` beside this module
(float16, batch norm folded into the convolutions); ``LIFTER_MODEL_CARD.md`` tells their story.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).with_name("lifter_weights.npz")
POINTS = 18
# (parent, child) COCO-18 indices: upper arms, forearms, thighs, shins; right side then left.
LIMBS = ((2, 3), (3, 4), (8, 9), (9, 10), (5, 6), (6, 7), (11, 12), (12, 13))
LIMB_NAMES = ("r_upper_arm", "r_forearm", "r_thigh", "r_shin", "l_upper_arm", "l_forearm", "l_thigh", "l_shin")
# Segments and their typical length (m) whose 2-D length gives the body's apparent size. The
# largest ratio wins: a segment can only look shorter than it is (foreshortened), not longer.
_SIZE_SEGMENTS = ((1, 8, 0.50), (1, 11, 0.50), (2, 5, 0.36), (2, 3, 0.29), (5, 6, 0.29),
                  (8, 9, 0.42), (11, 12, 0.42), (9, 10, 0.42), (12, 13, 0.42))
SIZE_WINDOW = 27  # frames over which the apparent size is a running median (steadier scale)
# Per point x, y, confidence; the mid-hip's ray and log size; the world's up direction in the
# camera frame and whether it is known (GRAVITY_FEATURES).
GRAVITY_FEATURES = 4
FEATURES = POINTS * 3 + 3 + GRAVITY_FEATURES
# Left/right partner of each COCO-18 point, and of each limb of LIMBS (the mirrored reading).
MIRROR_POINTS = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)
MIRROR_LIMBS = (4, 5, 6, 7, 0, 1, 2, 3)


def _fill_over_time(values: np.ndarray) -> np.ndarray:
    """NaN rows of a (frames, k) array filled by linear interpolation over time."""
    out = values.copy()
    frames = np.arange(len(values))
    for k in range(values.shape[1]):
        good = np.isfinite(values[:, k])
        if good.any() and not good.all():
            out[:, k] = np.interp(frames, frames[good], values[good, k])
    return out


def normalise(keypoints, focal: float, centre: tuple[float, float], up=None, min_confidence: float = 0.05):
    """Network input from pixel keypoints.

    ``keypoints`` (frames, 18, 3): x, y, confidence in pixels (COCO-18 order); ``focal`` in
    pixels; ``centre`` the principal point (usually the image centre); ``up`` the world's up
    direction in the camera frame (x right, y down, z away; (3,) or (frames, 3)), None where
    unknown. Returns ``features`` (frames, FEATURES): per point (x, y) relative to the mid-hip
    divided by the apparent body size, and the confidence (0 where the point is missing); then
    the mid-hip's ray (x/z, y/z) and the log of the apparent size (metres -> normalised image
    units, about 1 / distance); then ``up`` and 1, or zeros. Also returns ``hip`` (frames, 2)
    and ``size`` (frames,) to map results back.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    conf = np.clip(np.nan_to_num(kp[..., 2]), 0.0, 1.0)
    valid = (conf > min_confidence) & np.isfinite(kp[..., :2]).all(-1)
    uv = (np.nan_to_num(kp[..., :2]) - np.asarray(centre, dtype=np.float64)) / float(focal)
    uv_nan = np.where(valid[..., None], uv, np.nan)

    with _quiet():
        hip = np.nanmean(uv_nan[:, [8, 11]], axis=1)  # one hip alone stands in for both
    if not np.isfinite(hip).any():  # no hips anywhere: the middle of what is seen
        with _quiet():
            hip = np.nanmean(uv_nan, axis=1)
    hip = np.nan_to_num(_fill_over_time(hip))

    ratios = []
    for a, b, metres in _SIZE_SEGMENTS:
        first = uv_nan[:, 1] if a != 1 else 0.5 * (uv_nan[:, 2] + uv_nan[:, 5])
        ratios.append(np.linalg.norm(uv_nan[:, b] - first, axis=-1) / metres)
    ratios = np.stack(ratios, axis=1)
    with _quiet():
        size = np.nanmax(ratios, axis=1)
    size = _fill_over_time(size[:, None])[:, 0]
    if not np.isfinite(size).any():
        size = np.full(len(kp), 0.3)
    size = _running_median(size, SIZE_WINDOW)
    size = np.maximum(size, 1e-4)

    rel = (uv - hip[:, None]) / size[:, None, None]
    rel = np.where(valid[..., None], np.clip(rel, -4.0, 4.0), 0.0)
    per_point = np.concatenate([rel, np.where(valid, conf, 0.0)[..., None]], axis=-1)
    globals_ = np.stack([hip[:, 0], hip[:, 1], np.log(size)], axis=1)
    features = np.concatenate([per_point.reshape(len(kp), -1), globals_, gravity_features(up, len(kp))], axis=1)
    return features.astype(np.float32), hip, size


def gravity_features(up, frames: int) -> np.ndarray:
    """(frames, 4): the unit up direction in the camera frame and 1, or zeros where unknown.
    The camera's tilt against the floor is what a single view reads worst (a high camera looks
    like a performer leaning towards it); where the scene knows it, the network need not guess."""
    out = np.zeros((frames, GRAVITY_FEATURES))
    if up is None:
        return out
    up = np.broadcast_to(np.asarray(up, dtype=np.float64), (frames, 3))
    length = np.linalg.norm(up, axis=-1, keepdims=True)
    known = np.isfinite(up).all(-1) & (length[:, 0] > 1e-9)
    out[known, :3] = up[known] / length[known]
    out[known, 3] = 1.0
    return out


class _quiet:
    """Silence numpy's all-NaN slice warnings (expected: frames with nothing seen)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def _running_median(values: np.ndarray, window: int) -> np.ndarray:
    half = window // 2
    padded = np.pad(values, half, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, window), axis=1)


class _Network:
    """One exported network: its folded layers and their specification."""

    def __init__(self, config: dict, arrays, prefix: str = ""):
        self.specs = config["layers"]
        # float32 for the matmuls: float16 storage only keeps the file small.
        self.layers = [
            (arrays[f"{prefix}w{i}"].astype(np.float32), arrays[f"{prefix}b{i}"].astype(np.float32))
            for i in range(len(self.specs))
        ]
        self.receptive_field = int(config["receptive_field"])
        # Weights trained before the up direction was an input read the first 57 features.
        self.features = int(config.get("features", POINTS * 3 + 3))

    def run_features(self, features: np.ndarray) -> np.ndarray:
        pad = self.receptive_field // 2
        features = np.asarray(features, dtype=np.float32)[:, : self.features]
        x = np.pad(features, ((pad, pad), (0, 0)), mode="edge")
        skip = None
        for (w, b), spec in zip(self.layers, self.specs):
            # w: (kernel, in, out); a dilated 'valid' convolution is a sum of shifted matmuls.
            kernel, dilation = w.shape[0], spec["dilation"]
            length = x.shape[0] - (kernel - 1) * dilation
            if spec.get("residual_in"):
                skip = x[(x.shape[0] - length) // 2 : (x.shape[0] - length) // 2 + length]
            y = b + sum(x[k * dilation : k * dilation + length] @ w[k] for k in range(kernel))
            if spec.get("relu"):
                np.maximum(y, 0.0, out=y)
            if spec.get("residual_out"):  # the block's input joins after its last ReLU
                y = y + skip
            x = y
        return x


class Lifter:
    """The network, loaded once; ``__call__`` runs it over a whole clip.

    A weights file holds one network, or several (``config["members"]``: each with its own
    layers, arrays prefixed ``m<i>_``, and a weight) whose outputs are blended: networks trained
    on different data err differently (train/ensemble.py writes such a file)."""

    def __init__(self, path=WEIGHTS):
        with np.load(path) as data:
            self.config = json.loads(bytes(data["config"]).decode())
            members = self.config.get("members") or [dict(self.config, prefix="", weight=1.0)]
            self.networks = [_Network(member, data, member["prefix"]) for member in members]
        weights = np.array([float(member["weight"]) for member in members], dtype=np.float32)
        self.blend = weights / weights.sum()
        self.receptive_field = max(network.receptive_field for network in self.networks)

    def run_features(self, features: np.ndarray) -> np.ndarray:
        """Raw network output (frames, outputs) for normalised features (frames, FEATURES): the
        members' outputs blended by their weights (joints, and the limbs' towards-logits)."""
        outputs = [network.run_features(features) for network in self.networks]
        return sum(weight * out for weight, out in zip(self.blend, outputs))

    def __call__(self, keypoints, focal: float, centre: tuple[float, float], up=None):
        """3-D joints and depth confidence for a (frames, 18, 3) pixel keypoint clip (``up``:
        the world's up direction in the camera frame, as ``normalise`` takes it).

        Returns ``joints`` (frames, 18, 3) in normalised camera units (x right, y down, z
        away; mid-hip at the origin), ``towards`` (frames, 8): probability that each limb of
        ``LIMBS`` points towards the camera (its child nearer), and ``confidence`` (frames,):
        how sure the depth choices are, 0.5 (a coin toss) to 1.
        """
        return self.read(keypoints, focal, centre, up)[:3]

    def read(self, keypoints, focal: float, centre: tuple[float, float], up=None):
        """As ``__call__``, plus each limb's depth angle (``limb_depth_angles``).

        The clip is read twice, as it is and mirrored (left and right swapped, x flipped about
        the principal point), and the two readings averaged, the mirrored one turned back: the
        network's errors on the two are partly independent (held out: wrong depth signs 8.3% ->
        6.9%)."""
        keypoints = np.asarray(keypoints, dtype=np.float64)
        features, joints, towards = self._reading(keypoints, focal, centre, up)
        mirrored = keypoints[:, MIRROR_POINTS].copy()
        mirrored[..., 0] = np.where(mirrored[..., 2] > 0, 2.0 * centre[0] - mirrored[..., 0], 0.0)
        up_mirrored = None if up is None else np.asarray(up, dtype=np.float64) * np.array([-1.0, 1.0, 1.0])
        _, joints_m, towards_m = self._reading(mirrored, focal, centre, up_mirrored)
        joints_m = joints_m[:, MIRROR_POINTS] * np.array([-1.0, 1.0, 1.0])
        joints = 0.5 * (joints + joints_m)
        towards = 0.5 * (towards + towards_m[:, MIRROR_LIMBS])
        confidence = np.maximum(towards, 1.0 - towards).mean(axis=1)
        return joints, towards, confidence, limb_depth_angles(joints, features)

    def _reading(self, keypoints, focal, centre, up):
        """(features, joints (F, 18, 3), towards (F, 8)) of one pass of the network."""
        features, _, _ = normalise(keypoints, focal, centre, up)
        out = self.run_features(features).astype(np.float64)
        joints = out[:, : POINTS * 3].reshape(-1, POINTS, 3)
        towards = 1.0 / (1.0 + np.exp(-out[:, POINTS * 3 : POINTS * 3 + len(LIMBS)]))
        return features, joints, towards


def depth_angles(planar: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """(frames, 8) each limb of LIMBS's angle out of the image plane, radians, + away from the
    camera, from its ends' image-plane x, y (frames, 18, 2) and depth (frames, 18)."""
    parent, child = np.array(LIMBS).T
    across = np.linalg.norm(planar[:, child] - planar[:, parent], axis=-1)
    return np.arctan2(depth[:, child] - depth[:, parent], across)


def limb_depth_angles(joints: np.ndarray, features: np.ndarray) -> np.ndarray:
    """(frames, 8) each limb's angle out of the image plane, radians, + away from the camera.

    The image's own 2-D limb (the normalised input, where both ends were seen) against the
    network's depth change along it: the image says how long the limb looks, the network how
    far it reaches in depth. Where an end was not seen the network's own x, y stand in."""
    seen = features[:, : POINTS * 3].reshape(-1, POINTS, 3)
    planar = np.where(seen[..., 2:] > 0, seen[..., :2], joints[..., :2])
    return depth_angles(planar, joints[..., 2])


_CACHE: dict[str, Lifter] = {}


def load(path=WEIGHTS) -> Lifter:
    """The lifter for ``path``, loaded once per process."""
    key = str(path)
    if key not in _CACHE:
        _CACHE[key] = Lifter(path)
    return _CACHE[key]
