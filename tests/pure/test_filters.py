"""Cleaning: confidence gating, gap filling, left/right swap repair, One Euro smoothing, clean()."""
import numpy as np
import pytest

from posebridge.pose import layouts
from posebridge.pose.keypoints import KeypointSequence
from posebridge.retarget.cleaning import CleanOptions, clean
from posebridge.retarget.filters import CleanReport, fill_gaps, gate_confidence, person_sizes, smooth_one_euro
from posebridge.retarget.swaps import repair_swaps, side_groups

FULL = layouts.OPENPOSE_FULL
BODY = layouts.OPENPOSE_BODY


def one_point(xs, ys=None, conf=None, layout=BODY):
    """A one-person sequence whose nose follows xs (and ys); all other points are absent."""
    frames = len(xs)
    data = np.zeros((frames, 1, len(layout), 3), np.float32)
    data[:, 0, 0, 0] = xs
    data[:, 0, 0, 1] = 100.0 if ys is None else ys
    data[:, 0, 0, 2] = 0.9 if conf is None else conf
    return KeypointSequence(layout, data, (1920, 1080), np.arange(frames))


def walker(frames=120, seed=0, jitter=0.002, size=400.0, period=40, start=0):
    """A person walking to the right seen from the side (OPENPOSE_FULL: body and both hands):
    arms and legs swing in opposition, so left and right limbs cross every half period (at
    frames 0, 20, 40, ... counted from ``start``), gradually."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) + start
    swing = np.sin(2 * np.pi * t / period)
    hip_x = 300 + 3.0 * t
    data = np.zeros((frames, 1, len(FULL), 3), np.float32)

    def put(name, x, y):
        i = FULL.index(name)
        data[:, 0, i, 0] = x + rng.normal(0, jitter * size, frames)
        data[:, 0, i, 1] = y + rng.normal(0, jitter * size, frames)
        data[:, 0, i, 2] = 0.9

    feet = 900.0
    put("nose", hip_x + 0.06 * size, feet - 0.93 * size)
    put("neck", hip_x, feet - 0.82 * size)
    for side, sign in (("l_", 1), ("r_", -1)):
        leg, arm = sign * swing, -sign * swing
        put(side + "eye", hip_x + 0.05 * size + sign * 0.005 * size, feet - 0.95 * size)
        put(side + "ear", hip_x - 0.01 * size + sign * 0.005 * size, feet - 0.93 * size)
        put(side + "shoulder", hip_x + sign * 0.02 * size, feet - 0.82 * size)
        put(side + "elbow", hip_x + 0.07 * arm * size, feet - 0.64 * size)
        put(side + "wrist", hip_x + 0.14 * arm * size, feet - 0.47 * size)
        put(side + "hip", hip_x + sign * 0.01 * size, feet - 0.5 * size)
        put(side + "knee", hip_x + 0.09 * leg * size, feet - 0.27 * size)
        put(side + "ankle", hip_x + 0.18 * leg * size, feet - 0.04 * size)
        hand = FULL.part("hand_left" if side == "l_" else "hand_right")
        wrist = data[:, 0, FULL.index(side + "wrist"), :2]
        offsets = np.linspace(0, 0.08 * size, hand.size)  # a hand hanging down from the wrist
        data[:, 0, hand.start:hand.stop, 0] = wrist[:, None, 0] + 0.2 * offsets
        data[:, 0, hand.start:hand.stop, 1] = wrist[:, None, 1] + offsets
        data[:, 0, hand.start:hand.stop, 2] = 0.8
    return KeypointSequence(FULL, data, (1920, 1080), np.arange(frames))


def group_points(name):
    for group, _, _, ml, mr in side_groups(FULL):
        if group == name:
            return ml, mr
    raise KeyError(name)


def flip(seq, frames, *groups):
    """A copy with the named groups' left and right exchanged in ``frames``."""
    data = seq.data.copy()
    for name in groups:
        ml, mr = group_points(name)
        for f in frames:
            data[f, 0, np.r_[ml, mr]] = data[f, 0, np.r_[mr, ml]]
    return KeypointSequence(seq.layout, data, seq.canvas, seq.frame_numbers)


# --- gating and gap filling ----------------------------------------------------------------------

