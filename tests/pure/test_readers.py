"""Reading detector keypoint files: real OpenPose output (pose2sim), our own writers, DWPose, errors."""
import json

import numpy as np
import pytest

from posebridge.pose.formats import comfyui, openpose_json
from posebridge.pose.formats.readers import KeypointFileError, load_keypoints, parse_canvas
from posebridge.pose.formats.sources import frame_number_from_name
from posebridge.pose.keypoints import KeypointSequence
from posebridge.pose.layouts import BODY25, BODY25B, DWPOSE133, IMPORT, OPENPOSE_FULL

# BODY_25B's order as ../shared/data/README.md documents it for the pose2sim files.
POSE2SIM_ORDER = (
    "nose l_eye r_eye l_ear r_ear l_shoulder r_shoulder l_elbow r_elbow l_wrist r_wrist l_hip r_hip "
    "l_knee r_knee l_ankle r_ankle neck head_top l_big_toe l_small_toe l_heel r_big_toe r_small_toe r_heel"
).split()


def write(path, document):
    path.write_text(json.dumps(document))
    return path


def person(body=(), face=(), left=(), right=()):
    return {"person_id": [-1], "pose_keypoints_2d": list(map(float, np.ravel(body))),
            "face_keypoints_2d": list(map(float, np.ravel(face))),
            "hand_left_keypoints_2d": list(map(float, np.ravel(left))),
            "hand_right_keypoints_2d": list(map(float, np.ravel(right)))}


def body(count, seed=0, low=20.0, high=400.0):
    """``count`` present points in pixels, confidence 0.5-1."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(low, high, (count, 3))
    points[:, 2] = rng.uniform(0.5, 1.0, count)
    return points


def exact_sequence(frames=3, people=2, canvas=(640, 480), seed=0):
    """A full OPENPOSE_FULL sequence whose values survive the writers' rounding exactly."""
    rng = np.random.default_rng(seed)
    data = np.zeros((frames, people, len(OPENPOSE_FULL), 3), np.float32)
    data[..., 0] = rng.integers(4, canvas[0] * 4, data.shape[:3]) / 4  # quarters: exact in 2 decimals
    data[..., 1] = rng.integers(4, canvas[1] * 4, data.shape[:3]) / 4
    data[..., 2] = rng.integers(1, 9, data.shape[:3]) / 8  # eighths: exact in 3 decimals
    data[rng.random(data.shape[:3]) < 0.2] = 0
    return KeypointSequence(OPENPOSE_FULL, data, canvas, np.arange(10, 10 + frames))


# --- The real clip: Pose2Sim's BODY_25B OpenPose output, 100 frames, 1080x1920 portrait. -------

@pytest.fixture
def pose2sim(shared_data):
    folder = shared_data / "pose2sim" / "cam01_json"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    documents = [json.loads(p.read_text()) for p in sorted(folder.glob("cam01.*.json"))]
    return folder, documents


def test_real_clip_frames_layout_coordinates(pose2sim):
    folder, documents = pose2sim
    imported = load_keypoints(folder)
    seq = imported.sequence
    assert seq.layout is IMPORT
    assert seq.frame_count == len(documents) == 100
    np.testing.assert_array_equal(seq.frame_numbers, np.arange(100))
    assert imported.source_layout == "body25b"
    assert imported.coordinates == "pixels"
    assert imported.parts == ("body",)
    assert imported.needs_canvas and imported.canvas is None and imported.canvas_source == "unknown"
    assert any("body25b" in note for note in imported.notes)


def test_real_clip_points_land_on_their_names(pose2sim):
    folder, documents = pose2sim
    seq = load_keypoints(folder, canvas="1080x1920").sequence
    counts = [len(d["people"]) for d in documents]
    assert seq.people_count == max(counts) == 3 and counts.count(3) == 1
    columns = [IMPORT.index(name) for name in POSE2SIM_ORDER]
    absent_seen = 0
    for f, document in enumerate(documents):
        for p, entry in enumerate(document["people"]):
            raw = np.reshape(entry["pose_keypoints_2d"], (25, 3)).astype(np.float32)
            absent = raw[:, 2] <= 0
            absent_seen += absent.sum()
            expected = np.where(absent[:, None], 0, raw)
            np.testing.assert_array_equal(seq.data[f, p, columns], expected)
        # A frame's missing people are all absent.
        assert not seq.present[f, counts[f]:].any()
    assert absent_seen > 100  # about 4 % of the points are 0, 0, 0 in these files


