"""Pixels of drawn shapes into an image: the shape drawn last wins each pixel.

The primitives of :mod:`.raster` return (flat, key) pixel lists; a key is a shape's place in the
drawing order and its colour's row in the palette. ``paint`` makes an RGB image of them,
``paint_indexed`` a palette image (one byte a pixel, what the pose-map job writes as PNG).
"""
from __future__ import annotations

import threading

import numpy as np

_scratch = threading.local()


def _key_buffer(size: int, dtype) -> np.ndarray:
    """A zeroed per-thread key buffer, reused across frames: a fresh one per frame costs more in
    page faults than the drawing itself. Callers must zero what they touched before returning."""
    buf = getattr(_scratch, "keys", None)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = np.zeros(size, dtype)
        _scratch.keys = buf
    return buf[:size]


def paint(width: int, height: int, layers, palette: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Composite (flat, key) pixel lists into an (H, W, 3) uint8 image, higher key drawn later.

    ``layers`` is an iterable of (flat, key) int arrays; ``palette[key]`` is the RGB of a key and key
    0 means untouched (black). ``out``, a C-contiguous (H, W, 3) uint8 array, is cleared and
    reused instead of allocating a new image.
    """
    if out is None:
        image = np.zeros((height, width, 3), np.uint8)
    else:
        if out.shape != (height, width, 3) or out.dtype != np.uint8 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous ({height}, {width}, 3) uint8 array")
        image = out
        image.fill(0)
    colours = np.ascontiguousarray(palette, np.uint8).view("V3").ravel()
    pixels = image.reshape(-1).view("V3")  # a 3-byte view writes RGB at once

    def write(flat, key):
        pixels[flat] = colours[key]

    _composite(width, height, layers, len(palette), write)
    return image


def paint_indexed(width: int, height: int, layers, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``paint`` as a palette image: (H, W) uint8 indices into the palette's distinct colours,
    and those colours ((n, 3) uint8, sorted, black first). One byte a pixel instead of three
    (a third of the PNG encoder's work); the RGB image is ``colours[indices]`` exactly.
    Raises ValueError when the palette has more than 256 distinct colours."""
    colours, index_of_key = np.unique(np.asarray(palette, np.uint8).reshape(-1, 3), axis=0, return_inverse=True)
    if len(colours) > 256:
        raise ValueError(f"{len(colours)} distinct colours do not fit a 256-colour palette")
    if colours[0].any():  # key 0 (untouched) is black, which then sorts first
        raise ValueError("the palette's key 0 must be black")
    index_of_key = index_of_key.reshape(-1).astype(np.uint8)
    indices = np.zeros((height, width), np.uint8)
    flat_indices = indices.reshape(-1)

    def write(flat, key):
        flat_indices[flat] = index_of_key[key]

    _composite(width, height, layers, len(palette), write)
    return indices, colours


def _composite(width: int, height: int, layers, keys_used: int, write) -> None:
    """Calls ``write(flat, key)`` once with every touched pixel and the largest key that touched it.

    Painting opaque shapes in sequence is the same as keeping, per pixel, the largest key that
    touched it, which np.maximum.at computes without relying on the order numpy applies repeated
    fancy-index writes (that order is unspecified). Pixels may repeat in ``flat``; each repeat
    has the same final key, so the order of ``write``'s repeated writes cannot matter.
    """
    layers = [(f, k) for f, k in layers if len(f)]
    if not layers:
        return
    flat = np.concatenate([f for f, _ in layers])
    keys = np.concatenate([k for _, k in layers])
    dtype = np.uint16 if keys_used <= 0xFFFF else np.uint32
    top = _key_buffer(height * width, dtype)
    try:
        np.maximum.at(top, flat, keys.astype(dtype))
        write(flat, top[flat])
    finally:
        top[flat] = 0  # leave the shared buffer zeroed for the next frame
