"""Tiny stand-ins for DWPose's two ONNX models, written with ``onnx.helper``, for offline tests.

They have the real models' names and interfaces:

- ``yolox_l.onnx``: input ``images`` (1, 3, 640, 640), output ``output`` (1, 8400, 85): raw
  YOLOX rows (box regression, objectness, 80 class probabilities) for the 80x80, 40x40 and
  20x20 anchor grids.
- ``dw-ll_ucoco_384.onnx``: input ``input`` (batch, 3, 384, 288), outputs ``simcc_x``
  (batch, 133, 576) and ``simcc_y`` (batch, 133, 768).

Their outputs are constants, except for one switch each that reads one input pixel, so a test
can tell that the picture reached the model the way the real one wants it:

- a ``TinyBox`` with ``gated=True`` has its objectness multiplied by the detector input's
  top-left pixel, channel 0, / 255 (BGR order: the frame's blue);
- ``TinyPose.gate_keypoint``'s x peak is ``gate_gain`` times the pose input's centre pixel,
  channel 0 (normalised red: (red - 123.675) / 58.395), so a blue person loses that point.

So a test knows exactly where each box and keypoint must land in frame pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posebridge.backend.extract.dwpose import DETECTOR_FILE, POSE_FILE
from posebridge.backend.extract.dwpose_decode import DETECTOR_SIZE, DETECTOR_STRIDES, POSE_SIZE, SIMCC_SPLIT_RATIO

CLASSES = 80
KEYPOINTS = 133
OPSET = 17
IR_VERSION = 8  # onnxruntime reads it whatever its version


@dataclass(frozen=True)
class TinyBox:
    """One detection, placed on the anchor whose cell holds the box centre at ``stride``."""

    box: tuple[float, float, float, float]  # x1 y1 x2 y2 in detector-input (640x640) pixels
    score: float  # objectness; the class probability is 1
    label: int = 0  # COCO class, 0 = person
    stride: int = 16
    gated: bool = False


def anchor_row(box: TinyBox) -> tuple[int, np.ndarray]:
    """(anchor index, its first 4 raw values) that decode to ``box``."""
    x1, y1, x2, y2 = box.box
    cx, cy, width, height = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    offset = 0
    for stride in DETECTOR_STRIDES:
        cols = DETECTOR_SIZE[1] // stride
        if stride == box.stride:
            gx, gy = int(cx // stride), int(cy // stride)
            regression = [cx / stride - gx, cy / stride - gy, np.log(width / stride), np.log(height / stride)]
            return offset + gy * cols + gx, np.array(regression, np.float32)
        offset += (DETECTOR_SIZE[0] // stride) * cols
    raise ValueError(f"stride {box.stride} is not one of {DETECTOR_STRIDES}")


@dataclass
class TinyPose:
    """Where each of the 133 SimCC vectors peaks (bins: 2 per input pixel) and how high."""

    x_bins: np.ndarray
    y_bins: np.ndarray
    x_peaks: np.ndarray
    y_peaks: np.ndarray
    gate_keypoint: int | None = 0
    gate_gain: float = 0.2

    def score(self, keypoint: int) -> float:
        """The score of an ungated keypoint: the smaller peak."""
        return float(min(self.x_peaks[keypoint], self.y_peaks[keypoint]))


def default_pose() -> TinyPose:
    """Every keypoint at its own bin; scores 0.8, except l_eye (index 1) at 0.25 (under
    DWPose's 0.3: absent) and r_eye (2) at 1.4 (clipped to 1)."""
    k = np.arange(KEYPOINTS)
    x_bins = 40 + (k * 37) % 500
    y_bins = 60 + (k * 53) % 650
    x_peaks = np.full(KEYPOINTS, 0.9, np.float32)
    y_peaks = np.full(KEYPOINTS, 0.8, np.float32)
    x_peaks[1], y_peaks[1] = 0.25, 0.7
    x_peaks[2], y_peaks[2] = 1.7, 1.4
    return TinyPose(x_bins, y_bins, x_peaks, y_peaks)


def _model(nodes, inputs, outputs, initializers, name: str):
    from onnx import checker, helper

    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="posebridge-tiny"
    )
    model.ir_version = IR_VERSION
    checker.check_model(model)
    return model


def _const(name: str, values):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(values), name)


def _gate_nodes(source: str, starts, ends, scale: float, out: str):
    """Nodes reading one pixel of ``source`` into ``out`` (batch, 1, 1) times ``scale``."""
    from onnx import helper

    prefix = out + "_"
    initializers = [
        _const(prefix + "starts", np.array(starts, np.int64)),
        _const(prefix + "ends", np.array(ends, np.int64)),
        _const(prefix + "scale", np.array(scale, np.float32)),
        _const(prefix + "shape", np.array([-1, 1, 1], np.int64)),
    ]
    nodes = [
        helper.make_node("Slice", [source, prefix + "starts", prefix + "ends"], [prefix + "pixel"]),
        helper.make_node("Mul", [prefix + "pixel", prefix + "scale"], [prefix + "scaled"]),
        helper.make_node("Reshape", [prefix + "scaled", prefix + "shape"], [out]),
    ]
    return nodes, initializers