def test_real_clip_neck_is_read_and_mid_hip_derived(pose2sim):
    folder, documents = pose2sim
    seq = load_keypoints(folder).sequence
    raw = np.reshape(documents[0]["people"][0]["pose_keypoints_2d"], (25, 3)).astype(np.float32)
    neck = seq.data[0, 0, IMPORT.index("neck")]
    np.testing.assert_array_equal(neck, raw[17])  # BODY_25B detects a neck: kept, not derived
    assert tuple(neck[:2]) != tuple((raw[5, :2] + raw[6, :2]) / 2)
    mid_hip = seq.data[0, 0, IMPORT.index("mid_hip")]
    np.testing.assert_allclose(mid_hip[:2], (raw[11, :2] + raw[12, :2]) / 2, rtol=1e-6)
    assert mid_hip[2] == min(raw[11, 2], raw[12, 2])
    np.testing.assert_array_equal(seq.data[0, 0, IMPORT.index("nose")], raw[0])
    np.testing.assert_array_equal(seq.data[0, 0, IMPORT.index("head_top")], raw[18])
    np.testing.assert_array_equal(seq.data[0, 0, IMPORT.index("r_heel")], raw[24])


def test_real_clip_canvas_argument_and_later(pose2sim):
    folder, _ = pose2sim
    given = load_keypoints(folder, canvas=(1080, 1920))
    assert given.canvas == (1080, 1920) and given.canvas_source == "argument" and not given.needs_canvas
    later = load_keypoints(folder).with_canvas(1080, 1920, source="scene")
    assert later.sequence.canvas == (1080, 1920) and later.canvas_source == "scene"
    np.testing.assert_array_equal(later.sequence.data, given.sequence.data)  # pixels: not rescaled


def test_real_geometry_in_body25_order_is_read_as_body25(pose2sim, tmp_path):
    """The same people rewritten in BODY_25's order (mid_hip as OpenPose would place it)."""
    _, documents = pose2sim
    for f, document in enumerate(documents[:20]):
        people = []
        for entry in document["people"]:
            raw = np.reshape(entry["pose_keypoints_2d"], (25, 3))
            by_name = dict(zip(POSE2SIM_ORDER, raw))
            hips = (by_name["l_hip"], by_name["r_hip"])
            by_name["mid_hip"] = (np.append((hips[0][:2] + hips[1][:2]) / 2, min(hips[0][2], hips[1][2]))
                                  if min(hips[0][2], hips[1][2]) > 0 else np.zeros(3))
            people.append(person(np.array([by_name[name] for name in BODY25.points])))
        # OpenPose's own naming: <video>_<12-digit frame>_keypoints.json
        write(tmp_path / f"cam01_{f:012d}_keypoints.json", {"version": 1.3, "people": people})
    imported = load_keypoints(tmp_path)
    assert imported.source_layout == "body25"
    np.testing.assert_array_equal(imported.sequence.frame_numbers, np.arange(20))
    told = load_keypoints(tmp_path, layout="body25").sequence
    np.testing.assert_array_equal(imported.sequence.data, told.data)
    real = load_keypoints(pose2sim[0]).sequence
    names = [IMPORT.index(n) for n in BODY25B.points if n != "head_top"]  # BODY_25 has none
    people = imported.sequence.people_count  # the frame with three people is not among these
    np.testing.assert_array_equal(imported.sequence.data[:, :, names], real.data[:20, :people, names])


def test_real_clip_reads_as_body25_when_told(pose2sim):
    imported = load_keypoints(pose2sim[0], layout="BODY_25")
    assert imported.source_layout == "body25"
    assert any("chosen" in note for note in imported.notes)


