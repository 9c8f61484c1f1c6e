"""The ``dwpose`` extractor: DWPose's whole-body model through onnxruntime, every person.

Two stages per picture (the arithmetic is in ``dwpose_decode``): YOLOX-L finds the persons,
then the RTMPose model ``dw-ll_ucoco_384`` places COCO-WholeBody's 133 points in each box
(17 body, 6 feet, 68 face, 21 left hand, 21 right hand). No torch, no mmcv, no OpenCV.

The two model files come from the Hugging Face repository ``yzd-v/DWPose``: from a local folder
(``model_dir``, the CLI's ``--dwpose-dir``) holding both, or else from the user's Hugging Face
cache (``HF_HUB_CACHE``), which this module only reads, never downloads into.

Points map to the import layout by name; neck and mid-hip are the midpoints of the shoulders
and of the hips, the face's two pupils are the body's eyes (as ComfyUI's DWPose node pads the
68 face points to OpenPose's 70). A point's confidence is its SimCC score clipped to [0, 1];
points scoring 0.3 or less are absent, DWPose's own cut.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...pose.layouts import DWPOSE133, IMPORT
from . import dwpose_decode as decode
from .base import POINTS, ExtractionError, Extractor, ExtractorInfo, no_people, set_midpoint

MODEL_REPO = "yzd-v/DWPose"
DETECTOR_FILE = "yolox_l.onnx"
POSE_FILE = "dw-ll_ucoco_384.onnx"
KEYPOINT_THRESHOLD = 0.3
BOX_THRESHOLD = 0.3
NMS_IOU = 0.45
PARTS = ("body", "hands", "face")

# IMPORT index of each of the 133 points, and which import parts each extractor part owns.
_TO_IMPORT = np.array([IMPORT.index(name) for name in DWPOSE133.points])
_PART_SLICES = {
    "hands": [IMPORT.part("hand_left"), IMPORT.part("hand_right")],
    "face": [IMPORT.part("face")],
}
_HOW_TO_GET = (
    f"download both files with `hf download {MODEL_REPO} {DETECTOR_FILE} {POSE_FILE}` "
    f"(into the Hugging Face cache), or put them in one folder and pass it as --dwpose-dir"
)


# --- model files ----------------------------------------------------------------------------
def hf_cache_dir() -> str:
    """The Hugging Face hub cache folder, read from the environment now (huggingface_hub reads
    it once, at import)."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return os.path.expanduser(os.environ[variable])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    try:
        from huggingface_hub import constants
    except ImportError:
        return os.path.join(os.path.expanduser("~"), ".cache", "huggingface", "hub")
    return constants.HF_HUB_CACHE


