"""Pose adherence (backend/adherence*.py): hand-computed synthetic cases for the comparison, then
real pictures: frames of the pose2sim video against their own OpenPose keypoints (high score),
against other frames' keypoints and mirrored keypoints (low score, swap flagged)."""
import json

import numpy as np
import pytest

from posebridge.backend.adherence import BODY_PCK, compare
from posebridge.pose.keypoints import KeypointSequence
from posebridge.pose.layouts import IMPORT

CANVAS = (800, 600)
# A standing figure: shoulders at y 100, hips at y 300 (torso 200 px, so the body PCK distance is
# 20 px), left and right 100 px apart (the person's left on the image's right: facing us).
FIGURE = {
    "nose": (200, 60), "neck": (200, 100), "r_eye": (190, 50), "l_eye": (210, 50),
    "r_ear": (180, 55), "l_ear": (220, 55),
    "r_shoulder": (150, 100), "r_elbow": (140, 180), "r_wrist": (130, 260),
    "l_shoulder": (250, 100), "l_elbow": (260, 180), "l_wrist": (270, 260),
    "r_hip": (170, 300), "r_knee": (165, 400), "r_ankle": (160, 500),
    "l_hip": (230, 300), "l_knee": (235, 400), "l_ankle": (240, 500),
}
ARMS_AND_LEGS = [s + j for s in ("l_", "r_") for j in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")]


def person(dx=0.0, dy=0.0, points=FIGURE, hand=None):
    out = np.zeros((len(IMPORT), 3), np.float32)
    for name, (x, y) in points.items():
        out[IMPORT.index(name)] = (x + dx, y + dy, 0.9)
    if hand is not None:  # the left hand: a 50 px square grid of 21 points at the left wrist
        start = IMPORT.part("hand_left").start
        for i in range(21):
            out[start + i] = (hand[0] + (i % 5) * 12.5 + dx, hand[1] + (i // 5) * 10 + dy, 0.9)
    return out


def sequence(frames, canvas=CANVAS, numbers=None):
    """frames: list of lists of people (IMPORT points, 3); padded with absent people."""
    most = max(1, max(len(f) for f in frames))
    data = np.zeros((len(frames), most, len(IMPORT), 3), np.float32)
    for i, people in enumerate(frames):
        for j, p in enumerate(people):
            data[i, j] = p
    numbers = list(range(1, len(frames) + 1)) if numbers is None else numbers
    return KeypointSequence(IMPORT, data, canvas, numbers)


def test_identical_poses_score_one():
    seq = sequence([[person()], [person(5)], [person(10)]])
    doc = compare(seq, seq, threshold=0.5, extractor="test")
    assert doc["format"] == "posebridge-adherence" and doc["version"] == 1
    assert doc["score"] == 1.0 and doc["extractor"] == "test" and doc["threshold"] == 0.5
    for entry in doc["frames"]:
        assert entry["body_pck"] == 1.0 and entry["body_error_px"] == 0.0
        assert entry["swapped"] == [] and not entry["missing_person"] and not entry["flagged"]
        assert entry["hands_pck"] is None and entry["hands_error_px"] is None  # no hands expected
    assert doc["flagged_frames"] == [] and len(doc["worst_frames"]) == 3
    assert doc["jitter"] == {"detected_px": 0.0, "expected_px": 0.0, "extra_px": 0.0}
    assert "torso" in doc["pck_reference"]
    json.dumps(doc)  # plain JSON types only


def test_offsets_of_known_size():
    expected = sequence([[person()], [person()], [person()]])
    moved = {name: (x + 30 if name in ARMS_AND_LEGS[:6] else x, y) for name, (x, y) in FIGURE.items()}
    detected = sequence([[person(dx=10)], [person(dx=30)], [person(points=moved)]])
    doc = compare(expected, detected, threshold=0.5)
    near, far, some = doc["frames"]
    assert BODY_PCK * 200 == 20  # the figure's torso: 10 px is inside, 30 px outside
    assert (near["body_pck"], near["body_error_px"]) == (1.0, 10.0)
    assert (far["body_pck"], far["body_error_px"]) == (0.0, 30.0)
    assert far["flagged"] and not near["flagged"]
    # 6 of the 17 scored joints (no neck) 30 px off: PCK 11/17, mean error 6 * 30 / 17 px.
    assert some["body_pck"] == pytest.approx(11 / 17, abs=1e-4)
    assert some["body_error_px"] == pytest.approx(180 / 17, abs=0.01)
    assert not some["flagged"]
    assert doc["score"] == pytest.approx((1 + 0 + 11 / 17) / 3, abs=1e-4)
    assert doc["worst_frames"][0] == 2 and doc["flagged_frames"] == [2]


def test_missing_joint_counts_as_wrong_but_not_in_the_error():
    expected = sequence([[person()]])
    found = person(dx=4)
    found[IMPORT.index("l_wrist")] = 0
    entry = compare(expected, sequence([[found]]))["frames"][0]
    assert entry["body_pck"] == pytest.approx(16 / 17, abs=1e-4)
    assert entry["body_error_px"] == 4.0



def test_a_frame_without_torso_uses_the_shots_torso():
    no_hips = {name: xy for name, xy in FIGURE.items() if "hip" not in name}
    # With the hips gone, a 15 px offset is within the shot's 20 px (the torso of the other frames).
    expected = sequence([[person()], [person(points=no_hips)], [person()]])
    detected = sequence([[person()], [person(dx=15, points=no_hips)], [person()]])
    assert compare(expected, detected)["frames"][1]["body_pck"] == 1.0
    # Alone, the torso comes from the body's box (0.3 x 450 px = 135 px: 13.5 px, 15 is out).
    alone = compare(sequence([[person(points=no_hips)]]), sequence([[person(dx=15, points=no_hips)]]))
    assert alone["frames"][0]["body_pck"] == 0.0

def test_hands_pck_against_the_hand_size():
    # The hand's box is 50 x 40: its size 50, so a hand point is right within 0.2 * 50 = 10 px.
    expected = sequence([[person(hand=(270, 270))]] * 2)
    detected = sequence([[person(hand=(270, 270))], [person(hand=(285, 270))]])
    same, off = compare(expected, detected)["frames"]
    assert (same["hands_pck"], same["hands_error_px"]) == (1.0, 0.0)
    assert (off["hands_pck"], off["hands_error_px"]) == (0.0, 15.0)
    assert off["body_pck"] == 1.0


def test_left_right_swap_is_flagged():
    swapped_labels = {}
    for name, xy in FIGURE.items():
        if name in ARMS_AND_LEGS:
            name = ("r_" if name.startswith("l_") else "l_") + name[2:]
        swapped_labels[name] = xy
    doc = compare(sequence([[person()]]), sequence([[person(points=swapped_labels)]]))
    entry = doc["frames"][0]
    assert entry["swapped"] == ["arms", "legs"]
    # The 12 arm and leg joints land on the other side (60 px or more away); the head is right.
    assert entry["body_pck"] == pytest.approx(5 / 17, abs=1e-4)
    assert entry["flagged"] and doc["flagged_frames"] == [1]


def test_arms_only_swap_even_when_otherwise_good():
    points = dict(FIGURE)
    points["l_wrist"], points["r_wrist"] = FIGURE["r_wrist"], FIGURE["l_wrist"]
    points["l_elbow"], points["r_elbow"] = FIGURE["r_elbow"], FIGURE["l_elbow"]
    entry = compare(sequence([[person()]]), sequence([[person(points=points)]]), threshold=0.5)["frames"][0]
    assert entry["swapped"] == ["arms"]
    assert entry["body_pck"] == pytest.approx(13 / 17, abs=1e-4)
    assert entry["flagged"]  # a swap is flagged above the PCK threshold too


def test_small_noise_is_no_swap():
    points = {name: (x + (3 if i % 2 else -3), y) for i, (name, (x, y)) in enumerate(FIGURE.items())}
    entry = compare(sequence([[person()]]), sequence([[person(points=points)]]))["frames"][0]
    assert entry["swapped"] == [] and entry["body_pck"] == 1.0


def test_missing_detection():
    doc = compare(sequence([[person()], [person()]]), sequence([[person()], []]))
    good, missing = doc["frames"]
    assert not good["missing_person"]
    assert missing["missing_person"] and missing["body_pck"] == 0.0
    assert missing["body_error_px"] is None and missing["flagged"]
    assert doc["worst_frames"][0] == 2 and doc["score"] == 0.5


def test_somebody_else_far_away_is_not_the_person():
    doc = compare(sequence([[person()]]), sequence([[person(dx=500)]]))
    assert doc["frames"][0]["missing_person"] and doc["frames"][0]["body_pck"] == 0.0


def test_people_matched_to_the_nearest_detection():
    a, b = person(), person(dx=400)
    # Detected in the other order, b 10 px off, plus a stranger far below.
    detected = sequence([[person(dx=410), person(), person(dx=300, dy=-1000)]], canvas=(1000, 800))
    entry = compare(sequence([[a, b]], canvas=(1000, 800)), detected)["frames"][0]
    assert entry["body_pck"] == 1.0 and entry["body_error_px"] == 5.0  # (0 + 10) / 2 over 34 joints
    assert entry["people_expected"] == 2 and entry["people_detected"] == 3
    assert not entry["missing_person"]
    # One of two people found: half of the expected joints are right.
    only_b = sequence([[person(dx=400)]], canvas=(1000, 800))
    entry = compare(sequence([[a, b]], canvas=(1000, 800)), only_b)["frames"][0]
    assert entry["missing_person"] and entry["body_pck"] == 0.5 and entry["flagged"]


def test_frames_without_expected_person_are_skipped():
    expected = sequence([[person()], [], [person()]], numbers=[10, 11, 12])
    detected = sequence([[person()], [person()]], numbers=[10, 11])
    doc = compare(expected, detected)
    assert [e["frame"] for e in doc["frames"]] == [10]
    assert doc["skipped_frames"] == [
        {"frame": 11, "reason": "no expected person"}, {"frame": 12, "reason": "no generated frame"},
    ]
    assert doc["score"] == 1.0 and doc["notes"]


def test_detected_on_another_canvas_is_rescaled():
    detected = sequence([[person() * np.array([2, 2, 1], np.float32)]], canvas=(1600, 1200))
    entry = compare(sequence([[person()]]), detected)["frames"][0]
    assert entry["body_pck"] == 1.0 and entry["body_error_px"] == 0.0


def test_jitter_extra_is_flicker():
    # The expected figure walks 5 px a frame (second difference 0); the detected one wobbles
    # +-2 px around it: second differences of 2 + 4 + 2 = 8 px.
    expected = sequence([[person(dx=5 * t)] for t in range(6)])
    detected = sequence([[person(dx=5 * t + (2 if t % 2 else -2))] for t in range(6)])
    assert compare(expected, detected)["jitter"] == {"detected_px": 8.0, "expected_px": 0.0, "extra_px": 8.0}
    # A detection steadier than the rig: no negative extra.
    assert compare(detected, expected)["jitter"]["extra_px"] == 0.0


def test_jitter_only_over_neighbouring_frames():
    # Frames 0-2 and 10-12 (frames 3-9 regenerated elsewhere, say): the figure stands still in
    # each run and jumps 90 px between them. Across the gap that is motion, not jitter.
    numbers = [0, 1, 2, 10, 11, 12]
    expected = sequence([[person(dx=0 if n < 10 else 90)] for n in numbers], numbers=numbers)
    detected = sequence([[person(dx=(0 if n < 10 else 90) + (1 if n % 2 else 0))] for n in numbers],
                        numbers=numbers)
    # Inside each run the detection wobbles by 1 px: second differences of 2 px; none across.
    assert compare(expected, detected)["jitter"] == {"detected_px": 2.0, "expected_px": 0.0, "extra_px": 2.0}



def test_expected_keypoints_scaled_from_the_pose_maps_canvas(tmp_path):
    from posebridge.backend.adherence_run import read_expected
    from posebridge.draw.png import write_png
    from posebridge.pose.formats.openpose_json import write_frame

    keypoints = tmp_path / "poses" / "keypoints"
    keypoints.mkdir(parents=True)
    write_frame(sequence([[person()]], numbers=[7]), 0, keypoints, prefix="pose")
    path = keypoints / "pose_0007_keypoints.json"
    # No pose map beside: the keypoints are in pixels of the generated frame as they are.
    assert read_expected(path, CANVAS)[0, IMPORT.index("l_wrist")].tolist() == pytest.approx([270, 260, 0.9])
    # The pose map is 800x600 and the generated frame 1600x1200: twice as far.
    write_png(tmp_path / "poses" / "pose_0007.png", np.zeros((600, 800, 3), np.uint8))
    assert read_expected(path, (1600, 1200))[0, IMPORT.index("l_wrist")].tolist() == pytest.approx([540, 520, 0.9])
    # A frame with nobody in it.
    (keypoints / "pose_0008_keypoints.json").write_text('{"version": 1.3, "people": []}')
    assert read_expected(keypoints / "pose_0008_keypoints.json", CANVAS).shape == (0, len(IMPORT), 3)


def test_unusable_inputs_are_named(tmp_path):
    from posebridge.backend.adherence_run import AdherenceError, check_adherence

    with pytest.raises(AdherenceError, match="no such folder"):
        check_adherence(tmp_path / "nothing", tmp_path)
    (tmp_path / "generated").mkdir()
    (tmp_path / "generated" / "frame_0001.png").write_bytes(b"")
    (tmp_path / "keypoints").mkdir()
    with pytest.raises(AdherenceError, match="no frame has both"):
        check_adherence(tmp_path / "generated", tmp_path / "keypoints")


# --- Real pictures: the pose2sim video's frames as the "generated" frames. -------------------
VIDEO, OPENPOSE = "pose2sim/cam01.mp4", "pose2sim/cam01_json"
FRAMES = list(range(40, 48))
SIZE = (1080, 1920)
_SHOT = {}


def exchanged(data):
    """Left and right exchanged (every l_/r_ point): what a detector reports for a person seen
    turned the other way, front for back."""
    out = data.copy()
    for i, name in enumerate(IMPORT.points):
        if name.startswith("l_"):
            j = IMPORT.index("r_" + name[2:])
            out[..., i, :], out[..., j, :] = data[..., j, :], data[..., i, :]
    return out


@pytest.fixture
def shot(shared_data, tmp_path_factory):
    """(folder of frame_NNNN.png, the performer's OpenPose keypoints of the whole clip). The
    performer is people[0] in these files (../shared/data/README.md); the bystander is left out."""
    if not _SHOT:
        from posebridge.backend.extract.video import read_frames
        from posebridge.draw.png import write_png
        from posebridge.pose.formats.readers import load_keypoints

        folder = tmp_path_factory.mktemp("generated")
        for frame in read_frames(shared_data / VIDEO, start=FRAMES[0], end=FRAMES[-1]):
            write_png(folder / f"frame_{frame.index:04d}.png", frame.rgb)
        seq = load_keypoints(shared_data / OPENPOSE, canvas=SIZE).sequence
        _SHOT["shot"] = (folder, seq.data[:, :1].copy())
    return _SHOT["shot"]


def write_keypoints(folder, data):
    """pose_NNNN_keypoints.json for FRAMES (COCO-18 OpenPose, as the pose-map job writes them)."""
    from posebridge.pose.formats.openpose_json import write_frame

    folder.mkdir(parents=True, exist_ok=True)
    seq = KeypointSequence(IMPORT, data, SIZE, FRAMES)
    for index in range(len(FRAMES)):
        write_frame(seq, index, folder, prefix="pose", parts=("body",))
    return folder


def check(shot, tmp_path, data):
    pytest.importorskip("mediapipe")
    from posebridge.backend.adherence_run import check_adherence

    generated, _ = shot
    progress = []
    out = tmp_path / "report"
    doc = check_adherence(generated, write_keypoints(tmp_path / "keypoints", data), out_dir=out,
                          extractor="mediapipe", on_progress=lambda done, total: progress.append((done, total)))
    assert progress[-1] == (len(FRAMES), len(FRAMES))
    assert json.loads((out / "adherence.json").read_text()) == doc
    assert [e["frame"] for e in doc["frames"]] == FRAMES
    return doc, out


def assert_report_picture(path):
    from PIL import Image

    from posebridge.draw.png import png_size

    width, height = png_size(path)  # a PNG header
    assert width == 1600 and 600 <= height <= 1200
    with Image.open(path) as image:
        image.load()
        assert image.mode == "RGB"
        assert len(np.unique(np.asarray(image)[::4, ::4].reshape(-1, 3), axis=0)) > 50  # not blank


def test_report_picture_on_real_frames(shot, tmp_path):
    """The picture from real frames and keypoints (no detector): two frames with other frames'
    keypoints, one with left and right exchanged."""
    from posebridge.backend.adherence_report import write_report
    from posebridge.draw.png import read_png

    generated, performer = shot
    truth = performer[FRAMES]
    found = truth.copy()
    found[3:5] = performer[[f + 40 for f in FRAMES[3:5]]]
    found[6] = exchanged(truth[6])
    doc = compare(KeypointSequence(IMPORT, truth, SIZE, FRAMES), KeypointSequence(IMPORT, found, SIZE, FRAMES))
    assert doc["flagged_frames"] == [43, 44, 46] and sorted(doc["worst_frames"][:3]) == [43, 44, 46]
    assert doc["frames"][6]["swapped"] == ["arms", "legs"]
    frames = {n: read_png(generated / f"frame_{n:04d}.png") for n in doc["worst_frames"]}
    path = write_report(tmp_path / "adherence.png", doc, frames,
                        {n: truth[FRAMES.index(n)] for n in frames},
                        {n: found[FRAMES.index(n)] for n in frames})
    assert_report_picture(path)


def test_real_frames_against_their_own_keypoints(shot, tmp_path):
    _, performer = shot
    doc, out = check(shot, tmp_path, performer[FRAMES])
    # MediaPipe against OpenPose (another detector, a blurred face): about 0.77 on these frames.
    assert doc["score"] >= 0.65, doc
    assert len(doc["flagged_frames"]) <= 1
    assert doc["extractor"] == "mediapipe"
    assert sum(bool(e["swapped"]) for e in doc["frames"]) <= 1
    assert not any(e["missing_person"] for e in doc["frames"])
    assert all(e["hands_pck"] is None for e in doc["frames"])  # these keypoints have no hands
    assert doc["jitter"]["detected_px"] is not None and doc["jitter"]["extra_px"] >= 0
    assert_report_picture(out / "adherence.png")


def test_real_frames_against_other_frames_keypoints(shot, tmp_path):
    _, performer = shot
    doc, _ = check(shot, tmp_path, performer[[f + 50 for f in FRAMES]])
    assert doc["score"] <= 0.25, doc  # about 0.07
    assert doc["flagged_frames"] == FRAMES


def test_real_frames_against_exchanged_keypoints(shot, tmp_path):
    _, performer = shot
    doc, _ = check(shot, tmp_path, exchanged(performer[FRAMES]))
    assert doc["score"] <= 0.25, doc  # about 0.06
    assert sum(e["swapped"] == ["arms", "legs"] for e in doc["frames"]) >= len(FRAMES) - 1
    assert doc["flagged_frames"] == FRAMES
