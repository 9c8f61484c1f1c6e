"""Person tracking: synthetic crossings, dropouts and splits, and the real two-person clip."""

import numpy as np
import pytest

from posebridge.pose import layouts
from posebridge.pose.formats.readers import load_keypoints
from posebridge.pose.keypoints import KeypointSequence
from posebridge.retarget.cleaning import CleanOptions, clean
from posebridge.retarget.tracking import identify_people, track_person

from limb_metrics import direction_errors, mean_acceleration

BODY = layouts.OPENPOSE_BODY

# A standing person seen from the front, 1 unit tall, feet at 0, y up (the person's left is on
# the image's right).
_TEMPLATE = {
    "nose": (0.0, 0.93), "neck": (0.0, 0.82),
    "r_shoulder": (-0.13, 0.82), "r_elbow": (-0.16, 0.64), "r_wrist": (-0.17, 0.47),
    "r_hip": (-0.07, 0.5), "r_knee": (-0.08, 0.27), "r_ankle": (-0.08, 0.04),
    "r_eye": (-0.025, 0.95), "r_ear": (-0.05, 0.93),
}
_TEMPLATE.update({"l_" + k[2:]: (-x, y) for k, (x, y) in list(_TEMPLATE.items()) if k.startswith("r_")})


def person(x, feet_y, height, rng=None, jitter=0.0, layout=BODY):
    """(points, 3) of a standing person at image x with feet at image y, ``height`` px tall."""
    out = np.zeros((len(layout), 3), np.float32)
    for name, (u, v) in _TEMPLATE.items():
        i = layout.find(name)
        if i is not None:
            out[i] = (x + u * height, feet_y - v * height, 0.9)
    if rng is not None and jitter:
        out[:, :2] += rng.normal(0, jitter * height, (len(layout), 2))
    return out


def shuffled(people_per_frame, seed=0, layout=BODY, canvas=(1280, 720)):
    """A sequence from per-frame lists of (label, points); people listed in a random order per
    frame. Returns it and (frames, slots) the label in each slot (None for empty slots)."""
    rng = np.random.default_rng(seed)
    frames = len(people_per_frame)
    slots = max(len(p) for p in people_per_frame)
    data = np.zeros((frames, slots, len(layout), 3), np.float32)
    labels = np.full((frames, slots), None, object)
    for f, entries in enumerate(people_per_frame):
        for s, k in enumerate(rng.permutation(len(entries))):
            labels[f, s], data[f, s] = entries[k]
    return KeypointSequence(layout, data, canvas, np.arange(frames)), labels


def followed(result, labels):
    """The label of the detection taken in each frame (None where missing)."""
    return [labels[f, s] if s >= 0 else None for f, s in enumerate(result.source)]


def crossing(frames=60, hidden=(), seed=1):
    """A walks right, B walks left, crossing mid-clip; A is missing in the ``hidden`` frames."""
    rng = np.random.default_rng(seed)
    clip = []
    for f in range(frames):
        entries = []
        if f not in hidden:
            entries.append(("A", person(200 + 14 * f, 650, 400, rng, 0.004)))
        entries.append(("B", person(1040 - 14 * f, 640, 370, rng, 0.004)))
        clip.append(entries)
    return shuffled(clip, seed)


def test_follows_through_a_crossing():
    seq, labels = crossing()
    for choose in ("auto", (200, 500)):  # auto: A is the taller one
        result = track_person(seq, choose)
        assert followed(result, labels) == ["A"] * 60
        assert result.missing_frames.size == 0
    at_b = track_person(seq, (1040, 500))
    assert followed(at_b, labels) == ["B"] * 60
    assert at_b.sequence.people_count == 1
    np.testing.assert_array_equal(at_b.sequence.data[:, 0], seq.data[np.arange(60), at_b.source])


def test_coasts_through_a_crossing_where_the_person_is_hidden():
    hidden = set(range(27, 34))  # A behind B while they cross
    seq, labels = crossing(hidden=hidden)
    result = track_person(seq, (200, 500))
    assert followed(result, labels) == [None if f in hidden else "A" for f in range(60)]
    assert list(result.missing_frames) == sorted(hidden)
    assert not result.sequence.present[sorted(hidden)].any()


def test_does_not_take_a_neighbour_while_the_person_is_missing():
    rng = np.random.default_rng(3)
    clip = []
    for f in range(40):
        entries = [("B", person(560, 650, 400, rng, 0.004))]
        if not 10 <= f < 16:
            entries.append(("A", person(400, 650, 400, rng, 0.004)))
        clip.append(entries)
    seq, labels = shuffled(clip)
    result = track_person(seq, (400, 500))
    assert followed(result, labels) == ["A"] * 10 + [None] * 6 + ["A"] * 24


def test_reacquires_after_a_long_absence():
    rng = np.random.default_rng(4)
    clip = []
    for f in range(80):
        entries = [("B", person(1100, 650, 300, rng, 0.004))]
        if not 20 <= f < 50:  # 30 frames away: longer than the coast
            entries.append(("A", person(300 + 2 * f, 650, 400, rng, 0.004)))
        clip.append(entries)
    seq, labels = shuffled(clip)
    result = track_person(seq, 0 if labels[0, 0] == "A" else 1)
    assert followed(result, labels) == ["A"] * 20 + [None] * 30 + ["A"] * 30
    ids = identify_people(seq)
    assert len(set(ids[ids >= 0].tolist())) == 2  # two people, not three