def _constant_plus_gated(name: str, constant: np.ndarray, gated: np.ndarray, gate: str):
    """Nodes computing ``name`` = constant + gated * gate (broadcast over the batch)."""
    from onnx import helper

    nodes = [
        helper.make_node("Mul", [name + "_gated", gate], [name + "_switched"]),
        helper.make_node("Add", [name + "_constant", name + "_switched"], [name]),
    ]
    return nodes, [_const(name + "_constant", constant), _const(name + "_gated", gated)]


def write_tiny_detector(path, boxes) -> Path:
    """A YOLOX stand-in whose output decodes to ``boxes`` (TinyBox list)."""
    from onnx import TensorProto, helper

    anchors = sum((DETECTOR_SIZE[0] // s) * (DETECTOR_SIZE[1] // s) for s in DETECTOR_STRIDES)
    constant = np.zeros((1, anchors, 5 + CLASSES), np.float32)
    gated = np.zeros_like(constant)
    used = set()
    for box in boxes:
        index, regression = anchor_row(box)
        if index in used:
            raise ValueError(f"two tiny boxes on anchor {index}: give one another stride")
        used.add(index)
        constant[0, index, :4] = regression
        constant[0, index, 5 + box.label] = 1.0
        (gated if box.gated else constant)[0, index, 4] = box.score
    gate_nodes, gate_init = _gate_nodes("images", [0, 0, 0, 0], [1, 1, 1, 1], 1 / 255, "blue")
    out_nodes, out_init = _constant_plus_gated("output", constant, gated, "blue")
    model = _model(
        gate_nodes + out_nodes,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *DETECTOR_SIZE])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, anchors, 5 + CLASSES])],
        gate_init + out_init, "tiny_yolox",
    )
    return _save(model, path)


def _simcc(bins: np.ndarray, peaks: np.ndarray, length: int) -> np.ndarray:
    vectors = np.zeros((1, KEYPOINTS, length), np.float32)
    vectors[0, np.arange(KEYPOINTS), bins] = peaks
    return vectors


def write_tiny_pose(path, pose: TinyPose | None = None, dynamic_batch: bool = False) -> Path:
    """An RTMPose stand-in answering ``pose`` for every crop; batch fixed at 1 unless
    ``dynamic_batch`` (the real export's batch is not documented: the extractor takes both)."""
    from onnx import TensorProto, helper

    pose = pose or default_pose()
    height, width = POSE_SIZE
    x_len, y_len = int(width * SIMCC_SPLIT_RATIO), int(height * SIMCC_SPLIT_RATIO)
    x_peaks = np.asarray(pose.x_peaks, np.float32).copy()
    x_gated = np.zeros((1, KEYPOINTS, x_len), np.float32)
    if pose.gate_keypoint is not None:
        x_gated[0, pose.gate_keypoint, pose.x_bins[pose.gate_keypoint]] = pose.gate_gain
        x_peaks[pose.gate_keypoint] = 0.0
    gate_nodes, gate_init = _gate_nodes(
        "input", [0, 0, height // 2, width // 2], [2**62, 1, height // 2 + 1, width // 2 + 1], 1.0, "red"
    )
    x_nodes, x_init = _constant_plus_gated("simcc_x", _simcc(pose.x_bins, x_peaks, x_len), x_gated, "red")
    y_constant = _simcc(pose.y_bins, pose.y_peaks, y_len)
    y_nodes, y_init = _constant_plus_gated("simcc_y", y_constant, np.zeros_like(y_constant), "red")
    batch = "batch" if dynamic_batch else 1
    model = _model(
        gate_nodes + x_nodes + y_nodes,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, height, width])],
        [
            helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, [batch, KEYPOINTS, x_len]),
            helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, [batch, KEYPOINTS, y_len]),
        ],
        gate_init + x_init + y_init, "tiny_rtmpose",
    )
    return _save(model, path)


def _save(model, path) -> Path:
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


# One person standing in a 1280x720 frame (letterbox ratio 0.5): frame box (400, 100)-(560, 420).
DEFAULT_BOXES = (TinyBox((200.0, 50.0, 280.0, 210.0), 0.9),)


def write_tiny_dwpose(folder, boxes=DEFAULT_BOXES, pose: TinyPose | None = None,
                      dynamic_batch: bool = False) -> Path:
    """Both stand-ins under their real file names in ``folder`` (a model_dir for the extractor)."""
    folder = Path(folder)
    write_tiny_detector(folder / DETECTOR_FILE, boxes)
    write_tiny_pose(folder / POSE_FILE, pose, dynamic_batch)
    return folder
