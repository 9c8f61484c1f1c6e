"""Pose adherence: how closely the people detected in generated frames hold the expected pose.

``compare(expected, detected)`` takes two KeypointSequences in pixels of the same picture size:
the keypoints the pose maps were drawn from, and what an extractor found in the generated frames.
It returns the ``adherence.json`` document (see ``compare``). Pure numpy; no detector here
(``adherence_run.check_adherence`` runs one, ``adherence_report`` draws the picture).

Definitions (also written into the report as ``pck_reference``):

* body: the 17 points of COCO-18 a pose map draws other than the neck (detectors derive the
  neck as the shoulders' midpoint, rigs place it by their own convention). A joint is correct when it lies within
  ``BODY_PCK`` x the expected person's torso length (shoulder midpoint to hip midpoint, the neck
  or mid-hip point standing in for a midpoint) of where it should be. In a frame without a
  torso, the median torso of the same person slot over the shot stands in, else ``BOX_TORSO``
  x the larger side of the box around the person's body points.
* hands: the 21 points of each hand, within ``HAND_PCK`` x the hand's size (the larger side of
  the box around the expected hand's points; ``HAND_OF_TORSO`` x the torso with < 5 points).
* PCK counts every joint the expected pose has; one the detector did not find is wrong. The
  pixel error is the mean distance over the joints both have.
* people: each expected person is matched to the nearest detected one (mean distance of their
  common body joints, greedily, nearest pairs first); a detection further than ``MATCH_GATE`` x
  the person's size is somebody else, and an unmatched person is missing (all joints wrong).
* a limb pair (arms, legs) is swapped when labelling the detected limbs the other way round
  costs less than ``SWAP_RATIO`` of the straight labelling and the straight one is off by more
  than the PCK distance.
* jitter: the mean length of the second difference (p[t-1] - 2 p[t] + p[t+1]) of body joints
  present in three successive checked frames, expected and detected alike; the extra jitter
  (detected - expected, never below 0) is flicker the generation added.
"""
from __future__ import annotations

import numpy as np

from ..pose.keypoints import KeypointSequence
from ..pose.layouts import COCO18, IMPORT

REPORT_FORMAT = "posebridge-adherence"
REPORT_VERSION = 1
BODY_PCK = 0.1
HAND_PCK = 0.2
BOX_TORSO = 0.3  # a standing person's torso is about 0.3 of their height
HAND_OF_TORSO = 0.4
MIN_HAND_POINTS = 5
MATCH_GATE = 1.0
SWAP_RATIO = 0.5
WORST_FRAMES = 4

BODY = np.array([IMPORT.index(name) for name in COCO18.points if name != "neck"])
HANDS = {
    side: np.arange(IMPORT.part(side).start, IMPORT.part(side).stop) for side in ("hand_left", "hand_right")
}
LIMBS = {
    "arms": ("shoulder", "elbow", "wrist"),
    "legs": ("hip", "knee", "ankle"),
}
_LIMB_INDICES = {
    name: (np.array([IMPORT.index("l_" + s) for s in stems]), np.array([IMPORT.index("r_" + s) for s in stems]))
    for name, stems in LIMBS.items()
}
_I = IMPORT.index


def pck_reference() -> str:
    return (
        f"PCK is the fraction of the expected joints the detector found within a distance: body "
        f"(the 17 COCO-18 points but the neck) within {BODY_PCK:g} x the expected person's torso length (shoulder "
        f"midpoint to hip midpoint; when a frame lacks it, the person's median torso over the shot, "
        f"else {BOX_TORSO:g} x the larger side of their body box), hands (21 points each) within {HAND_PCK:g} x the hand's size (the larger "
        f"side of the expected hand's box). A joint the detector missed counts as wrong; pixel errors "
        f"are means over the joints both have, in pixels of the generated frames. The score is the "
        f"mean body PCK over the checked frames. A frame is flagged when its body PCK is below the "
        f"threshold, a limb pair is swapped or an expected person is missing."
    )


def _present(points: np.ndarray) -> np.ndarray:
    return points[..., 2] > 0


