"""The dwpose extractor: its decoding against hand-computed cases, and the whole path through
onnxruntime with tiny stand-in models (tests/backend/tiny_dwpose.py) whose answers are known,
so every box and keypoint is asserted in frame pixels. Offline: nothing is downloaded."""
import math

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from posebridge.backend.extract import ExtractionError, make_extractor  # noqa: E402
from posebridge.backend.extract import dwpose  # noqa: E402
from posebridge.backend.extract import dwpose_decode as decode  # noqa: E402
from tiny_dwpose import (  # noqa: E402
    DEFAULT_BOXES, TinyBox, default_pose, write_tiny_dwpose,
)
from posebridge.pose.layouts import DWPOSE133, IMPORT  # noqa: E402

MAGENTA = (255, 0, 255)  # blue for the tiny detector's switch, red for the pose model's
RED_GATE = 0.2 * (255 - 123.675) / 58.395  # the tiny pose model's nose score on a red crop


def frame(color, width=1280, height=720):
    return np.full((height, width, 3), color, np.uint8)


# --- letterbox and the detector's boxes ------------------------------------------------------
def test_letterbox_of_a_wide_frame_scales_by_one_ratio_pads_below_and_swaps_to_bgr():
    rgb = np.zeros((720, 1280, 3), np.float32)
    rgb[..., 0] = np.arange(1280)[None, :]  # red = x
    rgb[..., 1] = 20
    rgb[..., 2] = 30
    image, ratio = decode.letterbox(rgb)
    assert image.shape == (1, 3, 640, 640) and ratio == 0.5
    assert np.all(image[0, 0, :360] == 30) and np.all(image[0, 1, :360] == 20)  # blue first
    # Destination column j samples the source at 2j + 0.5: halfway between columns 2j and 2j+1.
    assert np.allclose(image[0, 2, :360, :], 2 * np.arange(640) + 0.5)
    assert np.all(image[0, :, 360:] == 114)


def test_letterbox_of_a_tall_frame_pads_on_the_right():
    image, ratio = decode.letterbox(frame((10, 20, 30), width=720, height=1280))
    assert ratio == 0.5
    assert np.all(image[0, :, :, :360] == np.array([30, 20, 10])[:, None, None])
    assert np.all(image[0, :, :, 360:] == 114)


def test_yolox_rows_decode_to_frame_boxes():
    output = np.zeros((1, 8400, 85), np.float32)
    # Stride 32 anchor at cell (3, 2): index 6400 + 1600 + 2 * 20 + 3.
    output[0, 8043, :4] = [0.5, 0.25, math.log(2), math.log(4)]
    output[0, 8043, 4] = 0.8  # objectness
    output[0, 8043, 5] = 0.5  # person probability
    boxes, scores = decode.decode_yolox(output, ratio=0.5)
    # Centre ((3 + 0.5) * 32, (2 + 0.25) * 32) = (112, 72), size (64, 128): (80, 8)-(144, 136)
    # in the 640 input, doubled back to the frame.
    assert np.allclose(boxes[8043], [160, 16, 288, 272])
    assert scores[8043] == pytest.approx(0.4)
    assert scores[:8043].max() == 0


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [5, 0, 15, 10]], np.float64)
    scores = np.array([0.9, 0.8, 0.95])
    # IoU: A-B 90/110 = 0.82, A-C 50/150 = 0.33, B-C 60/140 = 0.43.
    assert decode.box_iou(boxes[0], boxes[1:]) == pytest.approx([90 / 110, 50 / 150])
    assert list(decode.nms(boxes, scores, 0.45)) == [2, 0]  # C first; A survives C, B does not survive A
    assert list(decode.nms(boxes, scores, 0.3)) == [2]  # C suppresses both


# --- the pose model's crop and its answer -----------------------------------------------------
def test_a_box_becomes_a_padded_region_of_the_inputs_aspect_ratio():
    centre, scale = decode.box_to_region([400, 100, 560, 420])
    assert np.allclose(centre, [480, 260])
    assert np.allclose(scale, [300, 400])  # 200x400 padded, widened to 288:384
    centre, scale = decode.box_to_region([0, 0, 400, 100])
    assert np.allclose(scale, [500, 500 / 0.75])  # 500x125 padded, heightened