def test_a_person_split_in_two_detections_is_merged():
    rng = np.random.default_rng(5)
    clip = []
    upper = np.array([n in ("nose", "neck", "r_eye", "l_eye", "r_ear", "l_ear") or "shoulder" in n
                      or "elbow" in n or "wrist" in n for n in BODY.points])
    for f in range(30):
        a = person(400 + 3 * f, 650, 400, rng, 0.004)
        entries = [("B", person(900, 650, 400, rng, 0.004))]
        if f == 12:  # the detector splits A: upper body and legs
            entries += [("A-top", np.where(upper[:, None], a, 0)), ("A-legs", np.where(upper[:, None], 0, a))]
        else:
            entries.append(("A", a))
        clip.append(entries)
    seq, labels = shuffled(clip)
    result = track_person(seq, (400, 500))
    assert list(result.merged_frames) == [12]
    assert {labels[12, s] for s in np.flatnonzero(result.taken[12])} == {"A-top", "A-legs"}
    assert result.sequence.present[12, 0].all()  # the whole body, from both halves
    assert all(lab.startswith("A") for lab in followed(result, labels))


def test_choices_by_index_and_pixel_and_their_errors():
    seq, labels = crossing()
    first_a = int(np.flatnonzero(labels[0] == "A")[0])
    assert followed(track_person(seq, first_a), labels) == ["A"] * 60
    assert followed(track_person(seq, 1 - first_a), labels) == ["B"] * 60
    with pytest.raises(ValueError, match="no person 5"):
        track_person(seq, 5)
    with pytest.raises(ValueError, match="unknown person choice"):
        track_person(seq, "biggest")
    empty = KeypointSequence.empty(BODY, np.arange(5), 2, (640, 480))
    with pytest.raises(ValueError, match="no person found"):
        track_person(empty)
    # at_frame: pick in a later frame (B is at x = 1040 - 14 * 40 = 480 in frame 40).
    assert followed(track_person(seq, (480, 500), at_frame=40), labels) == ["B"] * 60


def test_auto_picks_the_most_prominent_person():
    rng = np.random.default_rng(6)
    # Small but always there, against large and there for most of the clip.
    clip = [
        [("small", person(100, 400, 150, rng, 0.004))] + ([("big", person(700, 700, 500, rng, 0.004))] if f >= 5 else [])
        for f in range(30)
    ]
    seq, labels = shuffled(clip)
    result = track_person(seq)
    assert followed(result, labels) == [None] * 5 + ["big"] * 25


# --- the real clip: pose2sim cam01, OpenPose BODY_25B, two people (three in frame 37) -----------

_FPS = 60.0


def load_pose2sim(folder):
    """The clip read by the project's reader, in BODY_25B order, people in file order."""
    imported = load_keypoints(folder / "pose2sim" / "cam01_json")
    assert imported.source_layout == "body25b"
    return imported.sequence.to_layout(layouts.BODY25B)


def shuffle_people(seq, seed=0):
    """The same clip with the people listed in a random order in every frame; and the file
    index of each slot."""
    rng = np.random.default_rng(seed)
    order = np.stack([rng.permutation(seq.people_count) for _ in range(seq.frame_count)])
    data = np.take_along_axis(seq.data, order[:, :, None, None], axis=1)
    return KeypointSequence(seq.layout, data, seq.canvas, seq.frame_numbers), order


def test_real_clip_follows_the_performer_in_every_frame(shared_data):
    clip = load_pose2sim(shared_data)
    # In the files the performer is people[0], except frame 37 where OpenPose split them in two
    # (people[0] upper body, people[1] legs) and the bystander is people[2].
    performer = np.zeros(clip.people_count, bool)
    performer[0] = True
    for seed in range(5):
        seq, order = shuffle_people(clip, seed)
        for choose in ("auto", (500, 800)):
            result = track_person(seq, choose, fps=_FPS)
            taken = order[np.arange(100), result.source]
            assert result.missing_frames.size == 0
            assert (taken[np.arange(100) != 37] == 0).all()
            assert set(order[37, result.taken[37]]) == {0, 1}  # both halves of the split
            assert result.sequence.present[37, 0].sum() == 25
        bystander = track_person(seq, (60, 500), fps=_FPS)
        taken = order[np.arange(100), bystander.source]
        assert (taken[np.arange(100) != 37] == 1).all() and taken[37] == 2


def test_real_clip_cleaning_halves_jitter_and_keeps_limb_directions(shared_data):
    seq, _ = shuffle_people(load_pose2sim(shared_data))
    raw = track_person(seq, fps=_FPS).sequence
    cleaned, report = clean(raw, CleanOptions(fps=_FPS))
    mask = raw.present & cleaned.present
    ratio = mean_acceleration(cleaned, mask=mask) / mean_acceleration(raw, mask=mask)
    error = float(direction_errors(cleaned, raw).mean())
    print(f"acceleration ratio {ratio:.3f}, limb direction error {error:.2f} deg, {report}")
    assert ratio <= 0.5
    assert error <= 3.0
    assert report.frames_with_nobody == 0 and report.swaps_fixed == 0
    assert report.points_gated > 0 and report.gaps_filled > 0
    # Gating drops the low-confidence points; filling brings short gaps back: nothing else lost.
    assert cleaned.present.sum() >= raw.present.sum() - report.points_gated
