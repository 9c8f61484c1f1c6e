"""The detector layouts video import reads (BODY_25, BODY_25B, COCO-17, DWPose-133) and IMPORT."""
import numpy as np
import pytest

from posebridge.pose import layouts
from posebridge.pose.layouts import (
    BODY25, BODY25B, COCO17, COCO17_FEET, COCO18, DWPOSE133, IMPORT, OPENPOSE_FULL,
)

NEW = (COCO17, COCO17_FEET, BODY25, BODY25B, DWPOSE133, IMPORT)
FEET = ("l_big_toe", "l_small_toe", "l_heel", "r_big_toe", "r_small_toe", "r_heel")


@pytest.mark.parametrize("layout", NEW, ids=lambda layout: layout.name)
def test_layouts_are_registered_with_unique_names_and_parts_covering_every_point(layout):
    assert layouts.by_name(layout.name) is layout
    assert len(set(layout.points)) == len(layout)
    covered = [i for part in layout.parts for i in range(part.start, part.stop)]
    assert covered == list(range(len(layout)))
    assert all(0 <= a < len(layout) and 0 <= b < len(layout) for a, b in layout.edges)


def test_body25_is_openposes_order():
    # OpenPose's documented BODY_25 output order.
    expected = (
        "nose neck r_shoulder r_elbow r_wrist l_shoulder l_elbow l_wrist mid_hip r_hip r_knee "
        "r_ankle l_hip l_knee l_ankle r_eye l_eye r_ear l_ear".split() + list(FEET)
    )
    assert list(BODY25.points) == expected
    # BODY_25 is COCO-18 with mid_hip slipped in at 8 and feet appended.
    assert [p for p in BODY25.points[:19] if p != "mid_hip"] == list(COCO18.points)


def test_body25b_is_coco17_then_neck_head_top_and_feet():
    coco = ("nose l_eye r_eye l_ear r_ear l_shoulder r_shoulder l_elbow r_elbow l_wrist r_wrist "
            "l_hip r_hip l_knee r_knee l_ankle r_ankle").split()
    assert list(COCO17.points) == coco
    assert list(BODY25B.points) == coco + ["neck", "head_top"] + list(FEET)


def test_dwpose133_follows_coco_wholebody():
    parts = {part.name: (part.start, part.stop) for part in DWPOSE133.parts}
    assert parts == {"body": (0, 17), "feet": (17, 23), "face": (23, 91),
                     "hand_left": (91, 112), "hand_right": (112, 133)}
    assert DWPOSE133.points[17:23] == FEET
    assert DWPOSE133.points[23] == "face_0" and DWPOSE133.points[90] == "face_67"
    assert DWPOSE133.points[91] == "l_hand_wrist" and DWPOSE133.points[132] == "r_hand_pinky_4"
    assert COCO17_FEET.points == COCO17.points + FEET


def test_import_layout_extends_openpose_full_at_the_same_indices():
    assert IMPORT.points[:len(OPENPOSE_FULL)] == OPENPOSE_FULL.points
    assert IMPORT.parts[:-1] == OPENPOSE_FULL.parts
    extra = IMPORT.part("body_extra")
    assert IMPORT.points[extra.start:extra.stop] == ("mid_hip", "head_top") + FEET
    # Every point of every detector layout has a home in IMPORT.
    for layout in (COCO18, COCO17, COCO17_FEET, BODY25, BODY25B):
        assert all(IMPORT.find(p) is not None for p in layout.points), layout.name
    assert all(IMPORT.find(p) is not None for p in DWPOSE133.points)


def test_existing_layouts_are_unchanged():
    assert len(OPENPOSE_FULL) == 130 and layouts.OPENPOSE_BODY.points == COCO18.points
    assert layouts.by_name("openpose_full") is OPENPOSE_FULL


@pytest.mark.parametrize("count, name", [(17, "coco17"), (18, "coco18"), (23, "coco17_feet"), (133, "dwpose133")])
def test_body_layout_from_point_count(count, name):
    layout, why = layouts.pick_body_layout(count)
    assert layout.name == name and name in why


def test_unknown_point_count_and_mismatched_choice_are_errors():
    with pytest.raises(ValueError, match="19 points"):
        layouts.pick_body_layout(19)
    with pytest.raises(ValueError, match="'body25' has 25 points, the bodies have 18"):
        layouts.pick_body_layout(18, choice="body25")


def _person(layout, seed=0):
    """One plausible standing person (pixels, y down) in ``layout``'s order, all present."""
    at = {
        "nose": (100, 40), "l_eye": (106, 34), "r_eye": (94, 34), "l_ear": (114, 38), "r_ear": (86, 38),
        "head_top": (100, 10), "neck": (100, 70),
        "l_shoulder": (130, 72), "r_shoulder": (70, 70), "l_elbow": (138, 120), "r_elbow": (62, 118),
        "l_wrist": (140, 165), "r_wrist": (60, 163), "l_hip": (118, 170), "r_hip": (82, 172),
        "mid_hip": (100, 171), "l_knee": (120, 240), "r_knee": (80, 242), "l_ankle": (121, 310),
        "r_ankle": (79, 312), "l_big_toe": (128, 322), "l_small_toe": (132, 320), "l_heel": (118, 316),
        "r_big_toe": (72, 324), "r_small_toe": (68, 322), "r_heel": (82, 318),
    }
    rng = np.random.default_rng(seed)
    points = np.array([at[p] + (0.9,) for p in layout.points], np.float64)
    points[:, :2] += rng.normal(0, 2, (len(layout), 2))  # detector jitter
    return points


def test_25_points_are_told_apart_from_the_data():
    for truth in (BODY25, BODY25B):
        samples = np.stack([_person(truth, seed) for seed in range(10)])
        layout, why = layouts.pick_body_layout(25, samples)
        assert layout is truth, why
        scores = layouts.body25_scores(samples)
        other = "body25b" if truth is BODY25 else "body25"
        assert scores[truth.name] < 0.05 < scores[other]


def test_25_points_default_and_explicit_choice():
    assert layouts.pick_body_layout(25)[0] is layouts.BODY25_DEFAULT is BODY25
    nothing = np.zeros((3, 25, 3))
    layout, why = layouts.pick_body_layout(25, nothing)
    assert layout is BODY25 and "undecided" in why
    samples = np.stack([_person(BODY25, 1)])
    assert layouts.pick_body_layout(25, samples, choice="body25b")[0] is BODY25B
    assert layouts.pick_body_layout(25, samples, choice=BODY25B)[0] is BODY25B


def test_25_point_rule_on_the_real_body25b_clip(shared_data):
    import json
    folder = shared_data / "pose2sim" / "cam01_json"
    bodies = [np.reshape(person["pose_keypoints_2d"], (25, 3))
              for path in sorted(folder.glob("*.json"))
              for person in json.loads(path.read_text())["people"]]
    layout, why = layouts.pick_body_layout(25, np.stack(bodies))
    assert layout is BODY25B, why
