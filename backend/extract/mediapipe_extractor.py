"""The ``mediapipe`` extractor: MediaPipe's holistic (or pose-only) landmarker, mapped to OpenPose.

Runs on the CPU from the ``mediapipe`` wheel alone: the wheel carries the pose (full), hand, face
mesh and iris models, so nothing is downloaded (only ``model_complexity=1`` ships; 0 and 2 would
be fetched from the internet, so they are never asked for). The legacy solutions API tracks
between calls (``static_image_mode=False``): feed one video's frames in order.

What maps to what (``pose.layouts.IMPORT``):
- body: the 33 BlazePose landmarks give COCO-18 by name, the neck is the mid-shoulders and
  ``mid_hip`` the mid-hips (each with the lower confidence of its two), the heels are heels and
  BlazePose's ``foot_index`` (the tip of the foot) is the big toe; there is no small toe and no
  head top. Confidence is BlazePose's visibility (already a probability); a point below
  ``VISIBILITY_FLOOR`` or outside the picture is absent, as OpenPose leaves unseen points out.
- hands: holistic's ``left_hand_landmarks`` are the person's left hand (it crops them around the
  pose's left wrist), 21 points in OpenPose's order. Hand landmarks carry no confidence: a found
  hand's points get ``HAND_CONFIDENCE`` (its presence).
- face: 468 mesh vertices -> iBUG-68 (``mediapipe_face.FACE68_FROM_MESH``), pupils from the iris
  centres (refined mesh only); found faces' points get ``FACE_CONFIDENCE``.
MediaPipe sees one person, the most prominent one (highest detection score, then tracked).
Pictures go in at full size: scaling 1080x1920 frames down to 960 or 640 px first gave no speed
(MediaPipe crops and scales its model inputs itself; the resize costs what it saves) and moved
the points by 1-2 px.
"""
from __future__ import annotations

import numpy as np

from ...pose.layouts import IMPORT
from .base import POINTS, ExtractionError, Extractor, ExtractorInfo, no_people, set_midpoint
from .mediapipe_face import FACE68_FROM_MESH, PUPILS_FROM_MESH, REFINED_MESH_SIZE

NOTE = "MediaPipe sees one person: the most prominent"
# Below this BlazePose visibility a body point is left out (OpenPose leaves out what it cannot
# see; low-visibility BlazePose points are guesses from the rest of the body).
VISIBILITY_FLOOR = 0.1
# Hand and face landmarks carry no per-point score: a found hand or face is present, fully.
HAND_CONFIDENCE = 1.0
# MediaPipe's own landmark smoothing is off: it times frames as 30 fps whatever the video's rate
# and lags behind the body. On the pose2sim clip (60 fps) against OpenPose it lowered body
# PCK@0.1 from 0.867 to 0.844; without it the raw jitter (4.6 px, median |acceleration|) stays
# below OpenPose's own (5.2 px), and video import smooths with zero lag (retarget/cleaning.py).
SMOOTH_LANDMARKS = False
FACE_CONFIDENCE = 1.0

# BlazePose landmark index for each IMPORT body point it gives directly.
_BODY_FROM_BLAZEPOSE = {
    "nose": 0,
    "l_eye": 2, "r_eye": 5, "l_ear": 7, "r_ear": 8,
    "l_shoulder": 11, "r_shoulder": 12, "l_elbow": 13, "r_elbow": 14, "l_wrist": 15, "r_wrist": 16,
    "l_hip": 23, "r_hip": 24, "l_knee": 25, "r_knee": 26, "l_ankle": 27, "r_ankle": 28,
    "l_heel": 29, "r_heel": 30, "l_big_toe": 31, "r_big_toe": 32,
}
_BODY_TARGETS = np.array([IMPORT.index(name) for name in _BODY_FROM_BLAZEPOSE])
_BODY_SOURCES = np.array(list(_BODY_FROM_BLAZEPOSE.values()))
_HAND_LEFT = IMPORT.part("hand_left")
_HAND_RIGHT = IMPORT.part("hand_right")
_FACE = IMPORT.part("face")
_FACE68 = np.array(FACE68_FROM_MESH)
_PUPILS = np.array(PUPILS_FROM_MESH)


def create(parts=("body", "hands", "face"), model_dir=None, device: str = "auto") -> "MediaPipeExtractor":
    """The extractor for ``parts``. ``model_dir`` is not used (the models ship in the wheel);
    MediaPipe's Python solutions run on the CPU whatever ``device`` says."""
    return MediaPipeExtractor(tuple(parts))


