"""Benchmark: person tracking + cleaning of a body+hands keypoint sequence, frames per second.

    python bench/bench_cleaning.py [--frames 1200] [--repeat 5]

Two inputs, each with two people per frame, BODY_25B body + two 21-point hands (67 points):
  real       the pose2sim clip (../shared/data, OpenPose BODY_25B, 60 fps) played forwards and
             backwards until --frames long, hands synthesised around the wrists, the people
             listed in a random order in every frame (skipped when ../shared is absent)
  synthetic  two people walking across each other, with jitter and dropouts
Prints the best of --repeat runs for track_person, clean (default options) and both together.
The issue's budget is tracking + cleaning + lifting >= 2,000 frames/s, so tracking + cleaning
alone should stay far above it (aim: >= 10,000 frames/s).
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))          # conftest.py: loads the repository as "posebridge"
sys.path.insert(0, str(REPO / "tests" / "pure"))  # test_tracking.py: the BODY_25B stand-in loader

TARGET = 10_000


def with_hands(body_seq, rng):
    """Add 21-point hands hanging from each wrist (jittered) to a BODY_25B sequence."""
    from posebridge.pose.keypoints import KeypointSequence
    from posebridge.pose.layouts import HAND21, concat

    layout = concat("body25b_hands", ("body", body_seq.layout), ("hand_left", HAND21), ("hand_right", HAND21))
    frames, people = body_seq.data.shape[:2]
    data = np.zeros((frames, people, len(layout), 3), np.float32)
    data[:, :, :25] = body_seq.data
    fan = np.stack([np.linspace(-20, 20, 21), np.linspace(0, 60, 21)], axis=1)  # px from the wrist
    for side, part in (("l_wrist", "hand_left"), ("r_wrist", "hand_right")):
        wrist = body_seq.data[:, :, body_seq.layout.index(side)]
        span = layout.part(part)
        hand = wrist[:, :, None, :2] + fan + rng.normal(0, 2.0, (frames, people, 21, 2))
        conf = np.where(wrist[:, :, None, 2] > 0, rng.uniform(0.3, 0.9, (frames, people, 21)), 0)
        data[:, :, span.start:span.stop, :2] = np.where(conf[..., None] > 0, hand, 0)
        data[:, :, span.start:span.stop, 2] = conf
    return KeypointSequence(layout, data, body_seq.canvas, body_seq.frame_numbers)


def real_clip(frames, rng):
    import conftest

    from posebridge.pose.keypoints import KeypointSequence
    from test_tracking import load_pose2sim

    if not conftest.SHARED_DATA.is_dir():
        return None
    clip = load_pose2sim(conftest.SHARED_DATA)
    # Forwards then backwards: long, and with no jump where the copies meet.
    cycle = np.concatenate([clip.data, clip.data[::-1]])
    data = np.concatenate([cycle] * (frames // len(cycle) + 1))[:frames, :2].copy()
    order = np.argsort(rng.random(data.shape[:2]), axis=1)
    data = np.take_along_axis(data, order[:, :, None, None], axis=1)
    return with_hands(KeypointSequence(clip.layout, data, clip.canvas, np.arange(frames)), rng), 60.0


def synthetic_clip(frames, rng):
    from posebridge.pose.keypoints import KeypointSequence
    from posebridge.pose.layouts import BODY25B

    t = np.arange(frames)
    data = np.zeros((frames, 2, 25, 3), np.float32)
    template = rng.uniform([-60, -400], [60, 0], (25, 2))  # a rough 400 px tall body
    for p, (x0, vx) in enumerate(((200.0, 1.5), (1700.0, -1.5))):
        x = x0 + vx * (t % 1000)
        data[:, p, :, 0] = x[:, None] + template[:, 0] + rng.normal(0, 2, (frames, 25))
        data[:, p, :, 1] = 900 + template[:, 1] + rng.normal(0, 2, (frames, 25))
        data[:, p, :, 2] = rng.uniform(0.2, 0.9, (frames, 25))
    data[rng.random(data.shape[:3]) < 0.04] = 0  # dropouts
    order = np.argsort(rng.random((frames, 2)), axis=1)
    data = np.take_along_axis(data, order[:, :, None, None], axis=1)
    seq = KeypointSequence(BODY25B, data, (1920, 1080), t)
    return with_hands(seq, rng), 30.0


def best_of(repeat, fn):
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import conftest  # noqa: F401  (loads the repository as the package "posebridge")
    from posebridge.retarget.cleaning import CleanOptions, clean
    from posebridge.retarget.tracking import track_person

    rng = np.random.default_rng(0)
    ok = True
    for name, make in (("real", real_clip), ("synthetic", synthetic_clip)):
        made = make(args.frames, rng)
        if made is None:
            print(f"{name:9s}  skipped: ../shared/data is absent")
            continue
        seq, fps = made
        options = CleanOptions(fps=fps)
        tracked = track_person(seq, fps=fps).sequence
        _, report = clean(tracked, options)
        t_track = best_of(args.repeat, lambda: track_person(seq, fps=fps))
        t_clean = best_of(args.repeat, lambda: clean(tracked, options))
        t_both = best_of(args.repeat, lambda: clean(track_person(seq, fps=fps).sequence, options))
        rate = args.frames / t_both
        ok &= rate >= TARGET
        print(f"{name:9s}  {args.frames} frames x {seq.people_count} people x {len(seq.layout)} points: "
              f"track {args.frames / t_track:8.0f} frames/s, clean {args.frames / t_clean:8.0f} frames/s, "
              f"both {rate:8.0f} frames/s ({rate / TARGET:.1f}x the {TARGET:,} aim)")
        print(f"{'':9s}  {report}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