# --- Our own writers round-trip. ------------------------------------------------------------

def test_coco18_openpose_frames_round_trip_exactly(tmp_path):
    seq = exact_sequence()
    for frame in range(seq.frame_count):
        openpose_json.write_frame(seq, frame, tmp_path)
    comfyui.write_sequence(seq, tmp_path / "sequence.json")  # beside the frames, as our job writes
    imported = load_keypoints(tmp_path)
    assert imported.source_layout == "coco18"
    assert imported.parts == ("body", "hand_left", "hand_right", "face")
    assert imported.coordinates == "pixels" and imported.needs_canvas
    assert any("sequence.json" in note for note in imported.notes)
    np.testing.assert_array_equal(imported.sequence.frame_numbers, [10, 11, 12])
    back = imported.with_canvas(640, 480).sequence.to_layout(OPENPOSE_FULL)
    np.testing.assert_array_equal(back.data, seq.data)
    # COCO-18 has no mid_hip: derived from the hips.
    mid = imported.sequence.data[..., IMPORT.index("mid_hip"), :]
    hips = seq.data[..., [OPENPOSE_FULL.index("l_hip"), OPENPOSE_FULL.index("r_hip")], :]
    both = (hips[..., 2] > 0).all(axis=-1)
    np.testing.assert_allclose(mid[both, :2], hips[both, :, :2].mean(axis=1))
    assert not mid[~both].any()


def test_comfyui_pixels_round_trip(tmp_path):
    seq = exact_sequence(frames=4, canvas=(512, 768), seed=3)
    comfyui.write_sequence(seq, tmp_path / "sequence.json")
    imported = load_keypoints(tmp_path / "sequence.json", canvas=(100, 100))
    assert imported.canvas == (512, 768) and imported.canvas_source == "file"
    assert any("512x768 is used" in note for note in imported.notes)
    assert imported.coordinates == "pixels"
    np.testing.assert_array_equal(imported.sequence.frame_numbers, np.arange(4))
    np.testing.assert_array_equal(imported.sequence.to_layout(OPENPOSE_FULL).data, seq.data)


def normalized_document(seq):
    """What ComfyUI's OpenPose node writes: coordinates as fractions of the canvas."""
    document = comfyui.sequence_document(seq)
    w, h = seq.canvas
    for frame in document:
        for entry in frame["people"]:
            for key in ("pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d"):
                values = np.reshape(entry[key], (-1, 3)) / [w, h, 1]
                entry[key] = values.ravel().tolist()
    return document


def test_normalized_comfyui_is_detected_and_scaled(tmp_path):
    seq = exact_sequence(canvas=(512, 768), seed=4)
    path = write(tmp_path / "pose.json", normalized_document(seq))
    imported = load_keypoints(path)
    assert imported.coordinates == "normalized" and imported.canvas == (512, 768)
    np.testing.assert_allclose(imported.sequence.to_layout(OPENPOSE_FULL).data, seq.data, atol=1e-3)
    # Told "pixels", the fractions are kept as they are.
    raw = load_keypoints(path, coordinates="pixels").sequence.to_layout(OPENPOSE_FULL).data
    assert raw[..., :2].max() <= 1.0


def test_normalized_frames_without_canvas_are_scaled_later(tmp_path):
    seq = exact_sequence(canvas=(640, 360), seed=5)
    for frame, document in enumerate(normalized_document(seq)):
        write(tmp_path / f"clip_{frame:04d}_keypoints.json", {"version": 1.3, "people": document["people"]})
    imported = load_keypoints(tmp_path)
    assert imported.coordinates == "normalized" and imported.needs_canvas
    assert imported.sequence.canvas == (1, 1)  # the stand-in: fractions of the canvas
    later = imported.with_canvas(640, 360)
    direct = load_keypoints(tmp_path, canvas="640x360")
    np.testing.assert_allclose(later.sequence.data, direct.sequence.data, rtol=1e-6)
    np.testing.assert_allclose(direct.sequence.to_layout(OPENPOSE_FULL).data, seq.data, atol=1e-3)


# --- Other layouts and the detector conventions. -------------------------------------------

