"""The mediapipe extractor on real pictures: the pose2sim clip against the OpenPose output recorded
beside it (BODY_25B, performer and bystander), and a real frontal face (the Grace Hopper portrait
matplotlib ships) for the face-mesh -> iBUG-68 table."""
import numpy as np
import pytest

pytest.importorskip("mediapipe")
pytest.importorskip("av")

from posebridge.backend.extract import ExtractionError, make_extractor  # noqa: E402
from posebridge.backend.extract.video import read_frames  # noqa: E402
from posebridge.pose.formats.readers import load_keypoints  # noqa: E402
from posebridge.pose.layouts import BODY25B, IMPORT  # noqa: E402
from posebridge.retarget.tracking import track_person  # noqa: E402

# 24 frames of cam01.mp4 in order (MediaPipe tracks), from frame 30: both hands are in view and
# MediaPipe finds the left one from frame 34 on.
START, FRAMES = 30, 24
# OpenPose points below this confidence are its guesses (2.5 % of the performer's), not truth.
REFERENCE_FLOOR = 0.3


def ip(name: str) -> int:
    return IMPORT.index(name)


def performer_and_bystander(shared_data):
    """The OpenPose people of the clip as (frames, 25-point BODY_25B order) arrays, one for the
    performer and one for the bystander: the project's tracker follows the most prominent person
    (the detector gives no identity, splits the performer in two in frame 37 and sees a third
    person once); the bystander is the fullest of the other detections of each frame."""
    loaded = load_keypoints(shared_data / "pose2sim" / "cam01_json", layout="body25b", canvas=(1080, 1920))
    seq = loaded.sequence
    tracked = track_person(seq, fps=60.0)
    others = np.where(tracked.taken, -1, seq.present.sum(axis=2))
    bystander = seq.data[np.arange(seq.frame_count), np.argmax(others, axis=1)]
    columns = [IMPORT.index(name) for name in BODY25B.points]
    return tracked.sequence.data[:, 0][:, columns], bystander[:, columns]


def body_distance(person: np.ndarray, reference: np.ndarray) -> float:
    """Mean pixel distance over the COCO-17 joints present in both."""
    distances = []
    for name in BODY25B.points[:17]:
        a, b = person[ip(name)], reference[BODY25B.index(name)]
        if a[2] > 0 and b[2] >= REFERENCE_FLOOR:
            distances.append(np.hypot(*(a[:2] - b[:2])))
    return float(np.mean(distances))


_CLIP = {}


@pytest.fixture
def clip(shared_data):
    """Holistic and body-only detections of FRAMES frames from START, and OpenPose's performer
    and bystander there. Computed once per run
    (``shared_data`` is per test, so this cannot be a module fixture)."""
    if not _CLIP:
        _CLIP.update(_detect_clip(shared_data))
    return _CLIP


def _detect_clip(shared_data) -> dict:
    path = shared_data / "pose2sim" / "cam01.mp4"
    full, body_only, world = [], [], []
    with make_extractor("mediapipe") as holistic, make_extractor("mediapipe", parts=("body",)) as body:
        for frame in read_frames(path, start=START, end=START + FRAMES - 1):
            full.append(holistic.detect(frame.rgb))
            world.append(holistic.world())
            body_only.append(body.detect(frame.rgb))
    performer, bystander = performer_and_bystander(shared_data)
    frames = slice(START, START + FRAMES)
    return {"full": full, "body": body_only, "world": world, "performer": performer[frames],
            "bystander": bystander[frames]}


def test_one_person_the_performer_followed_in_every_frame(clip):
    for people, performer, bystander in zip(clip["full"], clip["performer"], clip["bystander"]):
        assert people.shape == (1, len(IMPORT), 3) and people.dtype == np.float32
        person = people[0]
        torso = np.hypot(*(performer[17, :2] - (performer[11, :2] + performer[12, :2]) / 2))
        assert body_distance(person, performer) < 0.25 * torso
        assert body_distance(person, bystander) > 3 * body_distance(person, performer)


def test_hands_on_the_right_sides_and_at_the_wrists(clip):
    """Holistic's left hand is the person's left: checked against OpenPose's own wrists."""
    found = {"hand_left": 0, "hand_right": 0}
    offsets = []
    for people, performer in zip(clip["full"], clip["performer"]):
        person = people[0]
        torso = np.hypot(*(performer[17, :2] - (performer[11, :2] + performer[12, :2]) / 2))
        for part, own, other in (("hand_left", 9, 10), ("hand_right", 10, 9)):
            hand = person[IMPORT.part(part).start:IMPORT.part(part).stop]
            if not (hand[:, 2] > 0).any():
                continue
            found[part] += 1
            assert (hand[:, 2] > 0).sum() >= 15
            if min(performer[own, 2], performer[other, 2]) < REFERENCE_FLOOR:
                continue  # OpenPose lost that wrist (frame 37: a guess at the hip)
            wrist = hand[0, :2]
            offsets.append(np.hypot(*(wrist - performer[own, :2])) / torso)
            assert offsets[-1] < 0.3
            assert np.hypot(*(wrist - performer[other, :2])) > 0.5 * torso
            # The fingers spread around the wrist, a hand's length at most.
            assert np.hypot(*(hand[hand[:, 2] > 0, :2] - wrist).T).max() < 0.6 * torso
    assert np.median(offsets) < 0.12
    assert found["hand_right"] >= FRAMES // 2 and found["hand_left"] >= FRAMES // 2