def test_gating_drops_low_confidence_points():
    seq = one_point([10, 11, 12, 13], conf=[0.9, 0.05, 0.3, 0.0])
    report = CleanReport()
    out = gate_confidence(seq, 0.1, report)
    np.testing.assert_array_equal(out.present[:, 0, 0], [True, False, True, False])
    assert (out.data[1, 0, 0] == 0).all()
    assert report.points_gated == 1
    assert seq.present[1, 0, 0]  # the input is untouched


def test_short_gaps_are_interpolated_long_ones_left_and_ends_held():
    xs = np.arange(40, dtype=np.float32) * 10
    conf = np.full(40, 0.9, np.float32)
    conf[[0, 1]] = 0          # leading gap of 2: held at frame 2's value
    conf[5:8] = 0             # interior gap of 3: linear
    conf[15:25] = 0           # 10 frames: exactly max_gap, filled
    conf[28:39] = 0           # 11 frames: stays absent
    seq = one_point(xs, conf=conf)
    report = CleanReport()
    out = fill_gaps(seq, max_gap=10, report=report)
    x = out.data[:, 0, 0, 0]
    present = out.present[:, 0, 0]
    np.testing.assert_allclose(x[0:2], 20)
    np.testing.assert_allclose(x[5:8], xs[5:8], atol=1e-4)
    np.testing.assert_allclose(x[15:25], xs[15:25], atol=1e-3)
    assert not present[28:39].any() and present[39]
    assert report.gaps_filled == 3 and report.points_filled == 2 + 3 + 10
    # The trailing end: held at the last known value; and only when hold_ends.
    conf2 = np.full(10, 0.9, np.float32)
    conf2[7:] = 0
    held = fill_gaps(one_point(xs[:10], conf=conf2))
    np.testing.assert_allclose(held.data[7:, 0, 0, 0], 60)
    assert not fill_gaps(one_point(xs[:10], conf=conf2), hold_ends=False).present[7:, 0, 0].any()


def test_filled_points_interpolate_confidence_and_keep_other_points_alone():
    conf = np.array([0.9, 0, 0, 0.3], np.float32)
    out = fill_gaps(one_point([0, 0, 0, 30], conf=conf))
    np.testing.assert_allclose(out.data[:, 0, 0, 2], [0.9, 0.7, 0.5, 0.3], atol=1e-6)
    assert not out.present[:, 0, 1:].any()  # never-seen points stay absent


# --- left/right swap repair ----------------------------------------------------------------------

def test_groups_are_found_by_name():
    names = {name: ([FULL.points[i] for i in decide], [FULL.points[i] for i in move])
             for name, decide, _, move, _ in side_groups(FULL)}
    assert names["arm"][0] == ["l_shoulder", "l_elbow", "l_wrist"]
    assert "l_hand_index_2" in names["arm"][1]          # the hand moves with the arm
    assert names["hand"][1][:2] == ["l_wrist", "l_hand_wrist"]
    assert names["leg"][0] == ["l_hip", "l_knee", "l_ankle"]
    assert sorted(names["head"][0]) == ["l_ear", "l_eye", "l_pupil"]
    assert all(FULL.points[i].startswith("r_") for g in side_groups(FULL) for i in g[2])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_short_flips_are_undone_and_counted(seed):
    truth = walker(seed=seed)
    flipped = flip(truth, [10], "arm")                 # 1 frame, arm with its hand
    flipped = flip(flipped, [29, 30], "leg")           # 2 frames
    flipped = flip(flipped, [49, 50, 51], "hand")      # 3 frames, wrist and hand only
    flipped = flip(flipped, [70], "arm", "leg")        # a whole-body flip: arm + leg
    flipped = flip(flipped, [109, 110], "leg")
    report = CleanReport()
    out = repair_swaps(flipped, max_frames=6, report=report)
    np.testing.assert_array_equal(out.data, truth.data)
    assert report.swaps_fixed == 6
    assert report.swapped_frames == 1 + 2 + 3 + 2 + 2


def test_a_flip_at_the_start_of_the_clip_is_undone():
    truth = walker(seed=3, start=8)  # limbs well apart in the first frames
    report = CleanReport()
    out = repair_swaps(flip(truth, [0, 1], "arm"), report=report)
    np.testing.assert_array_equal(out.data, truth.data)
    assert report.swaps_fixed == 1


