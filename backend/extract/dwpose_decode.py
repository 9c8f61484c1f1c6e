"""DWPose's arithmetic around its two ONNX models, in numpy: pictures in, frame pixels out.

The detector (YOLOX-L, ``yolox_l.onnx``) takes a 640x640 letterbox: the frame scaled by one
ratio so it fits, placed top-left, the rest grey (114), channels in BGR order and 0-255 (YOLOX
and mmdet train on OpenCV's BGR pictures, no mean/std). It answers (1, 8400, 85): one row per
anchor of the 80x80, 40x40 and 20x20 grids (strides 8, 16, 32), each row the raw box
regression (dx, dy, log w, log h: centre = (grid + d) * stride, size = exp(log) * stride),
the objectness and the 80 COCO class probabilities (both already through a sigmoid). A box's
score for a class is objectness * class probability; persons are class 0.

The pose model (RTMPose ``dw-ll_ucoco_384.onnx``) is top-down: each person box is padded by
1.25, widened or heightened to the input's 288:384 aspect ratio, and that region is warped to
288x384 (RGB, normalised with ImageNet's mean and std). It answers SimCC vectors: simcc_x
(people, 133, 576) and simcc_y (people, 133, 768), two bins per input pixel. A keypoint lies at
the argmax of each, divided by 2; its score is the smaller of the two maxima (not a
probability: the head is unnormalised, so it can exceed 1).

Resampling is bilinear with pixel centres on integer coordinates, as OpenCV's resize and
warpAffine do it; there is no rotation, so both are separable: one 1D interpolation per axis.
"""
from __future__ import annotations

import numpy as np

DETECTOR_SIZE = (640, 640)  # (height, width)
DETECTOR_STRIDES = (8, 16, 32)
LETTERBOX_FILL = 114.0
PERSON_CLASS = 0

POSE_SIZE = (384, 288)  # (height, width) of dw-ll_ucoco_384
BOX_PADDING = 1.25
SIMCC_SPLIT_RATIO = 2.0
# mmpose's data preprocessor for RTMPose, in RGB order.
POSE_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
POSE_STD = np.array([58.395, 57.12, 57.375], np.float32)


# --- resampling -----------------------------------------------------------------------------
def _taps(coords: np.ndarray, size: int, zero_outside: bool):
    """The two source indices and weights of linear interpolation at each coordinate.

    ``zero_outside``: neighbours outside the picture count as black (warpAffine's constant
    border); otherwise coordinates are clamped to the edge (resize)."""
    coords = np.asarray(coords, np.float64)
    if not zero_outside:
        coords = np.clip(coords, 0.0, size - 1)
    low = np.floor(coords)
    high_weight = coords - low
    low = low.astype(np.int64)
    high = low + 1
    low_weight = 1.0 - high_weight
    if zero_outside:
        low_weight = np.where((low >= 0) & (low < size), low_weight, 0.0)
        high_weight = np.where((high >= 0) & (high < size), high_weight, 0.0)
    return (
        np.clip(low, 0, size - 1), np.clip(high, 0, size - 1),
        low_weight.astype(np.float32), high_weight.astype(np.float32),
    )


def sample_bilinear(image: np.ndarray, xs: np.ndarray, ys: np.ndarray, zero_outside: bool) -> np.ndarray:
    """(len(ys), len(xs), channels) float32: ``image`` at every (xs[j], ys[i]), bilinear.

    Separable: whole rows first (contiguous copies), then columns, gathered from the rows
    flattened with their channels (a take on the last axis is numpy's fastest gather); only
    the band of source columns the xs need is read."""
    height, width, channels = image.shape
    x_low, x_high, x_low_w, x_high_w = _taps(xs, width, zero_outside)
    y_low, y_high, y_low_w, y_high_w = _taps(ys, height, zero_outside)
    first = int(min(x_low.min(), x_high.min()))
    last = int(max(x_low.max(), x_high.max())) + 1
    band = image[:, first:last]
    rows = (
        band[y_low].astype(np.float32) * y_low_w[:, None, None]
        + band[y_high].astype(np.float32) * y_high_w[:, None, None]
    ).reshape(len(y_low), -1)
    channel = np.arange(channels)
    low = np.take(rows, ((x_low - first)[:, None] * channels + channel).ravel(), axis=1)
    high = np.take(rows, ((x_high - first)[:, None] * channels + channel).ravel(), axis=1)
    out = low * np.repeat(x_low_w, channels) + high * np.repeat(x_high_w, channels)
    return out.reshape(len(y_low), len(x_low), channels)


# --- detector -------------------------------------------------------------------------------
def letterbox(rgb: np.ndarray, size=DETECTOR_SIZE) -> tuple[np.ndarray, float]:
    """The detector's input (1, 3, H, W) float32, BGR 0-255, and the ratio frame -> input."""
    height, width = rgb.shape[:2]
    ratio = min(size[0] / height, size[1] / width)
    new_height, new_width = int(height * ratio), int(width * ratio)
    # OpenCV's INTER_LINEAR: destination pixel centre (d + 0.5) maps to source (d + 0.5) * s - 0.5.
    xs = (np.arange(new_width) + 0.5) * (width / new_width) - 0.5
    ys = (np.arange(new_height) + 0.5) * (height / new_height) - 0.5
    canvas = np.full((3, size[0], size[1]), LETTERBOX_FILL, np.float32)
    resized = sample_bilinear(rgb, xs, ys, zero_outside=False)
    canvas[:, :new_height, :new_width] = resized[:, :, ::-1].transpose(2, 0, 1)
    return canvas[None], ratio