def test_mapping_invariants(clip):
    for people in clip["full"]:
        p = people[0]
        assert np.allclose(p[ip("neck"), :2], (p[ip("l_shoulder"), :2] + p[ip("r_shoulder"), :2]) / 2, atol=1e-3)
        assert p[ip("neck"), 2] == min(p[ip("l_shoulder"), 2], p[ip("r_shoulder"), 2])
        assert np.allclose(p[ip("mid_hip"), :2], (p[ip("l_hip"), :2] + p[ip("r_hip"), :2]) / 2, atol=1e-3)
        for absent in ("head_top", "l_small_toe", "r_small_toe"):
            assert p[ip(absent), 2] == 0
        present = p[:, 2] > 0
        assert ((p[present, 2] > 0) & (p[present, 2] <= 1)).all()
        assert np.all(p[~present, :2] == 0)
        assert (p[present, 0] < 1080).all() and (p[present, 1] < 1920).all()
        # The person's left is on the picture's right for this performer, who faces the camera.
        assert p[ip("l_shoulder"), 0] > p[ip("r_shoulder"), 0]
        # Feet: heel and big toe below the ankle's knee, near the ankle.
        for side in "lr":
            ankle = p[ip(f"{side}_ankle"), :2]
            for toe in (f"{side}_heel", f"{side}_big_toe"):
                if p[ip(toe), 2] > 0:
                    assert np.hypot(*(p[ip(toe), :2] - ankle)) < 120


def test_body_only_mode_gives_the_same_body_and_no_hands_or_face(clip):
    parts = [IMPORT.part(name) for name in ("hand_left", "hand_right", "face")]
    hands_and_face = [i for part in parts for i in range(part.start, part.stop)]
    body = list(range(18))
    for full, alone, performer in zip(clip["full"], clip["body"], clip["performer"]):
        assert alone.shape == (1, len(IMPORT), 3)
        assert np.all(alone[0, hands_and_face] == 0)
        torso = np.hypot(*(performer[17, :2] - (performer[11, :2] + performer[12, :2]) / 2))
        both = (full[0, body, 2] > 0) & (alone[0, body, 2] > 0)
        gap = np.hypot(*(full[0, body][both, :2] - alone[0, body][both, :2]).T)
        assert np.median(gap) < 0.1 * torso


@pytest.fixture(scope="module")
def portrait():
    matplotlib_cbook = pytest.importorskip("matplotlib.cbook")
    from PIL import Image

    path = matplotlib_cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return np.asarray(Image.open(path).convert("RGB"))


def test_face_68_points_in_order_and_in_place_on_a_real_face(portrait):
    with make_extractor("mediapipe") as extractor:
        people = extractor.detect(portrait)
    assert people.shape[0] == 1
    person = people[0]
    face = person[IMPORT.part("face").start:IMPORT.part("face").stop]
    assert (face[:, 2] > 0).all()  # 68 points and both pupils (refined mesh)
    xy = face[:, :2]
    x, y = xy[:, 0], xy[:, 1]
    width = x[16] - x[0]  # the face, ear to ear
    assert width > 100
    # Jaw: from the person's right (picture left) down round the chin (8, lowest) to the left.
    assert np.all(np.diff(x[0:17]) > 0)
    assert np.all(np.diff(y[0:9]) > 0) and np.all(np.diff(y[8:17]) < 0)
    # Brows above the eyes, outer to inner on the right, inner to outer on the left.
    assert np.all(np.diff(x[17:22]) > 0) and np.all(np.diff(x[22:27]) > 0)
    assert y[17:27].max() < y[36:48].min()
    # Nose bridge straight down between the eyes, then the nostril base right to left, below it.
    assert np.all(np.diff(y[27:31]) > 0) and np.all(np.abs(x[27:31] - x[27]) < 0.08 * width)
    assert x[39] < x[27] < x[42]
    assert np.all(np.diff(x[31:36]) > 0) and y[31:36].min() > y[28]
    # Eyes: right eye on the picture's left; corners, upper lid above the lower lid.
    for start in (36, 42):
        corner_a, corner_b = start, start + 3
        assert x[corner_a] < x[start + 1] < x[start + 2] < x[corner_b]
        assert x[corner_a] < x[start + 5] < x[start + 4] < x[corner_b]
        assert y[start + 1] < y[start + 5] and y[start + 2] < y[start + 4]
    assert x[36:42].max() < x[42:48].min()
    # Pupils inside their eyes.
    for pupil, start in ((68, 36), (69, 42)):
        assert x[start] < x[pupil] < x[start + 3]
        assert y[start + 1:start + 3].min() - 3 < y[pupil] < y[start + 4:start + 6].max() + 3
    # Mouth below the nose and above the chin, outer lips round the inner ones.
    assert y[33] < y[48:68].min() and y[48:68].max() < y[8]
    assert x[48] < x[60] < x[64] < x[54]
    assert np.all(np.diff(x[48:55]) > 0) and np.all(np.diff(x[54:60]) < 0)
    assert y[51] < y[62] <= y[66] + 1 < y[57]  # a closed mouth: inner lips meet
    # The face agrees with the body model's own face points.
    for body_point, face_points in (("nose", [30, 33]), ("r_eye", [36, 39]), ("l_eye", [42, 45])):
        centre = xy[face_points].mean(axis=0)
        assert np.hypot(*(person[ip(body_point), :2] - centre)) < 0.12 * width
    for body_point, jaw_point in (("r_ear", 0), ("l_ear", 16)):
        assert np.hypot(*(person[ip(body_point), :2] - xy[jaw_point])) < 0.25 * width


