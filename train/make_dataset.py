"""Training pairs for the lifter: CMU mocap seen through random virtual cameras.

Each sample is a short clip at a video rate (24-60 fps, sub-sampled from the clip's own rate,
read from its BVH frame time; never upsampled, so a 30 fps clip gives 30 fps) seen by one
camera: azimuth all round, elevation -15..60 degrees, 24-85 mm (35 mm equivalent) on a
landscape or portrait frame, the subject anywhere in the frame and sometimes partly out of it.
The 2-D keypoints then get what a detector does to them: pixel jitter, points dropped (at
random, in runs, face points when the face turns away, a far ear in profile, anything outside
the frame), rare left/right swaps, and confidences that are not all 1. Inputs are normalised
by ``retarget.lifter.normalise`` (the add-on's own code); targets are the 3-D joints in the camera
frame relative to the mid-hip, scaled the same way, and each limb's towards/away sign.

Variety from few clips: mirrored copies, bone lengths changed by up to +-10% per bone, the
arms' motion taken from another clip or moment, and clips played backwards.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from retarget.lifter import LIMBS, normalise
from train.bvh import read_bvh
from train.skeleton import CMU_UNIT_M, MIRROR, coco18

# Arm joints in every naming read here ("Shldr": the Daz release's upper arm, lShldr / rShldr).
_ARM_WORDS = ("Shoulder", "Arm", "Elbow", "Wrist", "Hand", "Collar", "hand", "Finger", "Thumb", "Shldr")
_SIZES = ((1920, 1080), (1080, 1920), (1440, 1080), (1280, 720))


def clip_variants(paths, rng, per_clip: int = 6) -> list[tuple[np.ndarray, float]]:
    """(world COCO-18 motion (frames, 18, 3) in metres, Y up; the clip's fps), with variations."""
    clips = [read_bvh(p) for p in paths]
    out = []
    for bvh in clips:
        arm_cols = np.concatenate([
            np.arange(sl.start, sl.stop)
            for name, sl in zip(bvh.names, bvh.channel_slices())
            if any(w in name for w in _ARM_WORDS) and sl.stop > sl.start
        ])
        for v in range(per_clip):
            motion = bvh.motion[1:].copy()  # frame 0 is the converter's T-pose
            offsets = bvh.offsets * rng.uniform(0.9, 1.1, size=(len(bvh.names), 1))
            if v % 2 == 1:  # arms from another clip (same skeleton layout and rate) or another moment
                donor = clips[rng.integers(len(clips))]
                if donor.motion.shape[1] == motion.shape[1] and np.isclose(donor.frame_time, bvh.frame_time, rtol=1e-3):
                    start = rng.integers(1, donor.motion.shape[0])
                    rows = (start + np.arange(len(motion))) % (donor.motion.shape[0] - 1) + 1
                    motion[:, arm_cols] = donor.motion[rows][:, arm_cols]
            points = coco18(bvh, motion, offsets) * CMU_UNIT_M
            if v % 3 == 2:  # mirrored: the person's left becomes their right
                points = points[:, list(MIRROR)] * np.array([-1.0, 1.0, 1.0])
            out.append((points, bvh.fps))
    return out


def _look_rotation(forward: np.ndarray, roll: float) -> np.ndarray:
    """Rows: camera x (right), y (down), z (forward) in world (Y up) coordinates."""
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c, s = np.cos(roll), np.sin(roll)
    return np.stack([c * right + s * down, -s * right + c * down, forward])


def project(world: np.ndarray, rotation, position, focal, centre):
    """Camera-frame points (x right, y down, z forward) and their pixels."""
    cam = (world - position) @ rotation.T
    z = np.maximum(cam[..., 2:], 1e-3)
    pixels = focal * cam[..., :2] / z + np.asarray(centre)
    return cam, pixels


def targets(cam: np.ndarray, focal_units_size: np.ndarray) -> np.ndarray:
    """3-D targets: camera points relative to the mid-hip, over (hip depth x apparent size)."""
    hip = 0.5 * (cam[:, 8] + cam[:, 11])
    return (cam - hip[:, None]) / (hip[:, 2:3, None] * focal_units_size[:, None, None])


def random_camera(rng, hips: np.ndarray, height_m: float):
    width, height = _SIZES[rng.integers(len(_SIZES))]
    mm = np.exp(rng.uniform(np.log(24.0), np.log(85.0)))
    focal = mm / 43.27 * np.hypot(width, height)  # 35 mm equivalent on the diagonal
    fill = rng.uniform(0.25, 1.0)  # subject height as a fraction of the frame height
    distance = focal * height_m / (fill * height)
    azimuth, elevation = rng.uniform(0, 2 * np.pi), np.radians(rng.uniform(-15.0, 60.0))
    target = hips.mean(axis=0)
    direction = np.array([np.cos(elevation) * np.sin(azimuth), np.sin(elevation),
                          np.cos(elevation) * np.cos(azimuth)])
    position = target + distance * direction
    rotation = _look_rotation(target - position, np.radians(rng.normal(0.0, 3.0)))
    # Aim off the subject so it lands anywhere in the frame (sometimes partly outside).
    shift = rng.uniform(-0.45, 0.45, size=2) * np.array([width, height]) / focal * distance
    rotation = _look_rotation(target + shift[0] * rotation[0] + shift[1] * rotation[1] - position,
                              np.radians(rng.normal(0.0, 3.0)))
    return rotation, position, focal, (width / 2.0, height / 2.0), (width, height)


def detector_noise(rng, pixels, cam, image_size):
    """Keypoints (frames, 18, 3) as a detector would give them."""
    frames = len(pixels)
    body_px = np.ptp(pixels[..., 1], axis=1).mean() + 1.0
    kp = np.concatenate([pixels, rng.uniform(0.4, 1.0, size=(frames, 18, 1))], axis=-1)
    kp[..., :2] += rng.normal(0.0, rng.uniform(0.0, 0.012) * body_px, size=(frames, 18, 2))
    hidden = rng.random((frames, 18)) < rng.uniform(0.0, 0.06)
    for _ in range(rng.poisson(0.6)):  # a joint lost for a run of frames
        start, joint = rng.integers(frames), rng.integers(18)
        hidden[start : start + rng.integers(3, 16), joint] = True
    # Face turned away: no nose or eyes; head in profile: the far ear is hidden.
    ears_mid = 0.5 * (cam[:, 16] + cam[:, 17])
    away = (cam[:, 0, 2] - ears_mid[:, 2]) > 0.0
    hidden[:, [0, 14, 15]] |= (away & (rng.random(frames) < 0.85))[:, None]
    for ear, other in ((16, 17), (17, 16)):
        hidden[:, ear] |= (cam[:, ear, 2] > cam[:, other, 2] + 0.06) & (rng.random(frames) < 0.7)
    w, h = image_size
    outside = (kp[..., 0] < 0) | (kp[..., 0] >= w) | (kp[..., 1] < 0) | (kp[..., 1] >= h)
    hidden |= outside | (cam[..., 2] < 0.1)
    for f in np.nonzero(rng.random(frames) < 0.006)[0]:  # a left/right swap
        pair = [(2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13)][rng.integers(6)]
        kp[f, list(pair)] = kp[f, list(pair[::-1])]
    kp[hidden] = 0.0
    return kp


def scene_up(rng, rotation, known: float = 0.75, tilt_deg: float = 2.0):
    """The world's up direction in the camera frame as an import would pass it (the scene
    camera's tilt against the floor, matched to the shot within about ``tilt_deg``), or None
    (unknown) in ``1 - known`` of the samples, so the network reads clips either way."""
    if rng.random() >= known:
        return None
    up = rotation @ np.array([0.0, 1.0, 0.0]) + rng.normal(0.0, np.radians(tilt_deg), size=3)
    return up / np.linalg.norm(up)


def frame_step(rng, clip_fps: float) -> float:
    """Clip frames per video frame for a random video rate of 24-60 fps, never below 1.

    Fractional steps (linear interpolation) only where the clip has at least two frames per
    video frame (120 fps clips); slower clips are sub-sampled by whole frames, taking the rate
    they can give when none falls in 24-60 (a 30 fps clip gives 30 fps, not 24-60)."""
    step = clip_fps / rng.uniform(24.0, 60.0)
    if step >= 2.0:
        return step
    return float(max(1, round(step)))


def sample(rng, motion: np.ndarray, length: int, clip_fps: float = 120.0):
    """(features (length, 57), targets (length, 18, 3), towards (length, 8)) or None."""
    step = frame_step(rng, clip_fps)
    span = step * (length - 1)
    if span >= len(motion) - 1:
        return None
    times = rng.uniform(0, len(motion) - 1 - span) + step * np.arange(length)
    if rng.random() < 0.3:
        times = times[::-1]
    lo = np.floor(times).astype(int)
    t = (times - lo)[:, None, None]
    world = (1 - t) * motion[lo] + t * motion[np.minimum(lo + 1, len(motion) - 1)]
    hips = 0.5 * (world[:, 8] + world[:, 11])
    height_m = np.ptp(world[..., 1], axis=1).mean() + 0.15
    rotation, position, focal, centre, size = random_camera(rng, hips, height_m)
    cam, pixels = project(world, rotation, position, focal, centre)
    kp = detector_noise(rng, pixels, cam, size)
    features, _, apparent = normalise(kp, focal, centre, scene_up(rng, rotation))
    target = targets(cam, apparent)
    towards = np.stack([cam[:, c, 2] < cam[:, p, 2] for p, c in LIMBS], axis=1)
    return features, target.astype(np.float32), towards.astype(np.float32)


def draw_weights(seconds, subjects) -> np.ndarray:
    """How often each clip is drawn: each subject in proportion to the square root of its
    minutes (so the salsa pair, three quarters of the data, does not drown the walks), and
    within a subject each clip in proportion to its duration, whatever its frame rate."""
    seconds, subjects = np.asarray(seconds, dtype=np.float64), np.asarray(subjects)
    weights = np.zeros_like(seconds)
    for subject in np.unique(subjects):
        mine = subjects == subject
        weights[mine] = seconds[mine] / seconds[mine].sum() * np.sqrt(seconds[mine].sum())
    return weights / weights.sum()


def subject_of(path) -> str:
    return Path(path).stem.split("_")[0]


def make(paths, count: int, length: int, seed: int = 0, variants: int = 6):
    rng = np.random.default_rng(seed)
    motions = clip_variants(paths, rng, variants)  # ``variants`` per clip, in clip order
    seconds = [len(m) / rate for m, rate in motions]
    weights = draw_weights(seconds, [subject_of(p) for p in paths for _ in range(variants)])
    feats, targs, signs = [], [], []
    while len(feats) < count:
        motion, fps = motions[rng.choice(len(motions), p=weights)]
        got = sample(rng, motion, length, fps)
        if got is not None:
            feats.append(got[0]); targs.append(got[1]); signs.append(got[2])
    return np.stack(feats), np.stack(targs), np.stack(signs)