def test_crop_round_trip_and_what_the_crop_samples():
    centre, scale = np.array([480.0, 260.0]), np.array([300.0, 400.0])
    points = np.array([[480, 260], [330, 60], [512.5, 101.25]])
    crop_points = decode.frame_to_crop(points, centre, scale)
    assert np.allclose(crop_points[:2], [[144, 192], [0, 0]])
    assert np.allclose(decode.crop_to_frame(crop_points, centre, scale), points)

    rgb = np.zeros((720, 1280, 3), np.float32)
    rgb[..., 0] = np.arange(1280)[None, :]  # red = x
    rgb[..., 1] = np.arange(720)[:, None]  # green = y
    crop = decode.crop_person(rgb, centre, scale)
    assert crop.shape == (3, 384, 288)
    u, v = np.arange(288), np.arange(384)
    expect_red = u * 300 / 288 + 330
    expect_green = v * 400 / 384 + 60
    assert np.allclose(crop[0, 0] * 58.395 + 123.675, expect_red, atol=1e-3)
    assert np.allclose(crop[1, :, 0] * 57.12 + 116.28, expect_green, atol=1e-3)

    # Outside the frame is black before normalisation.
    crop = decode.crop_person(rgb, np.array([0.0, 0.0]), scale)
    assert np.allclose(crop[:, 0, 0], -decode.POSE_MEAN / decode.POSE_STD)


def test_simcc_argmax_halved_and_the_smaller_maximum_as_score():
    simcc_x = np.zeros((1, 2, 8), np.float32)
    simcc_y = np.zeros((1, 2, 10), np.float32)
    simcc_x[0, 0, 5], simcc_y[0, 0, 9] = 0.9, 0.6
    simcc_x[0, 1, 2], simcc_y[0, 1, 3] = 0.4, 1.3
    locations, scores = decode.decode_simcc(simcc_x, simcc_y)
    assert np.allclose(locations[0], [[2.5, 4.5], [1.0, 1.5]])
    assert np.allclose(scores[0], [0.6, 0.4])


# --- the 133 points in the import layout ------------------------------------------------------
def test_the_133_points_map_to_the_import_layout_by_name():
    k = np.arange(133)
    keypoints = np.stack([k * 2.0, 1000.0 + k], axis=-1)[None]
    scores = np.full((1, 133), 0.9)
    scores[0, 3] = 0.3  # l_ear at the threshold: absent
    scores[0, 5] = 1.5  # l_shoulder: clipped
    person = dwpose.to_import(keypoints, scores)[0]

    def at(name):
        return person[IMPORT.index(name)]

    def src(name):
        return keypoints[0, DWPOSE133.index(name)]

    assert np.allclose(at("nose"), [0, 1000, 0.9])
    assert np.allclose(at("l_shoulder"), [*src("l_shoulder"), 1.0])
    assert np.allclose(at("neck")[:2], (src("l_shoulder") + src("r_shoulder")) / 2)
    assert at("neck")[2] == pytest.approx(0.9)
    assert np.allclose(at("mid_hip")[:2], (src("l_hip") + src("r_hip")) / 2)
    assert np.all(at("l_ear") == 0)
    # COCO-WholeBody: 91 is the left hand's wrist, 112 the right's; 23 the first face point.
    assert np.allclose(at("l_hand_wrist")[:2], keypoints[0, 91])
    assert np.allclose(at("r_hand_wrist")[:2], keypoints[0, 112])
    assert np.allclose(at("r_hand_pinky_4")[:2], keypoints[0, 132])
    assert np.allclose(at("face_0")[:2], keypoints[0, 23])
    assert np.allclose(at("l_big_toe")[:2], keypoints[0, 17])
    assert np.allclose(at("r_heel")[:2], keypoints[0, 22])
    assert np.allclose(at("r_pupil"), at("r_eye")) and np.allclose(at("l_pupil"), at("l_eye"))
    assert np.all(at("head_top") == 0)

    body_only = dwpose.to_import(keypoints, scores, parts=("body",))[0]
    for part in ("hand_left", "hand_right", "face"):
        piece = IMPORT.part(part)
        assert np.all(body_only[piece.start:piece.stop] == 0)
    assert body_only[IMPORT.index("l_big_toe"), 2] > 0  # feet are body


# --- the whole path through onnxruntime --------------------------------------------------------
def expected_points(pose, centre, scale):
    """Frame pixels of the tiny pose model's keypoints for a region, computed by hand."""
    x_in, y_in = pose.x_bins / 2, pose.y_bins / 2
    return np.stack([
        x_in * scale[0] / 288 + centre[0] - scale[0] / 2,
        y_in * scale[1] / 384 + centre[1] - scale[1] / 2,
    ], axis=-1)


def check_person(person, pose, centre, scale, nose_score=RED_GATE):
    expect = expected_points(pose, np.array(centre), np.array(scale))
    for index, name in enumerate(DWPOSE133.points):
        got = person[IMPORT.index(name)]
        if index == 0:
            score = nose_score
        else:
            score = pose.score(index)
        if score <= 0.3:
            assert got[2] == 0, name
            continue
        assert got[2] == pytest.approx(min(score, 1.0), abs=1e-4), name
        assert got[:2] == pytest.approx(expect[index], abs=1e-3), name


@pytest.fixture
def tiny_models(tmp_path):
    return write_tiny_dwpose(tmp_path / "dwpose")