def _midpoint(person: np.ndarray, a: str, b: str, stand_in: str) -> np.ndarray | None:
    if person[_I(a), 2] > 0 and person[_I(b), 2] > 0:
        return (person[_I(a), :2] + person[_I(b), :2]) / 2
    if person[_I(stand_in), 2] > 0:
        return person[_I(stand_in), :2]
    return None


def _box_side(points: np.ndarray) -> float:
    """The larger side of the box around the present points (0 with fewer than two)."""
    xy = points[_present(points), :2]
    if len(xy) < 2:
        return 0.0
    return float((xy.max(axis=0) - xy.min(axis=0)).max())


def torso_length(person: np.ndarray) -> float:
    """Shoulder midpoint to hip midpoint in pixels; 0 when either is not visible."""
    shoulders = _midpoint(person, "l_shoulder", "r_shoulder", "neck")
    hips = _midpoint(person, "l_hip", "r_hip", "mid_hip")
    return float(np.hypot(*(shoulders - hips))) if shoulders is not None and hips is not None else 0.0


def body_size(person: np.ndarray, fallback: float = 0.0) -> float:
    """The length body PCK is relative to (see the module docstring), at least 1 px: the torso,
    else ``fallback`` (the person's torso elsewhere in the shot), else from the body's box."""
    torso = torso_length(person) or fallback or BOX_TORSO * _box_side(person[BODY])
    return max(torso, 1.0)


def shot_torsos(data: np.ndarray) -> np.ndarray:
    """(people,) the median visible torso of each person slot of (frames, people, points, 3)."""
    lengths = np.array([[torso_length(person) for person in frame] for frame in data]).reshape(data.shape[:2])
    return np.array([np.median(slot[slot > 0]) if (slot > 0).any() else 0.0 for slot in lengths.T])


def hand_size(hand: np.ndarray, torso: float) -> float:
    if np.count_nonzero(_present(hand)) >= MIN_HAND_POINTS:
        side = _box_side(hand)
        if side > 0:
            return side
    return HAND_OF_TORSO * torso


def _joint_distances(expected: np.ndarray, detected: np.ndarray | None):
    """Distance per joint (nan where the detection lacks it) for the expected joints only."""
    want = _present(expected)
    dist = np.full(len(expected), np.nan)
    if detected is not None:
        both = want & _present(detected)
        dist[both] = np.hypot(*(expected[both, :2] - detected[both, :2]).T)
    return dist[want]


def match_people(expected: np.ndarray, detected: np.ndarray) -> list[int | None]:
    """For each expected person (people, points, 3), the index of their detected person or None."""
    costs = []
    for e, person in enumerate(expected):
        gate = MATCH_GATE * max(_box_side(person[BODY]), body_size(person))
        for d, found in enumerate(detected):
            dist = _joint_distances(person[BODY], found[BODY])
            dist = dist[np.isfinite(dist)]
            if len(dist) and dist.mean() <= gate:
                costs.append((float(dist.mean()), e, d))
    matches: list[int | None] = [None] * len(expected)
    taken = set()
    for _, e, d in sorted(costs):
        if matches[e] is None and d not in taken:
            matches[e] = d
            taken.add(d)
    return matches


def limb_swaps(expected: np.ndarray, detected: np.ndarray, tolerance: float) -> list[str]:
    """The limb pairs whose detected left and right fit the expected pose better exchanged."""
    swapped = []
    for name, (left, right) in _LIMB_INDICES.items():
        usable = (_present(expected[left]) & _present(expected[right])
                  & _present(detected[left]) & _present(detected[right]))
        if np.count_nonzero(usable) < 2:
            continue
        el, er = expected[left[usable], :2], expected[right[usable], :2]
        dl, dr = detected[left[usable], :2], detected[right[usable], :2]
        straight = np.mean(np.hypot(*(el - dl).T) + np.hypot(*(er - dr).T)) / 2
        mirrored = np.mean(np.hypot(*(el - dr).T) + np.hypot(*(er - dl).T)) / 2
        if straight > tolerance and mirrored < SWAP_RATIO * straight:
            swapped.append(name)
    return swapped


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def _mean(values: list[np.ndarray]) -> float | None:
    values = np.concatenate(values) if values else np.zeros(0)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else None


