"""Measure the lifter on held-out CMU clips through five cameras (numpy inference only).

    python -m train.evaluate [--weights retarget/lifter_weights.npz] [clip.bvh ...]

Per clip and view: mean and p95 3-D direction error (degrees) of the upper arms, forearms,
thighs and shins, and how often the towards/away sign is wrong for limbs more than 20 degrees
out of the image plane; the flat reading (every limb laid in the image plane) beside it.
The clip is sampled at about 30 fps (every round(fps / 30)th frame of the clip's own rate, read
from its frame time: every 4th at 120 fps, every frame at 30 fps), frame 0 (the converter's
T-pose) left out.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from retarget.lifter import LIMBS, WEIGHTS, Lifter, normalise
from train.bvh import read_bvh
from train.make_dataset import project
from train.skeleton import CMU_UNIT_M, coco18

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cmu"
DEFAULT_CLIPS = (SHARED / "07_01.bvh", SHARED / "141_05.bvh")
# view -> (azimuth from the subject's front towards their left, elevation), degrees
VIEWS = {"front": (0, 5), "three_quarter": (45, 10), "side": (90, 5), "back": (180, 5), "high": (30, 45)}
WIDTH, HEIGHT, FOCAL_MM = 1920, 1080, 35.0


def view_camera(world: np.ndarray, azimuth: float, elevation: float):
    """A fixed camera at ``azimuth``/``elevation`` around the clip, looking at its middle."""
    up = np.array([0.0, 1.0, 0.0])
    left = world[0, 11] - world[0, 8]
    left[1] = 0.0
    left /= np.linalg.norm(left)
    forward = np.cross(left, up)
    hips = 0.5 * (world[:, 8] + world[:, 11])
    target = hips.mean(axis=0)
    distance = 5.0 + np.linalg.norm((hips - target)[:, [0, 2]], axis=1).max()
    a, e = np.radians(azimuth), np.radians(elevation)
    position = target + distance * (np.cos(e) * (np.cos(a) * forward + np.sin(a) * left) + np.sin(e) * up)
    z = (target - position) / np.linalg.norm(target - position)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    rotation = np.stack([x, np.cross(z, x), z])
    focal = FOCAL_MM / 43.27 * np.hypot(WIDTH, HEIGHT)
    return rotation, position, focal, (WIDTH / 2.0, HEIGHT / 2.0)


def keypoints_for(world, rotation, position, focal, centre):
    cam, pixels = project(world, rotation, position, focal, centre)
    inside = (pixels[..., 0] >= 0) & (pixels[..., 0] < WIDTH) & (pixels[..., 1] >= 0) & (pixels[..., 1] < HEIGHT)
    kp = np.concatenate([pixels, (inside & (cam[..., 2] > 0.1))[..., None].astype(float)], axis=-1)
    return cam, kp


def limb_vectors(points: np.ndarray) -> np.ndarray:
    return np.stack([points[:, c] - points[:, p] for p, c in LIMBS], axis=1)


def angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def measure(lifter: Lifter, world: np.ndarray, view: str, tilt: str = "scene") -> dict:
    """One view of a clip; ``tilt`` "scene": the network is told the camera's tilt (the world's
    up in the camera frame, as the import passes it), "image": it reads it from the keypoints."""
    camera = view_camera(world, *VIEWS[view])
    cam, kp = keypoints_for(world, *camera)
    up = camera[0] @ np.array([0.0, 1.0, 0.0]) if tilt == "scene" else None
    joints, _, confidence = lifter(kp, camera[2], camera[3], up)
    truth, pred = limb_vectors(cam), limb_vectors(joints)
    # What the geometric lift will use: the image's own 2-D limb (normalised as the network's
    # input) with the network's depth. Points out of frame keep the network's x, y.
    features, _, _ = normalise(kp, camera[2], camera[3], up)
    seen = features[:, : 18 * 3].reshape(-1, 18, 3)
    hybrid_points = np.where(seen[..., 2:] > 0, np.concatenate([seen[..., :2], joints[..., 2:]], -1), joints)
    hybrid = limb_vectors(hybrid_points)
    flat = truth.copy()
    flat[..., 2] = 0.0
    err, flat_err, hybrid_err = angles(pred, truth), angles(flat, truth), angles(hybrid, truth)
    out_of_plane = flat_err > 20.0
    wrong = np.sign(pred[..., 2]) != np.sign(truth[..., 2])
    return {"hybrid_mean": hybrid_err.mean(), "hybrid_p95": np.percentile(hybrid_err, 95),
            "hybrid_errors": hybrid_err, "mean": err.mean(), "p95": np.percentile(err, 95), "flat_mean": flat_err.mean(),
            "flat_p95": np.percentile(flat_err, 95),
            "wrong_sign": wrong[out_of_plane].mean() * 100 if out_of_plane.any() else 0.0,
            "deep_limbs": int(out_of_plane.sum()), "confidence": confidence.mean(), "errors": err}


def clip_world(path, fps: float = 30.0) -> np.ndarray:
    bvh = read_bvh(path)
    every = max(1, round(bvh.fps / fps))
    return coco18(bvh)[1::every] * CMU_UNIT_M


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("clips", nargs="*", type=Path, default=list(DEFAULT_CLIPS))
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    parser.add_argument("--tilt", choices=("scene", "image"), default="scene",
                        help="tell the network the camera's tilt (scene) or not (image)")
    args = parser.parse_args()
    lifter = Lifter(args.weights)
    all_err, all_hybrid, all_wrong = [], [], []
    print(f"{'clip':8} {'view':14} {'mean':>6} {'p95':>6} {'wrong%':>7} | {'2d+z':>6} {'p95':>6} | "
          f"{'flat':>6} {'p95':>6} {'conf':>5}")
    for path in args.clips:
        world = clip_world(path)
        for view in VIEWS:
            m = measure(lifter, world, view, args.tilt)
            all_err.append(m["errors"])
            all_hybrid.append(m["hybrid_errors"])
            all_wrong.append((m["wrong_sign"], m["deep_limbs"]))
            print(f"{path.stem:8} {view:14} {m['mean']:6.1f} {m['p95']:6.1f} {m['wrong_sign']:7.1f} | "
                  f"{m['hybrid_mean']:6.1f} {m['hybrid_p95']:6.1f} | "
                  f"{m['flat_mean']:6.1f} {m['flat_p95']:6.1f} {m['confidence']:5.2f}")
    errors = np.concatenate([e.ravel() for e in all_err])
    hybrid = np.concatenate([e.ravel() for e in all_hybrid])
    wrong = sum(w * n for w, n in all_wrong) / max(1, sum(n for _, n in all_wrong))
    print(f"all views: network mean {errors.mean():.1f} deg, p95 {np.percentile(errors, 95):.1f} deg; "
          f"2-D + network depth mean {hybrid.mean():.1f}, p95 {np.percentile(hybrid, 95):.1f}; "
          f"wrong sign {wrong:.1f}% of limbs >20 deg out of the image plane")


if __name__ == "__main__":
    main()