def anchor_grid(size=DETECTOR_SIZE, strides=DETECTOR_STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Every anchor's grid cell (x, y) and stride, in the detector's output order (each stride's
    grid row by row, finest first)."""
    cells, cell_strides = [], []
    for stride in strides:
        rows, cols = size[0] // stride, size[1] // stride
        ys, xs = np.mgrid[0:rows, 0:cols]
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        cell_strides.append(np.full(rows * cols, stride))
    return np.concatenate(cells).astype(np.float32), np.concatenate(cell_strides).astype(np.float32)


def decode_yolox(output: np.ndarray, ratio: float, size=DETECTOR_SIZE, label: int = PERSON_CLASS):
    """(boxes (A, 4) x1 y1 x2 y2 in frame pixels, scores (A,)) of one class from YOLOX's raw
    (1, A, 5 + classes) output."""
    rows = np.asarray(output, np.float32).reshape(-1, output.shape[-1])
    cells, strides = anchor_grid(size)
    if rows.shape[0] != cells.shape[0]:
        raise ValueError(f"detector output has {rows.shape[0]} anchors, expected {cells.shape[0]} for {size}")
    centre = (rows[:, 0:2] + cells) * strides[:, None]
    half = np.exp(rows[:, 2:4]) * strides[:, None] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1) / ratio
    return boxes, rows[:, 4] * rows[:, 5 + label]


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of one x1 y1 x2 y2 box with each of ``others`` (continuous
    coordinates: no +1 on widths)."""
    top_left = np.maximum(box[:2], others[:, :2])
    bottom_right = np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(others[:, 2:] - others[:, :2], axis=1)
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes greedy non-maximum suppression keeps, best score first: a box goes
    when it overlaps a better kept one by more than ``iou_threshold``."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        order = rest[box_iou(boxes[best], boxes[rest]) <= iou_threshold]
    return np.array(keep, np.int64)


def person_boxes(output: np.ndarray, ratio: float, score_threshold: float = 0.3,
                 iou_threshold: float = 0.45, size=DETECTOR_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (P, 4), scores (P,)): the persons the detector found, best first.

    DWPose keeps person boxes scoring above 0.3 after NMS at IoU 0.45 (it suppresses from 0.1
    up, but a box under 0.3 only ever suppresses boxes scoring less, which go anyway)."""
    boxes, scores = decode_yolox(output, ratio, size)
    candidates = np.flatnonzero(scores > score_threshold)
    kept = candidates[nms(boxes[candidates], scores[candidates], iou_threshold)]
    return boxes[kept], scores[kept]


# --- pose model -----------------------------------------------------------------------------
def box_to_region(box, padding: float = BOX_PADDING, size=POSE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(centre (2,), scale (2,)): the frame region the pose model sees for one x1 y1 x2 y2 box:
    the box padded, then grown along one side to the input's aspect ratio (width / height)."""
    box = np.asarray(box, np.float64)
    centre = (box[:2] + box[2:]) / 2
    width, height = (box[2:] - box[:2]) * padding
    aspect = size[1] / size[0]
    if width > height * aspect:
        height = width / aspect
    else:
        width = height * aspect
    return centre, np.array([width, height])


def crop_to_frame(points: np.ndarray, centre, scale, size=POSE_SIZE) -> np.ndarray:
    """Points (..., 2) in pose-input pixels -> frame pixels (the warp below, inverted)."""
    centre, scale = np.asarray(centre, np.float64), np.asarray(scale, np.float64)
    input_wh = np.array([size[1], size[0]], np.float64)
    return np.asarray(points, np.float64) * (scale / input_wh) + centre - scale / 2


def frame_to_crop(points: np.ndarray, centre, scale, size=POSE_SIZE) -> np.ndarray:
    """Frame pixels (..., 2) -> pose-input pixels: the region's centre lands on the input's
    centre (width / 2, height / 2), its scale on the input's size."""
    centre, scale = np.asarray(centre, np.float64), np.asarray(scale, np.float64)
    input_wh = np.array([size[1], size[0]], np.float64)
    return (np.asarray(points, np.float64) - centre + scale / 2) * (input_wh / scale)


def crop_person(rgb: np.ndarray, centre, scale, size=POSE_SIZE) -> np.ndarray:
    """The pose model's input for one region: (3, H, W) float32, RGB, normalised; outside the
    frame is black before normalisation, as with warpAffine's default border."""
    height, width = size
    xs = crop_to_frame(np.stack([np.arange(width), np.zeros(width)], 1), centre, scale, size)[:, 0]
    ys = crop_to_frame(np.stack([np.zeros(height), np.arange(height)], 1), centre, scale, size)[:, 1]
    crop = sample_bilinear(rgb, xs, ys, zero_outside=True)
    return ((crop - POSE_MEAN) / POSE_STD).transpose(2, 0, 1)


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray,
                 split_ratio: float = SIMCC_SPLIT_RATIO) -> tuple[np.ndarray, np.ndarray]:
    """(locations (N, K, 2) in pose-input pixels, scores (N, K)) from SimCC vectors
    (N, K, bins): the argmax bin / split ratio, and the smaller of the x and y maxima."""
    x_bins = np.argmax(simcc_x, axis=-1)
    y_bins = np.argmax(simcc_y, axis=-1)
    locations = np.stack([x_bins, y_bins], axis=-1).astype(np.float64) / split_ratio
    scores = np.minimum(np.max(simcc_x, axis=-1), np.max(simcc_y, axis=-1))
    return locations, scores