def test_dwpose133_flat_list_is_split_by_name(tmp_path):
    points = np.zeros((133, 3))
    points[:, 0] = 10 + np.arange(133)
    points[:, 1] = 600 - np.arange(133)
    points[:, 2] = 0.5 + np.arange(133) / 400
    points[100] = (-1, -1, 0.9)  # DWPose's mark for a point it did not find
    path = write(tmp_path / "dw.json", [{"people": [person(points)], "canvas_width": 1024, "canvas_height": 1024}])
    imported = load_keypoints(path)
    assert imported.source_layout == "dwpose133"
    assert imported.parts == ("body", "hand_left", "hand_right", "face")
    got = imported.sequence.data[0, 0]
    for i, name in enumerate(DWPOSE133.points):
        expected = (0, 0, 0) if i == 100 else points[i]
        np.testing.assert_allclose(got[IMPORT.index(name)], expected, rtol=1e-6, err_msg=name)
    shoulders = points[[5, 6]]
    np.testing.assert_allclose(got[IMPORT.index("neck")], [*shoulders[:, :2].mean(axis=0), shoulders[:, 2].min()], rtol=1e-6)
    assert not got[IMPORT.index("r_pupil")].any()  # the 68-point face has no pupils


@pytest.mark.parametrize("count, name", [(17, "coco17"), (23, "coco17_feet")])
def test_coco17_with_and_without_feet(tmp_path, count, name):
    points = body(count)
    imported = load_keypoints(write(tmp_path / "f_0001.json", {"people": [person(points)]}))
    assert imported.source_layout == name
    assert list(imported.sequence.frame_numbers) == [1]
    got = imported.sequence.data[0, 0]
    np.testing.assert_allclose(got[IMPORT.index("l_shoulder")], points[5], rtol=1e-6)
    assert got[IMPORT.index("neck"), 2] > 0
    assert got[IMPORT.index("l_heel"), 2] > 0 if count == 23 else not got[IMPORT.index("l_heel")].any()


def test_missing_point_conventions_are_absent_and_zeroed(tmp_path):
    points = body(18)
    points[0] = (0, 0, 0)
    points[1] = (-1, -1, 0.8)
    points[2] = (50, 60, 0)
    points[3] = (50, 60, -0.3)
    points[4] = (0, 0, 0.7)
    points[5] = (-4, 60, 0.9)
    imported = load_keypoints(write(tmp_path / "one.json", {"people": [person(points)]}))
    got = imported.sequence.data[0, 0, :18]
    assert not got[:6].any()
    np.testing.assert_allclose(got[6:], points[6:], rtol=1e-6)


def test_folder_ordered_by_last_number_people_vary(tmp_path):
    bodies = {3: [body(18, 1)], 12: [], 100: [body(18, 2), body(18, 3), body(18, 4)], 7: [body(18, 5)]}
    for number, people in bodies.items():
        write(tmp_path / f"cam01.{number:04d}.json", {"people": [person(b) for b in people]})
    write(tmp_path / "calibration.json", {"people": []})
    imported = load_keypoints(tmp_path)
    seq = imported.sequence
    np.testing.assert_array_equal(seq.frame_numbers, [3, 7, 12, 100])
    assert seq.people_count == 3
    assert [int(seq.present[f].any(axis=-1).sum()) for f in range(4)] == [1, 1, 0, 3]
    np.testing.assert_allclose(seq.data[3, 2, :18], bodies[100][2], rtol=1e-6)
    np.testing.assert_allclose(seq.data[1, 0, :18], bodies[7][0], rtol=1e-6)
    assert any("calibration.json" in note for note in imported.notes)
    assert any("1 frame(s) with nobody" in note for note in imported.notes)


def test_frame_numbers_come_from_the_last_number_in_the_name():
    assert frame_number_from_name("cam01.0012.json") == 12
    assert frame_number_from_name("pose_0003_keypoints.json") == 3
    assert frame_number_from_name("video2_000000000041_keypoints.json") == 41
    assert frame_number_from_name("keypoints.json") is None