def _from_hf_cache(filename: str, cache_dir: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(MODEL_REPO, filename, cache_dir=cache_dir)
    # A str is a cached file; None or a "known missing" marker is not.
    return Path(found) if isinstance(found, str) and os.path.isfile(found) else None


def find_model_file(filename: str, model_dir=None) -> Path:
    """The path of one DWPose model file: in ``model_dir`` when given (only there), else in the
    Hugging Face cache. ExtractionError naming the file and where it was looked for."""
    if model_dir is not None:
        path = Path(model_dir).expanduser() / filename
        if path.is_file():
            return path
        folder = Path(model_dir).expanduser()
        raise ExtractionError(f"DWPose model file {filename} not found in {folder}: {_HOW_TO_GET}")
    cache_dir = hf_cache_dir()
    path = _from_hf_cache(filename, cache_dir)
    if path is None:
        raise ExtractionError(
            f"DWPose model file {filename} not found in the Hugging Face cache "
            f"({cache_dir}, repository {MODEL_REPO}): {_HOW_TO_GET}"
        )
    return path


# --- onnxruntime ----------------------------------------------------------------------------
def providers_for(device: str) -> list[str]:
    """CUDA when onnxruntime has it and the device is not "cpu"; the CPU otherwise (a CPU-only
    onnxruntime with device "cuda" falls back, and the extractor's note says so)."""
    if device not in ("auto", "cpu", "cuda"):
        raise ExtractionError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    import onnxruntime

    if device != "cpu" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _open_session(path: Path, providers: list[str]):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: CUDA fallback warnings go in the note instead
    try:
        return onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as error:  # onnxruntime raises its own exception types
        raise ExtractionError(f"cannot load DWPose model {path}: {error}") from error


def _input_size(session, default):
    """(height, width) of a session's image input, or ``default`` where the graph leaves them open."""
    shape = session.get_inputs()[0].shape
    if len(shape) == 4 and all(isinstance(side, int) for side in shape[2:]):
        return int(shape[2]), int(shape[3])
    return default


# --- the 133 points -> the import layout -----------------------------------------------------
def to_import(keypoints: np.ndarray, scores: np.ndarray, parts=PARTS,
              threshold: float = KEYPOINT_THRESHOLD) -> np.ndarray:
    """(people, len(IMPORT), 3) float32 from DWPose's (people, 133, 2) frame points and
    (people, 133) scores: present where the score exceeds ``threshold``, confidence clipped to
    [0, 1]; neck, mid-hip and the pupils derived; parts not asked for left absent."""
    people = np.zeros((len(keypoints), POINTS, 3), np.float32)
    present = scores > threshold
    people[:, _TO_IMPORT, :2] = np.where(present[..., None], keypoints, 0.0)
    people[:, _TO_IMPORT, 2] = np.where(present, np.clip(scores, 0.0, 1.0), 0.0)
    for part, slices in _PART_SLICES.items():
        if part not in parts:
            for piece in slices:
                people[:, piece.start:piece.stop] = 0.0
    for person in people:
        set_midpoint(person, "neck", "l_shoulder", "r_shoulder")
        set_midpoint(person, "mid_hip", "l_hip", "r_hip")
        if "face" in parts:
            for pupil, eye in (("r_pupil", "r_eye"), ("l_pupil", "l_eye")):
                person[IMPORT.index(pupil)] = person[IMPORT.index(eye)]
    return people


# --- the extractor --------------------------------------------------------------------------
class DWPoseExtractor(Extractor):
    def __init__(self, detector_path: Path, pose_path: Path, parts=PARTS, device: str = "auto"):
        providers = providers_for(device)
        self.parts = tuple(parts)
        self._detector = _open_session(detector_path, providers)
        self._pose = _open_session(pose_path, providers)
        self._detector_input = self._detector.get_inputs()[0].name
        self._detector_size = _input_size(self._detector, decode.DETECTOR_SIZE)
        self._pose_input = self._pose.get_inputs()[0].name
        self._pose_size = _input_size(self._pose, decode.POSE_SIZE)
        # A symbolic batch dimension takes every person in one run; a fixed 1 one at a time.
        self._pose_batches = not isinstance(self._pose.get_inputs()[0].shape[0], int)
        names = [output.name for output in self._pose.get_outputs()]
        self._simcc_outputs = ["simcc_x", "simcc_y"] if {"simcc_x", "simcc_y"} <= set(names) else names[:2]
        used = self._detector.get_providers()[0]
        where = "CUDA" if used == "CUDAExecutionProvider" else "the CPU"
        fallback = ""
        if device == "cuda" and where != "CUDA":
            fallback = " (CUDA was asked for but onnxruntime has none)"
        self.info = ExtractorInfo(
            "dwpose", True,
            f"DWPose (YOLOX-L + dw-ll_ucoco_384) on {where}{fallback}: every person the detector finds",
        )

    def find_people(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(boxes (P, 4) x1 y1 x2 y2 in frame pixels, scores (P,)), best first."""
        image, ratio = decode.letterbox(rgb, self._detector_size)
        output = self._detector.run(None, {self._detector_input: image})[0]
        return decode.person_boxes(output, ratio, BOX_THRESHOLD, NMS_IOU, self._detector_size)

    def estimate(self, rgb: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(keypoints (P, 133, 2) in frame pixels, scores (P, 133)) for each box."""
        regions = [decode.box_to_region(box, decode.BOX_PADDING, self._pose_size) for box in boxes]
        crops = np.stack([decode.crop_person(rgb, c, s, self._pose_size) for c, s in regions])
        if self._pose_batches:
            simcc_x, simcc_y = self._pose.run(self._simcc_outputs, {self._pose_input: crops})
        else:
            runs = [self._pose.run(self._simcc_outputs, {self._pose_input: crop[None]}) for crop in crops]
            simcc_x = np.concatenate([run[0] for run in runs])
            simcc_y = np.concatenate([run[1] for run in runs])
        split_ratio = simcc_x.shape[-1] / self._pose_size[1]
        locations, scores = decode.decode_simcc(simcc_x, simcc_y, split_ratio)
        keypoints = np.stack([
            decode.crop_to_frame(points, c, s, self._pose_size) for points, (c, s) in zip(locations, regions)
        ])
        return keypoints, scores

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ExtractionError(f"expected an RGB picture (height, width, 3), got shape {rgb.shape}")
        boxes, _ = self.find_people(rgb)
        if not len(boxes):
            return no_people()
        keypoints, scores = self.estimate(rgb, boxes)
        return to_import(keypoints, scores, self.parts)

    def close(self) -> None:
        self._detector = self._pose = None


def why_unavailable(model_dir=None) -> str | None:
    """Why ``create`` would fail (onnxruntime or a model file missing), or None when it would
    find everything; loads nothing (for /health's list of extractors)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "onnxruntime is not installed in the backend's Python"
    try:
        find_model_file(DETECTOR_FILE, model_dir)
        find_model_file(POSE_FILE, model_dir)
    except ExtractionError as error:
        return str(error)
    return None


def create(parts=PARTS, model_dir=None, device: str = "auto") -> DWPoseExtractor:
    """The extractor, its model files from ``model_dir`` or the Hugging Face cache."""
    detector = find_model_file(DETECTOR_FILE, model_dir)
    pose = find_model_file(POSE_FILE, model_dir)
    return DWPoseExtractor(detector, pose, parts=parts, device=device)