@pytest.mark.parametrize("seed", range(5))
def test_genuine_crossings_are_left_alone(seed):
    # The walker's arms and legs cross every 20 frames; nothing is flipped.
    truth = walker(seed=seed, jitter=0.004)
    report = CleanReport()
    out = repair_swaps(truth, report=report)
    assert report.swaps_fixed == 0
    np.testing.assert_array_equal(out.data, truth.data)


def test_a_slow_turn_is_not_a_flip():
    # Seen from the front, a person turns round over 40 frames: left and right arms and legs
    # pass each other gradually and end up mirrored, as a detector labels them.
    frames = 60
    data = np.zeros((frames, 1, len(BODY), 3), np.float32)
    turn = np.cos(np.pi * np.clip(np.arange(frames) - 10, 0, 40) / 40)  # 1 -> -1
    rng = np.random.default_rng(0)
    for name, width, y in (("shoulder", 50, 300), ("elbow", 60, 380), ("wrist", 65, 460),
                           ("hip", 30, 500), ("knee", 32, 620), ("ankle", 32, 740)):
        for side, sign in (("l_", 1), ("r_", -1)):
            i = BODY.index(side + name)
            data[:, 0, i, 0] = 500 + sign * width * turn + rng.normal(0, 1, frames)
            data[:, 0, i, 1] = y + rng.normal(0, 1, frames)
            data[:, 0, i, 2] = 0.9
    seq = KeypointSequence(BODY, data, (1000, 800), np.arange(frames))
    report = CleanReport()
    out = repair_swaps(seq, report=report)
    assert report.swaps_fixed == 0
    np.testing.assert_array_equal(out.data, seq.data)


def test_a_long_flip_is_kept():
    # Longer than max_frames: the detector's labelling stands (it may be right).
    truth = walker(seed=4)
    flipped = flip(truth, range(10, 22), "arm")
    report = CleanReport()
    out = repair_swaps(flipped, max_frames=6, report=report)
    assert report.swaps_fixed == 0
    np.testing.assert_array_equal(out.data, flipped.data)


def test_flips_are_repaired_through_missing_frames_and_per_person():
    truth = walker(seed=5)
    data = truth.data.copy()
    data[40:43] = 0  # the person vanishes for three frames
    truth = KeypointSequence(FULL, data, truth.canvas, truth.frame_numbers)
    both = np.concatenate([truth.data, walker(seed=6).data], axis=1)
    two = KeypointSequence(FULL, both, truth.canvas, truth.frame_numbers)
    flipped = two.data.copy()
    flipped[:, :1] = flip(truth, [39, 43], "arm").data  # the frames either side of the gap
    report = CleanReport()
    out = repair_swaps(KeypointSequence(FULL, flipped, two.canvas, two.frame_numbers), report=report)
    np.testing.assert_array_equal(out.data, two.data)
    assert report.swaps_fixed == 1  # one flip over sightings 39 and 43, across the gap


# --- One Euro smoothing ----------------------------------------------------------------------------

def body_of(xs, size=400.0):
    """A one-person sequence of two points at xs, ``size`` apart vertically (the person's size)."""
    frames = len(xs)
    data = np.zeros((frames, 1, len(BODY), 3), np.float32)
    data[:, 0, 1, 0] = xs
    data[:, 0, 1, 2] = 0.9
    data[:, 0, 0, 0] = xs
    data[:, 0, 0, 1] = size
    data[:, 0, 0, 2] = 0.9
    return KeypointSequence(BODY, data, (1920, 1080), np.arange(frames))


def test_jitter_is_removed_at_rest():
    rng = np.random.default_rng(0)
    noisy = body_of(500 + rng.normal(0, 2.0, 300))
    out = smooth_one_euro(noisy, fps=30)
    assert np.std(out.data[:, 0, 0, 0]) < np.std(noisy.data[:, 0, 0, 0]) / 3
    stronger = smooth_one_euro(noisy, fps=30, strength=2)
    assert np.std(stronger.data[:, 0, 0, 0]) < np.std(out.data[:, 0, 0, 0])
    np.testing.assert_array_equal(smooth_one_euro(noisy, strength=0).data, noisy.data)