def test_parse_canvas():
    assert parse_canvas("1920x1080") == (1920, 1080) == parse_canvas((1920, 1080))
    assert parse_canvas(None) is None
    for bad in ("1920", "0x5", (-1, 4)):
        with pytest.raises(ValueError):
            parse_canvas(bad)


# --- Errors name the problem and the file. ---------------------------------------------------

def error_for(path, **options):
    with pytest.raises(KeypointFileError) as info:
        load_keypoints(path, **options)
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_not_json_and_not_a_keypoint_structure(tmp_path):
    (tmp_path / "bad.json").write_text("{nope")
    message = error_for(tmp_path / "bad.json")
    assert "not JSON" in message and "bad.json" in message
    assert "not an OpenPose or ComfyUI" in error_for(write(tmp_path / "frames.json", {"frames": []}))
    assert "frame 1" in error_for(write(tmp_path / "list.json", [{"people": []}, 3]))
    nested = {"people": [{"pose_keypoints_2d": body(18).tolist()}]}  # [[x, y, c], ...]
    assert "flat list of numbers" in error_for(write(tmp_path / "nested.json", nested))
    words = {"people": [{"pose_keypoints_2d": ["a"] * 54}]}
    assert "flat list of numbers" in error_for(write(tmp_path / "words.json", words))
    assert "no such file" in error_for(tmp_path / "missing.json")


def test_unknown_layouts(tmp_path):
    message = error_for(write(tmp_path / "b.json", {"people": [person(body(19))]}))
    assert "unknown layout" in message and "19 points" in message and "b.json" in message
    message = error_for(write(tmp_path / "f.json", {"people": [person(body(18), face=body(50))]}))
    assert "unknown layout" in message and "face_keypoints_2d has 50" in message
    message = error_for(write(tmp_path / "c.json", {"people": [person(body(18))]}), layout="body25")
    assert "'body25' has 25 points" in message


def test_empty_sequences(tmp_path):
    assert "no frames" in error_for(write(tmp_path / "empty.json", []))
    assert "no person" in error_for(write(tmp_path / "nobody.json", [{"people": []}, {"people": []}]))
    ghost = person(np.zeros((18, 3)))
    assert "no keypoint" in error_for(write(tmp_path / "ghost.json", {"people": [ghost]}))
    folder = tmp_path / "frames"
    folder.mkdir()
    write(folder / "a_0001_keypoints.json", {"people": []})
    assert "no person" in error_for(folder)


def test_folder_without_json_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    message = error_for(tmp_path)
    assert "no JSON files" in message and str(tmp_path) in message


def test_inconsistent_point_counts_name_the_file(tmp_path):
    write(tmp_path / "p_0001_keypoints.json", {"people": [person(body(18))]})
    write(tmp_path / "p_0002_keypoints.json", {"people": [person(body(25))]})
    message = error_for(tmp_path)
    assert "p_0002_keypoints.json" in message and "25 points" in message and "differ" in message


def test_duplicate_frame_numbers(tmp_path):
    write(tmp_path / "cam1_0004.json", {"people": [person(body(18))]})
    write(tmp_path / "cam2_0004.json", {"people": [person(body(18))]})
    assert "both carry frame number 4" in error_for(tmp_path)


def test_bad_arguments_are_value_errors(tmp_path):
    path = write(tmp_path / "one.json", {"people": [person(body(18))]})
    with pytest.raises(ValueError, match="coordinates"):
        load_keypoints(path, coordinates="inches")
    with pytest.raises(ValueError, match="body99"):
        load_keypoints(path, layout="body99")
    with pytest.raises(ValueError, match="canvas"):
        load_keypoints(path, canvas="big")


def test_frame_numbers_keep_the_sign_our_writer_gives_negative_frames():
    from posebridge.pose.formats.sources import frame_number_from_name

    assert frame_number_from_name("pose_-005_keypoints.json") == -5
    assert frame_number_from_name("pose_0012_keypoints.json") == 12
    assert frame_number_from_name("cam01-0012.json") == 12
    assert frame_number_from_name("cam01.0003.json") == 3
