"""First-vs-last comparison sheet: did the generated look hold from the first frame to the last?

Pure numpy (it runs inside Blender). Columns are the first and the last frame; the top row is the
generated images, the row below (when given) the pose maps they came from. Cells are split by a
thin dark gap and may carry their frame number in the contact sheet's bitmap digits.
"""
from __future__ import annotations

import numpy as np

from .contact_sheet import draw_label
from ..pose.formats.sources import numbered_pngs
from .png import read_png, write_png

BACKGROUND = 40


def as_rgb8(image) -> np.ndarray:
    """``image`` as (H, W, 3) uint8: grey is repeated, alpha dropped, 16-bit scaled down."""
    image = np.asarray(image)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise TypeError(f"expected uint8 or uint16 image data, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4) or 0 in image.shape[:2]:
        raise ValueError(f"expected an (H, W) or (H, W, 1..4) image, got shape {image.shape}")
    if image.shape[2] <= 2:  # grey or grey + alpha
        return np.repeat(image[:, :, :1], 3, axis=2)
    return image[:, :, :3]


def _resize_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    rows = np.arange(height) * image.shape[0] // height
    cols = np.arange(width) * image.shape[1] // width
    return image[rows[:, None], cols[None, :]]


def _stamp(sheet: np.ndarray, text: str, x: int, y: int, scale: int) -> None:
    """A frame number on a black box, readable on any image."""
    pad = scale
    width = len(text) * 4 * scale - scale
    sheet[max(0, y - pad):y + 5 * scale + pad, max(0, x - pad):x + width + pad] = 0
    draw_label(sheet, text, x, y, scale=scale)


def first_last_sheet(
    first_rgb,
    last_rgb,
    first_pose=None,
    last_pose=None,
    labels=None,
    gap: int = 4,
    max_cell_width: int = 512,
) -> np.ndarray:
    """One RGB uint8 image: [first | last] generated on top, [first | last] pose below.

    ``last_rgb`` None gives a single column (a one-frame sequence). Poses are both given or both
    left out. ``labels``: the two frame numbers (ints, may be negative) to stamp on the generated
    cells, or None. Cells take the first generated frame's size, shrunk by a whole factor to at
    most ``max_cell_width`` wide; other images are scaled (nearest) to the cell.
    """
    if last_rgb is None:
        if last_pose is not None:
            raise ValueError("a one-column sheet (last_rgb None) takes no last pose map")
    elif (first_pose is None) != (last_pose is None):
        raise ValueError("give a pose map for both frames or for neither")
    generated = [as_rgb8(first_rgb)] + ([as_rgb8(last_rgb)] if last_rgb is not None else [])
    rows = [generated]
    if first_pose is not None:
        rows.append([as_rgb8(first_pose)] + ([as_rgb8(last_pose)] if last_rgb is not None else []))

    height, width = generated[0].shape[:2]
    step = max(1, -(-width // max_cell_width))
    cell_h, cell_w = -(-height // step), -(-width // step)
    columns = len(generated)
    sheet = np.full((gap + len(rows) * (cell_h + gap), gap + columns * (cell_w + gap), 3), BACKGROUND, np.uint8)
    for r, images in enumerate(rows):
        top = gap + r * (cell_h + gap)
        for c, image in enumerate(images):
            left = gap + c * (cell_w + gap)
            sheet[top:top + cell_h, left:left + cell_w] = _resize_nearest(image, cell_h, cell_w)
    if labels is not None:
        # About a tenth of the cell height per digit row, at least legible, at most large.
        scale = int(np.clip(cell_h // 60, 2, 6))
        for c, label in enumerate(list(labels)[:columns]):
            left = gap + c * (cell_w + gap)
            # Stamped into the cell's view: a label wider than a small cell is clipped there.
            cell = sheet[gap:gap + cell_h, left:left + cell_w]
            _stamp(cell, str(int(label)), 2 * scale, 2 * scale, scale)
    return sheet


def write_first_last_sheet(
    frames_dir, out_png, poses_dir=None, *, frame_prefix: str = "frame", pose_prefix: str = "pose"
) -> tuple[int, int]:
    """Write the sheet for the lowest- and highest-numbered ``frame_NNNN.png`` in ``frames_dir``
    (with their ``pose_NNNN.png`` from ``poses_dir`` when given) to ``out_png``.

    Returns (first, last) frame numbers; one frame gives a one-column sheet. Raises
    FileNotFoundError when there are no frames or a pose map for either frame is missing.
    """
    frames = numbered_pngs(frames_dir, frame_prefix)
    if not frames:
        raise FileNotFoundError(f"{frames_dir}: no {frame_prefix}_NNNN.png frames")
    first, last = min(frames), max(frames)
    first_pose = last_pose = None
    if poses_dir is not None:
        poses = numbered_pngs(poses_dir, pose_prefix)
        absent = [n for n in dict.fromkeys((first, last)) if n not in poses]
        if absent:
            raise FileNotFoundError(
                f"{poses_dir}: no {pose_prefix} map for frame(s) {', '.join(map(str, absent))}"
            )
        first_pose = read_png(poses[first])
        last_pose = read_png(poses[last]) if last != first else None
    single = last == first
    sheet = first_last_sheet(
        read_png(frames[first]),
        None if single else read_png(frames[last]),
        first_pose,
        None if single else last_pose,
        labels=(first,) if single else (first, last),
    )
    write_png(out_png, sheet)
    return first, last
