import json

import numpy as np
import pytest

from posebridge.draw.contact_sheet import contact_sheet
from posebridge.pose import layouts
from posebridge.pose.formats import comfyui, openpose_json
from posebridge.pose.keypoints import KeypointSequence

FULL = layouts.OPENPOSE_FULL


def random_sequence(frames=3, people=2, layout=FULL, seed=0, canvas=(640, 480)):
    rng = np.random.default_rng(seed)
    data = np.zeros((frames, people, len(layout), 3), np.float32)
    data[..., 0] = rng.uniform(0, canvas[0], data.shape[:3])
    data[..., 1] = rng.uniform(0, canvas[1], data.shape[:3])
    data[..., 2] = rng.uniform(0.5, 1.0, data.shape[:3])
    data[rng.random(data.shape[:3]) < 0.2] = 0  # some absent points
    return KeypointSequence(layout, data, canvas, np.arange(10, 10 + frames))


def test_layout_parts_cover_every_point_once():
    covered = [i for part in FULL.parts for i in range(part.start, part.stop)]
    assert covered == list(range(len(FULL)))
    assert len(set(FULL.points)) == len(FULL)
    assert FULL.part("hand_right").size == 21 and FULL.part("face").size == 70
    assert FULL.points[FULL.part("hand_left").start] == "l_hand_wrist"


def test_coco18_limbs_follow_openpose_order():
    body = layouts.COCO18
    first = body.edges[0]
    assert (body.points[first[0]], body.points[first[1]]) == ("neck", "r_shoulder")
    assert len(body.edges) == 19


def test_unknown_layout_is_named():
    with pytest.raises(KeyError, match="body_99"):
        layouts.by_name("body_99")


def test_sequence_rejects_wrong_shape():
    with pytest.raises(ValueError, match="frames, people, 130, 3"):
        KeypointSequence(FULL, np.zeros((2, 1, 18, 3)), (64, 64), [0, 1])
    with pytest.raises(ValueError, match="frame numbers"):
        KeypointSequence(FULL, np.zeros((2, 1, 130, 3)), (64, 64), [0])


def test_to_layout_moves_points_by_name_and_marks_missing_absent():
    seq = random_sequence(layout=layouts.OPENPOSE_BODY)
    full = seq.to_layout(FULL)
    np.testing.assert_array_equal(full.part("body"), seq.data)
    assert not full.present[:, :, FULL.part("face").start:].any()


def test_openpose_frame_json_layout_and_absent_zeros(tmp_path):
    seq = random_sequence()
    path = openpose_json.write_frame(seq, 1, tmp_path)
    assert path.name == "pose_0011_keypoints.json"
    document = json.loads(path.read_text())
    assert document["version"] == 1.3
    assert len(document["people"]) == 2
    person = document["people"][0]
    assert len(person["pose_keypoints_2d"]) == 18 * 3
    assert len(person["face_keypoints_2d"]) == 70 * 3
    assert len(person["hand_left_keypoints_2d"]) == 21 * 3
    body = np.array(person["pose_keypoints_2d"]).reshape(-1, 3)
    expected = seq.data[1, 0, :18]
    absent = expected[:, 2] == 0
    assert absent.any()
    np.testing.assert_array_equal(body[absent], 0)
    np.testing.assert_allclose(body[~absent, :2], expected[~absent, :2], atol=0.005)


def test_openpose_round_trip(tmp_path):
    seq = random_sequence()
    openpose_json.write_frame(seq, 0, tmp_path)
    people = openpose_json.read_frame(tmp_path / "pose_0010_keypoints.json")
    hand = people[1]["hand_right_keypoints_2d"]
    np.testing.assert_allclose(hand[:, :2], np.where(seq.part("hand_right")[0, 1, :, 2:] > 0,
                                                     seq.part("hand_right")[0, 1, :, :2], 0), atol=0.005)


def test_disabled_parts_are_empty_lists(tmp_path):
    seq = random_sequence(layout=layouts.OPENPOSE_BODY)
    document = openpose_json.frame_document(seq, 0)
    assert document["people"][0]["hand_left_keypoints_2d"] == []
    assert document["people"][0]["face_keypoints_2d"] == []


def test_person_with_no_points_is_left_out():
    seq = random_sequence()
    seq.data[0, 1] = 0
    assert len(openpose_json.frame_document(seq, 0)["people"]) == 1


def test_bad_openpose_input_is_named(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ValueError, match="not JSON"):
        openpose_json.read_frame(bad)
    with pytest.raises(ValueError, match="people"):
        openpose_json.read_people({"frames": []})


def test_comfyui_sequence_has_canvas_and_frames(tmp_path):
    seq = random_sequence(frames=4)
    comfyui.write_sequence(seq, tmp_path / "sequence.json")
    document = json.loads((tmp_path / "sequence.json").read_text())
    assert len(document) == 4
    assert document[0]["canvas_width"] == 640 and document[0]["canvas_height"] == 480
    assert len(document[2]["people"][0]["pose_keypoints_2d"]) == 54


def test_contact_sheet_places_images_and_labels():
    a = np.full((100, 200, 3), 200, np.uint8)
    b = np.zeros((100, 200, 3), np.uint8)
    sheet = contact_sheet([(1, [a, b]), (25, [a, b])], gap=4)
    assert sheet.shape == (4 + 2 * 104, 4 + 2 * 204, 3)
    assert (sheet[50, 100] == 200).all()
    assert (sheet[50, 4 + 204 + 100] == 0).all()
    label_region = sheet[4 + 6:4 + 6 + 15, 4 + 6:4 + 6 + 9]
    assert (label_region == 255).any()
    with pytest.raises(ValueError):
        contact_sheet([(1, [a, b[:50]])])