def test_one_person_lands_where_the_models_put_it(tiny_models):
    with make_extractor("dwpose", model_dir=tiny_models, device="cpu") as extractor:
        assert extractor.info.name == "dwpose" and extractor.info.multi_person
        people = extractor.detect(frame(MAGENTA))
    assert people.shape == (1, len(IMPORT), 3) and people.dtype == np.float32
    person = people[0]
    # Default box: (200, 50)-(280, 210) in the 640 letterbox, (400, 100)-(560, 420) in the
    # 1280x720 frame; region centre (480, 260), scale (300, 400).
    check_person(person, default_pose(), (480, 260), (300, 400))
    assert person[IMPORT.index("nose"), 2] == pytest.approx(RED_GATE, abs=1e-4)
    assert person[IMPORT.index("l_eye"), 2] == 0  # score 0.25
    assert person[IMPORT.index("r_eye"), 2] == 1.0  # score 1.4, clipped


@pytest.mark.parametrize("dynamic_batch", [False, True])
def test_every_person_nms_and_classes(tmp_path, dynamic_batch):
    boxes = DEFAULT_BOXES + (
        TinyBox((204.0, 54.0, 284.0, 214.0), 0.7, stride=8),  # IoU 0.86 with the first: suppressed
        TinyBox((440.0, 100.0, 520.0, 260.0), 0.6, stride=8),  # a second person
        TinyBox((40.0, 40.0, 120.0, 200.0), 0.95, label=2, stride=32),  # a car
        TinyBox((560.0, 300.0, 600.0, 340.0), 0.25),  # too weak
    )
    folder = write_tiny_dwpose(tmp_path / "dwpose", boxes=boxes, dynamic_batch=dynamic_batch)
    with make_extractor("dwpose", model_dir=folder, device="cpu") as extractor:
        found, scores = extractor.find_people(frame(MAGENTA))
        assert np.allclose(found, [[400, 100, 560, 420], [880, 200, 1040, 520]], atol=1e-3)
        assert np.allclose(scores, [0.9, 0.6])
        people = extractor.detect(frame(MAGENTA))
    assert len(people) == 2
    check_person(people[0], default_pose(), (480, 260), (300, 400))
    check_person(people[1], default_pose(), (960, 360), (300, 400))


def test_the_detector_sees_bgr_and_the_pose_model_rgb(tmp_path):
    folder = write_tiny_dwpose(tmp_path / "dwpose", boxes=(TinyBox((200.0, 50.0, 280.0, 210.0), 0.9, gated=True),))
    with make_extractor("dwpose", model_dir=folder, device="cpu") as extractor:
        # Red frame: the detector's channel 0 is blue = 0, so the gated box scores 0.
        assert extractor.detect(frame((255, 0, 0))).shape == (0, len(IMPORT), 3)
        # Blue frame: found; the pose model's channel 0 is red = 0, so the nose scores < 0.
        person = extractor.detect(frame((0, 0, 255)))[0]
    assert person[IMPORT.index("nose"), 2] == 0
    check_person(person, default_pose(), (480, 260), (300, 400), nose_score=-1)


# --- model files ------------------------------------------------------------------------------
def test_a_missing_model_file_is_named(tmp_path):
    folder = tmp_path / "dwpose"
    write_tiny_dwpose(folder)
    (folder / dwpose.POSE_FILE).unlink()
    with pytest.raises(ExtractionError, match=r"dw-ll_ucoco_384\.onnx not found in .*dwpose") as error:
        make_extractor("dwpose", model_dir=folder, device="cpu")
    assert "hf download yzd-v/DWPose" in str(error.value)
    assert dwpose.POSE_FILE in dwpose.why_unavailable(folder)
    write_tiny_dwpose(folder)
    assert dwpose.why_unavailable(folder) is None


def test_an_empty_hf_cache_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ExtractionError, match=r"yolox_l\.onnx not found in the Hugging Face cache") as error:
        make_extractor("dwpose", device="cpu")
    assert str(tmp_path / "hub") in str(error.value) and "yzd-v/DWPose" in str(error.value)


def test_models_load_from_the_hf_cache(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    repo = hub / "models--yzd-v--DWPose"
    revision = "0123456789abcdef0123456789abcdef01234567"
    write_tiny_dwpose(repo / "snapshots" / revision)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    assert dwpose.find_model_file(dwpose.POSE_FILE) == repo / "snapshots" / revision / dwpose.POSE_FILE
    with make_extractor("dwpose", device="cpu") as extractor:
        assert len(extractor.detect(frame(MAGENTA))) == 1


def test_devices():
    assert dwpose.providers_for("cpu") == ["CPUExecutionProvider"]
    assert dwpose.providers_for("auto")[-1] == "CPUExecutionProvider"
    with pytest.raises(ExtractionError, match="device"):
        dwpose.providers_for("tpu")