def test_a_ramp_comes_out_without_lag():
    # 0.5 person sizes per second (200 px/s at 30 fps: 6.7 px a frame).
    xs = 300 + 200.0 * np.arange(90) / 30
    middle = slice(15, 75)
    zero_lag = smooth_one_euro(body_of(xs), fps=30)
    assert np.abs(zero_lag.data[middle, 0, 0, 0] - xs[middle]).max() < 0.5  # px
    causal = smooth_one_euro(body_of(xs), fps=30, zero_lag=False)
    lag_frames = (xs[middle] - causal.data[middle, 0, 0, 0]).mean() / (200 / 30)
    assert 0 < lag_frames < 1.5  # the adaptive cutoff keeps even the causal filter close


def test_a_step_is_followed_within_a_few_frames():
    xs = np.where(np.arange(60) < 30, 300.0, 500.0)
    causal = smooth_one_euro(body_of(xs), fps=30, zero_lag=False).data[:, 0, 0, 0]
    assert causal[33] > 300 + 0.9 * 200 and causal[29] == pytest.approx(300)
    out = smooth_one_euro(body_of(xs), fps=30).data[:, 0, 0, 0]
    err = np.abs(out - xs)
    assert err[:26].max() < 20 and err[34:].max() < 20  # within 10% of the step 4 frames away


def test_absent_points_stay_absent_and_restart_the_filter():
    xs = np.r_[np.full(20, 300.0), np.zeros(10), np.full(20, 900.0)]
    conf = np.r_[np.full(20, 0.9), np.zeros(10), np.full(20, 0.9)]
    seq = body_of(xs)
    seq.data[:, 0, 0, 2] = conf
    seq.clear_absent()
    for zero_lag in (True, False):
        out = smooth_one_euro(seq, fps=30, zero_lag=zero_lag).data[:, 0, 0]
        assert (out[20:30] == 0).all()
        np.testing.assert_allclose(out[30:, 0], 900, atol=1e-3)  # not dragged from 300
        np.testing.assert_allclose(out[:20, 0], 300, atol=1e-3)


def test_smoothing_is_in_person_sizes_so_resolution_does_not_matter():
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1.0, 200)
    small = smooth_one_euro(body_of(400 + 2 * noise + np.arange(200), size=200.0), fps=30)
    large = smooth_one_euro(body_of(800 + 4 * noise + 2 * np.arange(200), size=400.0), fps=30)
    np.testing.assert_allclose(2 * small.data[:, 0, 0, 0], large.data[:, 0, 0, 0], rtol=1e-5)
    assert person_sizes(small)[0] == pytest.approx(200, rel=0.01)


# --- clean ---------------------------------------------------------------------------------------

def test_clean_runs_every_step_and_reports_what_it_did():
    truth = walker(frames=60, seed=7)
    data = flip(truth, [10], "leg").data.copy()
    data[5, 0, FULL.index("l_knee"), 2] = 0.05   # one junk point
    data[30:33, 0, FULL.index("r_wrist")] = 0    # a 3-frame gap
    data[45:47] = 0                              # nobody for two frames
    seq = KeypointSequence(FULL, data, truth.canvas, truth.frame_numbers)
    out, report = clean(seq)
    assert report.points_gated == 1
    assert report.swaps_fixed == 1 and report.swapped_frames == 1
    assert report.frames_with_nobody == 2
    # Gaps: the junk knee (1 frame), the wrist (3 frames) and every present point over frames 45-46.
    points = int(truth.present[0, 0].sum())
    assert report.gaps_filled == 2 + points
    assert report.points_filled == 1 + 3 + 2 * points
    assert out.present.sum() == truth.present.sum()
    assert np.abs(out.data[..., :2] - truth.data[..., :2]).max() < 0.1 * person_sizes(truth)[0]
    np.testing.assert_array_equal(seq.data, data)  # the input is untouched


def test_clean_with_everything_off_changes_nothing():
    seq = walker(frames=30, seed=8)
    off = CleanOptions(min_confidence=0, max_gap=0, repair_swaps=False, smooth=False)
    out, report = clean(seq, off)
    np.testing.assert_array_equal(out.data, seq.data)
    assert out is not seq and report == CleanReport()