def test_pictures_of_any_size_nobody_reset_and_bad_input(portrait):
    with make_extractor("mediapipe", parts=("body", "hands")) as extractor:
        assert extractor.info.name == "mediapipe" and not extractor.info.multi_person
        assert extractor.info.note == "MediaPipe sees one person: the most prominent"
        assert extractor.detect(np.zeros((240, 320, 3), np.uint8)).shape == (0, len(IMPORT), 3)
        odd = np.ascontiguousarray(portrait[:, ::-1][7:590, 3:501])  # mirrored, odd size, a view
        people = extractor.detect(odd)
        assert people.shape == (1, len(IMPORT), 3)
        face = people[0, IMPORT.part("face").start:IMPORT.part("face").stop]
        assert (face[:, 2] == 0).all()  # face not asked for
        extractor.reset()
        again = extractor.detect(portrait)
        assert again.shape[0] == 1 and (again[0, :, 0] <= portrait.shape[1]).all()
        with pytest.raises(ExtractionError):
            extractor.detect(np.zeros((10, 10), np.uint8))
        with pytest.raises(ExtractionError):
            extractor.detect(np.zeros((10, 10, 3), np.float32))


def test_world_landmarks_are_metres_about_the_hips_along_the_pictures_axes(clip):
    """MediaPipe's 3-D body (the import's second depth witness): metres about the mid-hip, x and
    y along the picture's (each limb's x, y direction is its direction in the picture), an
    adult's bone lengths."""
    limbs = [("l_shoulder", "l_elbow"), ("l_elbow", "l_wrist"), ("r_shoulder", "r_elbow"), ("r_elbow", "r_wrist"),
             ("l_hip", "l_knee"), ("l_knee", "l_ankle"), ("r_hip", "r_knee"), ("r_knee", "r_ankle")]
    cosines, upper_arms, thighs = [], [], []
    for people, world in zip(clip["full"], clip["world"]):
        assert world.shape == (1, len(IMPORT), 4) and world.dtype == np.float32
        assert np.abs(world[0, ip("mid_hip"), :3]).max() < 0.02
        for a, b in limbs:
            if min(world[0, ip(a), 3], world[0, ip(b), 3], people[0, ip(a), 2], people[0, ip(b), 2]) <= 0.5:
                continue
            flat = world[0, ip(b), :2] - world[0, ip(a), :2]
            picture = people[0, ip(b), :2] - people[0, ip(a), :2]
            cosines.append(flat @ picture / np.linalg.norm(flat) / np.linalg.norm(picture))
        upper_arms.append(np.linalg.norm(world[0, ip("l_elbow"), :3] - world[0, ip("l_shoulder"), :3]))
        thighs.append(np.linalg.norm(world[0, ip("l_knee"), :3] - world[0, ip("l_hip"), :3]))
    # (A limb pointing nearly at the camera is short in both, its direction noisy: the 5th percentile.)
    assert len(cosines) > 4 * FRAMES and np.median(cosines) > 0.98 and np.percentile(cosines, 5) > 0.85
    assert 0.2 < np.median(upper_arms) < 0.4 and 0.3 < np.median(thighs) < 0.55
    assert make_extractor("mediapipe", parts=("body",)).world() is None  # nothing detected yet