def frame_figures(expected: np.ndarray, detected: np.ndarray, fallbacks=None) -> tuple[dict, list[int | None]]:
    """One frame's figures (without frame number and flag) and who matched whom.

    ``expected`` holds only people with body points; ``detected`` everybody the extractor found;
    ``fallbacks``, per expected person, the torso to use when this frame shows none."""
    fallbacks = np.zeros(len(expected)) if fallbacks is None else fallbacks
    matches = match_people(expected, detected)
    body_hits = body_total = hand_hits = hand_total = 0
    body_errors, hand_errors, swapped = [], [], set()
    for person, match, fallback in zip(expected, matches, fallbacks):
        found = detected[match] if match is not None else None
        torso = body_size(person, float(fallback))
        dist = _joint_distances(person[BODY], None if found is None else found[BODY])
        body_total += len(dist)
        body_hits += int(np.count_nonzero(dist <= BODY_PCK * torso))
        body_errors.append(dist)
        for hand in HANDS.values():
            dist = _joint_distances(person[hand], None if found is None else found[hand])
            hand_total += len(dist)
            hand_hits += int(np.count_nonzero(dist <= HAND_PCK * hand_size(person[hand], torso)))
            hand_errors.append(dist)
        if found is not None:
            swapped.update(limb_swaps(person, found, BODY_PCK * torso))
    figures = {
        "body_pck": _rate(body_hits, body_total),
        "body_error_px": _mean(body_errors),
        "hands_pck": _rate(hand_hits, hand_total),
        "hands_error_px": _mean(hand_errors),
        "swapped": sorted(swapped),
        "missing_person": any(m is None for m in matches),
        "people_expected": len(expected),
        "people_detected": len(detected),
    }
    return figures, matches


