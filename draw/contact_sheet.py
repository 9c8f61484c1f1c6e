"""A contact sheet: rows of image pairs (for example a plain render beside its pose map).

Pure numpy so the demo can build it inside Blender. Each row is labelled with its frame
number in a tiny built-in bitmap font, so a person can tell the frames apart at a glance.
"""
from __future__ import annotations

import numpy as np

# 3x5 glyphs for the digits and '-': each row is 3 bits, most significant bit on the left.
_GLYPHS = {
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1), "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 2, 2, 2),
    "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7), "-": (0, 0, 7, 0, 0),
}


def draw_label(image: np.ndarray, text: str, x: int, y: int, scale: int = 3, colour=(255, 255, 255)) -> None:
    """Stamp ``text`` (digits and '-') with its top-left corner at (x, y), in place."""
    for char in text:
        rows = _GLYPHS.get(char)
        if rows is None:
            raise ValueError(f"no glyph for {char!r}")
        for r, bits in enumerate(rows):
            for c in range(3):
                if bits >> (2 - c) & 1:
                    y0, x0 = y + r * scale, x + c * scale
                    image[y0:y0 + scale, x0:x0 + scale] = colour
        x += 4 * scale


def contact_sheet(rows: list[tuple[int, list[np.ndarray]]], gap: int = 8, max_cell_width: int = 384) -> np.ndarray:
    """Stack ``(frame_number, [image, image, ...])`` rows into one RGB uint8 image.

    Images are downscaled by an integer factor (nearest) so a cell is at most
    ``max_cell_width`` wide; all images must share one size.
    """
    if not rows:
        raise ValueError("a contact sheet needs at least one row")
    height, width = rows[0][1][0].shape[:2]
    step = max(1, -(-width // max_cell_width))
    cell_h, cell_w = -(-height // step), -(-width // step)
    columns = max(len(images) for _, images in rows)
    sheet = np.full(
        (gap + len(rows) * (cell_h + gap), gap + columns * (cell_w + gap), 3), 40, np.uint8
    )
    for r, (frame_number, images) in enumerate(rows):
        top = gap + r * (cell_h + gap)
        for c, image in enumerate(images):
            if image.shape[:2] != (height, width):
                raise ValueError("all contact sheet images must have the same size")
            left = gap + c * (cell_w + gap)
            sheet[top:top + cell_h, left:left + cell_w] = image[::step, ::step, :3]
        draw_label(sheet, str(frame_number), gap + 6, top + 6)
    return sheet