class MediaPipeExtractor(Extractor):
    info = ExtractorInfo("mediapipe", multi_person=False, note=NOTE)

    def __init__(self, parts=("body", "hands", "face")):
        try:
            from mediapipe.python.solutions import holistic, pose
        except ImportError as error:
            raise ExtractionError(
                f"the mediapipe extractor needs MediaPipe ({error}); install the backend with "
                "pip install '.[backend]'"
            ) from None
        self.parts = tuple(parts)
        self._world = None
        self._hands = "hands" in self.parts
        self._face = "face" in self.parts
        if self._hands or self._face:
            # Holistic = pose + hand and face crops taken around the pose's wrists and head.
            self._solution = holistic.Holistic(
                static_image_mode=False, model_complexity=1, smooth_landmarks=SMOOTH_LANDMARKS,
                refine_face_landmarks=self._face,
            )
        else:
            self._solution = pose.Pose(
                static_image_mode=False, model_complexity=1, smooth_landmarks=SMOOTH_LANDMARKS
            )

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        rgb = _checked_rgb(rgb)
        height, width = rgb.shape[:2]
        results = self._solution.process(rgb)
        self._world = None
        if results.pose_landmarks is None:
            return no_people()
        self._world = _world_body(results.pose_world_landmarks)
        person = np.zeros((POINTS, 3), np.float32)
        _put_body(person, _landmarks(results.pose_landmarks, visibility=True), width, height)
        if self._hands:
            for part, hand in ((_HAND_LEFT, results.left_hand_landmarks), (_HAND_RIGHT, results.right_hand_landmarks)):
                _put_points(person, part.start, hand, None, HAND_CONFIDENCE, width, height)
        if self._face and results.face_landmarks is not None:
            mesh = _landmarks(results.face_landmarks)
            _put_points(person, _FACE.start, mesh, _FACE68, FACE_CONFIDENCE, width, height)
            if len(mesh) >= REFINED_MESH_SIZE:
                _put_points(person, _FACE.start + 68, mesh, _PUPILS, FACE_CONFIDENCE, width, height)
        return person[None]

    def world(self) -> np.ndarray | None:
        return self._world

    def reset(self) -> None:
        self._solution.reset()

    def close(self) -> None:
        if self._solution is not None:
            self._solution.close()
            self._solution = None


def _checked_rgb(rgb) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ExtractionError(f"expected an (H, W, 3) uint8 RGB picture, got {rgb.shape} {rgb.dtype}")
    return np.ascontiguousarray(rgb)


def _landmarks(landmark_list, visibility: bool = False) -> np.ndarray:
    """(n, 3): x, y normalised to the picture, and visibility (or 1)."""
    if visibility:
        return np.array([(p.x, p.y, p.visibility) for p in landmark_list.landmark], np.float32)
    return np.array([(p.x, p.y, 1.0) for p in landmark_list.landmark], np.float32)


def _inside(xy: np.ndarray) -> np.ndarray:
    return (xy[:, 0] >= 0) & (xy[:, 0] <= 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= 1)


def _put_body(person: np.ndarray, blaze: np.ndarray, width: int, height: int) -> None:
    points = blaze[_BODY_SOURCES]
    keep = _inside(points) & (points[:, 2] >= VISIBILITY_FLOOR)
    person[_BODY_TARGETS, 0] = points[:, 0] * width
    person[_BODY_TARGETS, 1] = points[:, 1] * height
    person[_BODY_TARGETS, 2] = np.where(keep, np.clip(points[:, 2], 0.0, 1.0), 0.0)
    person[_BODY_TARGETS[~keep], :2] = 0.0
    set_midpoint(person, "neck", "l_shoulder", "r_shoulder")
    set_midpoint(person, "mid_hip", "l_hip", "r_hip")


def _world_body(world_landmarks) -> np.ndarray | None:
    """BlazePose's world landmarks (metres about the mid-hip, camera-aligned: x right, y down, z
    away, checked against the picture's limb directions) as (1, POINTS, 4) body points, the
    confidence its visibility (absent below ``VISIBILITY_FLOOR``); neck and mid-hip midpoints."""
    if world_landmarks is None:
        return None
    blaze = np.array([(p.x, p.y, p.z, p.visibility) for p in world_landmarks.landmark], np.float32)[_BODY_SOURCES]
    out = np.zeros((1, POINTS, 4), np.float32)
    keep = blaze[:, 3] >= VISIBILITY_FLOOR
    out[0, _BODY_TARGETS] = np.where(keep[:, None], blaze, 0.0)
    out[0, _BODY_TARGETS, 3] = np.where(keep, np.clip(blaze[:, 3], 0.0, 1.0), 0.0)
    set_midpoint(out[0], "neck", "l_shoulder", "r_shoulder")
    set_midpoint(out[0], "mid_hip", "l_hip", "r_hip")
    return out


def _put_points(person, start: int, landmarks, pick, confidence: float, width: int, height: int) -> None:
    """Write landmarks (picked by ``pick`` indices, or all) at ``start``; off-picture ones absent."""
    if landmarks is None:
        return
    points = landmarks if isinstance(landmarks, np.ndarray) else _landmarks(landmarks)
    if pick is not None:
        points = points[pick]
    keep = _inside(points)
    stop = start + len(points)
    person[start:stop, 0] = np.where(keep, points[:, 0] * width, 0.0)
    person[start:stop, 1] = np.where(keep, points[:, 1] * height, 0.0)
    person[start:stop, 2] = np.where(keep, confidence, 0.0)