def _second_differences(track: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """Lengths of p[t-1] - 2 p[t] + p[t+1] for each joint present in all three frames of ``track``
    (frames, points, 3); nan elsewhere. Only triples of neighbouring frames count (the shot's
    smallest frame step on both sides): across a skipped frame the difference is motion, not
    jitter."""
    if len(track) < 3:
        return np.zeros((0, track.shape[1]))
    present = _present(track)
    steps = np.diff(numbers)
    neighbours = (steps[:-1] == steps.min()) & (steps[1:] == steps.min())
    ok = present[:-2] & present[1:-1] & present[2:] & neighbours[:, None]
    second = track[:-2, :, :2] - 2 * track[1:-1, :, :2] + track[2:, :, :2]
    return np.where(ok, np.hypot(second[..., 0], second[..., 1]), np.nan)


def jitter(expected_tracks: np.ndarray, detected_tracks: np.ndarray, numbers) -> dict:
    """Mean second-difference length of body joints (see the module docstring), px.

    Both are (frames, people, points, 3), detected matched to expected person by person, at the
    frame ``numbers``; only joints both have in all three frames of a triple of neighbouring
    frames count, so the two means are comparable."""
    numbers = np.asarray(numbers, np.int64)
    exp = _second_differences(expected_tracks[:, :, BODY].reshape(len(expected_tracks), -1, 3), numbers)
    det = _second_differences(detected_tracks[:, :, BODY].reshape(len(detected_tracks), -1, 3), numbers)
    both = np.isfinite(exp) & np.isfinite(det)
    if not both.any():
        return {"detected_px": None, "expected_px": None, "extra_px": None}
    detected, expected = float(det[both].mean()), float(exp[both].mean())
    return {
        "detected_px": round(detected, 3),
        "expected_px": round(expected, 3),
        "extra_px": round(max(0.0, detected - expected), 3),
    }


def _in_import(seq: KeypointSequence) -> KeypointSequence:
    return seq if seq.layout.points == IMPORT.points else seq.to_layout(IMPORT)


def _scaled(detected: KeypointSequence, canvas: tuple[int, int]) -> np.ndarray:
    data = detected.data.copy()
    if detected.canvas != canvas:
        data[..., 0] *= canvas[0] / detected.canvas[0]
        data[..., 1] *= canvas[1] / detected.canvas[1]
    return data


def _rounded(value, digits):
    return None if value is None else round(value, digits)


def _worst(frames: list[dict], count: int = WORST_FRAMES) -> list[int]:
    """Lowest body PCK first; ties: a missing person, then the larger pixel error."""
    def badness(entry):
        return (entry["body_pck"], not entry["missing_person"], -(entry["body_error_px"] or 0.0))
    return [entry["frame"] for entry in sorted(frames, key=badness)[:count]]


def _frame_entry(number: int, people: np.ndarray, found: np.ndarray, fallbacks, threshold: float):
    figures, matches = frame_figures(people, found, fallbacks)
    entry = {"frame": number}
    entry.update(figures)
    for key, digits in (("body_pck", 4), ("hands_pck", 4), ("body_error_px", 2), ("hands_error_px", 2)):
        entry[key] = _rounded(figures[key], digits)
    entry["flagged"] = bool(entry["body_pck"] < threshold or entry["swapped"] or entry["missing_person"])
    return entry, matches


def compare(
    expected: KeypointSequence, detected: KeypointSequence, threshold: float = 0.5, extractor: str | None = None
) -> dict:
    """The adherence.json document for ``detected`` against ``expected``, frame by frame.

    Frames are paired by frame number; ``detected`` is rescaled to ``expected``'s canvas when the
    two differ; ``extractor`` names the detector for the report. Expected frames without any
    person, or without a detected frame, are not scored (listed in ``skipped_frames``).
    Document: ``{"format", "version", "score", "threshold", "extractor", "frames": [{"frame",
    "body_pck", "body_error_px", "hands_pck", "hands_error_px", "swapped", "missing_person",
    "flagged", "people_expected", "people_detected"}], "worst_frames", "flagged_frames",
    "skipped_frames": [{"frame", "reason"}], "jitter": {"detected_px", "expected_px",
    "extra_px"}, "pck_reference", "notes"}``; None where a figure has nothing to measure
    (``hands_pck`` when the pose has no hands, the errors of a missing person)."""
    expected, detected = _in_import(expected), _in_import(detected)
    found_data = _scaled(detected, expected.canvas)
    found_at = {int(n): i for i, n in enumerate(detected.frame_numbers)}
    frames, skipped, notes, expected_tracks, detected_tracks = [], [], [], [], []
    torsos = shot_torsos(expected.data)
    for index, number in enumerate(expected.frame_numbers.tolist()):
        people = expected.data[index]
        kept = np.flatnonzero(_present(people[:, BODY]).any(axis=1))
        if not len(kept) or number not in found_at:
            reason = "no generated frame" if len(kept) else "no expected person"
            skipped.append({"frame": number, "reason": reason})
            continue
        found = found_data[found_at[number]]
        found = found[_present(found).any(axis=1)]
        entry, matches = _frame_entry(number, people[kept], found, torsos[kept], threshold)
        frames.append(entry)
        matched = np.zeros_like(people)  # the detections in the expected people's slots
        for slot, match in zip(kept, matches):
            if match is not None:
                matched[slot] = found[match]
        expected_tracks.append(people)
        detected_tracks.append(matched)
    extra_detected = sorted(set(found_at) - set(expected.frame_numbers.tolist()))
    if extra_detected:
        notes.append(f"{len(extra_detected)} generated frame(s) have no expected keypoints: not checked")
    if skipped:
        notes.append(f"{len(skipped)} frame(s) not scored (see skipped_frames)")
    if not frames:
        notes.append("no frame could be scored: the score is 0")
    if len(frames) < 3:
        notes.append("jitter needs three checked frames")
    shape = (0,) + expected.data.shape[1:]
    tracks = [np.array(t) if t else np.zeros(shape, np.float32) for t in (expected_tracks, detected_tracks)]
    scores = [entry["body_pck"] for entry in frames]
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "score": round(float(np.mean(scores)), 4) if scores else 0.0,
        "threshold": float(threshold),
        "extractor": extractor,
        "frames": frames,
        "worst_frames": _worst(frames),
        "flagged_frames": [entry["frame"] for entry in frames if entry["flagged"]],
        "skipped_frames": skipped,
        "jitter": jitter(*tracks, [entry["frame"] for entry in frames]),
        "pck_reference": pck_reference(),
        "notes": notes,
    }
