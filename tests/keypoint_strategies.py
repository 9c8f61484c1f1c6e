"""Hypothesis strategies for keypoint files as detectors, tools and people write them, and
worse: every body layout's point count, hands and faces, mixed layouts between people and
frames, NaN/inf/huge/negative coordinates, numbers as strings, empty people, wrong types
anywhere (the reader fuzz tests, pure and in Blender)."""
from __future__ import annotations

import json

from hypothesis import strategies as st

BODY_COUNTS = (17, 18, 23, 25, 133)
ODD_COUNTS = (0, 1, 2, 19, 24, 26, 70)

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(min_value=-2.0, max_value=1.2),  # normalised-looking
    st.floats(min_value=0, max_value=4000),  # pixel-looking
    st.integers(min_value=-(10 ** 12), max_value=10 ** 12),
    st.sampled_from([0, -1, 1e308, -1e308, 1e-308]),
)
not_numbers = st.one_of(st.none(), st.booleans(), st.text(max_size=4), st.just([]), st.just({}))
values = st.one_of(numbers, numbers, numbers, not_numbers)


@st.composite
def flat_points(draw, counts):
    count = draw(st.sampled_from(counts))
    points = []
    for _ in range(count):
        points += [draw(numbers), draw(numbers), draw(st.one_of(st.floats(0, 1), numbers))]
    if draw(st.integers(0, 9)) == 0:  # a stray entry: a non-number, or a length not a multiple of 3
        if points and draw(st.booleans()):
            points[draw(st.integers(0, len(points) - 1))] = draw(not_numbers)
        else:
            points.append(draw(numbers))
    return points


@st.composite
def person(draw):
    entry = {}
    keys = {
        "pose_keypoints_2d": BODY_COUNTS + ODD_COUNTS[:2],
        "hand_left_keypoints_2d": (0, 21, 20),
        "hand_right_keypoints_2d": (0, 21),
        "face_keypoints_2d": (0, 68, 70, 69),
    }
    for key, counts in keys.items():
        if draw(st.integers(0, 5)):
            entry[key] = draw(flat_points(counts))
        elif draw(st.booleans()):
            entry[key] = draw(values)  # not even a list
    if draw(st.booleans()):
        entry["person_id"] = draw(st.one_of(st.just([-1]), values))
    return entry


people = st.lists(st.one_of(person(), person(), person(), values), max_size=3)


@st.composite
def openpose_frame(draw):
    frame = {"people": draw(people)}
    if draw(st.integers(0, 3)) == 0:
        frame["version"] = draw(st.one_of(st.just(1.3), values))
    if draw(st.integers(0, 2)) == 0:  # a ComfyUI frame carries its canvas
        frame["canvas_width"] = draw(st.one_of(st.integers(-5, 5000), values))
        frame["canvas_height"] = draw(st.one_of(st.integers(-5, 5000), values))
    return frame


json_anything = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), st.integers(), st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12,
)

documents = st.one_of(
    openpose_frame(),
    st.lists(openpose_frame(), max_size=4),  # ComfyUI
    st.lists(st.one_of(openpose_frame(), json_anything), max_size=3),
    json_anything,
)


def dump(document) -> str:
    # JSON as a detector or a hand-edited file may hold it: NaN/Infinity literals included.
    return json.dumps(document, allow_nan=True)


# A standing COCO-18 person on a 640x480 canvas: the base of clips that mostly import.
_STANDING = [(320, 100), (320, 140), (290, 140), (280, 200), (275, 250), (350, 140), (360, 200),
             (365, 250), (300, 250), (300, 330), (300, 410), (340, 250), (340, 330), (340, 410),
             (315, 92), (325, 92), (308, 96), (332, 96)]
_SPOILERS = st.sampled_from([float("nan"), float("inf"), -1.0, 0.0, 1e308, -1e9, 1e6])


@st.composite
def plausible_clip(draw):
    """Frames of one (sometimes two) people near a standing pose, moving a little, with spoilt
    values, missing points, missing people and odd extra parts scattered in."""
    frames = []
    count = draw(st.integers(1, 8))
    dx, dy = draw(st.floats(-3, 3)), draw(st.floats(-3, 3))
    for index in range(count):
        people = []
        for person_index in range(draw(st.integers(0, 2)) if index else 1):
            body = []
            for x, y in _STANDING:
                shift = 40 * person_index
                body += [x + shift + dx * index + draw(st.floats(-2, 2)), y + dy * index + draw(st.floats(-2, 2)),
                         draw(st.floats(0, 1))]
            for _ in range(draw(st.integers(0, 3))):
                body[draw(st.integers(0, len(body) - 1))] = draw(_SPOILERS)
            entry = {"pose_keypoints_2d": body}
            if draw(st.integers(0, 3)) == 0:
                entry["hand_left_keypoints_2d"] = draw(flat_points((21,)))
            if draw(st.integers(0, 3)) == 0:
                entry["face_keypoints_2d"] = draw(flat_points((70, 68)))
            people.append(entry)
        frames.append({"people": people})
    return frames if count > 1 or draw(st.booleans()) else frames[0]
