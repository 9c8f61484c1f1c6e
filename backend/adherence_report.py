"""The adherence picture (``adherence.png``): the shot's curve on top, the worst frames below.

Top: per frame, body PCK (blue) and hands PCK (green) on the left axis (0..1), the body pixel
error (orange) on the right axis, the threshold as a red dashed line, flagged frames shaded red,
a missing person as a red cross and a frame not scored as a grey tick on the frame axis.
Below: up to ``adherence.WORST_FRAMES`` worst frames side by side, each generated frame with the
expected pose drawn over it as its pose map (``draw.pose_map``) and the detected body joints as white
dots, captioned with its figures. Drawn with numpy and PIL (the backend has PIL).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..draw.png import write_png
from ..draw.pose_map import draw_pose_map
from ..pose.layouts import OPENPOSE_FULL
from .adherence import BODY, WORST_FRAMES

WIDTH = 1600
CURVE_HEIGHT = 400
MARGIN = (70, 56, 80, 48)  # left, top, right, bottom of the curve's plot area
THUMB_MAX_HEIGHT = 560
CAPTION = 46
GAP = 16
OVERLAY = 0.75  # how much of the pose map covers the frame where it draws
BLUE, GREEN, ORANGE, RED, GREY = (40, 90, 220), (30, 160, 70), (235, 130, 20), (210, 40, 40), (150, 150, 150)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one small bitmap font
        return ImageFont.load_default()


def _x_of(numbers: list[int], left: int, right: int):
    first, last = (min(numbers), max(numbers)) if numbers else (0, 1)
    span = max(1, last - first)
    if first == last:
        return lambda n: (left + right) / 2
    return lambda n: left + (n - first) / span * (right - left)


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 10 ** math.floor(math.log10(value))
    for k in (1, 2, 2.5, 5, 10):
        if k * step >= value:
            return k * step
    return 10 * step


def _dashed(draw: ImageDraw.ImageDraw, y: float, x0: float, x1: float, color, dash: int = 10) -> None:
    x = x0
    while x < x1:
        draw.line([(x, y), (min(x + dash, x1), y)], fill=color, width=2)
        x += 2 * dash


def _polyline(draw, points, color) -> None:
    """Lines between successive frames that both have a value, and a dot on each value."""
    for a, b in zip(points, points[1:]):
        if a is not None and b is not None:
            draw.line([a, b], fill=color, width=3)
    for p in points:
        if p is not None:
            draw.ellipse([p[0] - 3, p[1] - 3, p[0] + 3, p[1] + 3], fill=color)


def _curve(document: dict) -> Image.Image:
    image = Image.new("RGB", (WIDTH, CURVE_HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    small, large = _font(14), _font(20)
    left, top = MARGIN[0], MARGIN[1]
    right, bottom = WIDTH - MARGIN[2], CURVE_HEIGHT - MARGIN[3]
    frames = document["frames"]
    numbers = [e["frame"] for e in frames] + [s["frame"] for s in document.get("skipped_frames", [])]
    x_of = _x_of(numbers, left + 10, right - 10)
    y_of = lambda v: bottom - v * (bottom - top)
    errors = [e["body_error_px"] for e in frames if e["body_error_px"] is not None]
    error_top = _nice_ceiling(max(errors) if errors else 1.0)
    e_of = lambda v: bottom - min(v, error_top) / error_top * (bottom - top)
    band = max(4.0, (right - left) / max(1, len(numbers)) * 0.8)
    for e in frames:
        if e["flagged"]:
            x = x_of(e["frame"])
            draw.rectangle([x - band / 2, top, x + band / 2, bottom], fill=(250, 215, 215))
    for k in range(5):
        y = y_of(k / 4)
        draw.line([(left, y), (right, y)], fill=(225, 225, 225), width=1)
        draw.text((left - 8, y), f"{k / 4:.2f}", fill="black", font=small, anchor="rm")
        draw.text((right + 8, y), f"{error_top * k / 4:g}", fill=ORANGE, font=small, anchor="lm")
    draw.rectangle([left, top, right, bottom], outline="black")
    _dashed(draw, y_of(document["threshold"]), left, right, RED)
    draw.text((left + 6, y_of(document["threshold"]) - 4), f"threshold {document['threshold']:g}",
              fill=RED, font=small, anchor="lb")
    for key, to_y, color in (("body_error_px", e_of, ORANGE), ("hands_pck", y_of, GREEN), ("body_pck", y_of, BLUE)):
        _polyline(draw, [None if e[key] is None else (x_of(e["frame"]), to_y(e[key])) for e in frames], color)
    for e in frames:
        if e["missing_person"]:
            x, y = x_of(e["frame"]), bottom - 10
            draw.line([(x - 6, y - 6), (x + 6, y + 6)], fill=RED, width=3)
            draw.line([(x - 6, y + 6), (x + 6, y - 6)], fill=RED, width=3)
    for s in document.get("skipped_frames", []):
        draw.line([(x_of(s["frame"]), bottom - 8), (x_of(s["frame"]), bottom)], fill=GREY, width=3)
    ticks = sorted(set(numbers))
    step = max(1, math.ceil(len(ticks) / 12))
    for n in ticks[::step]:
        draw.line([(x_of(n), bottom), (x_of(n), bottom + 5)], fill="black")
        draw.text((x_of(n), bottom + 8), str(n), fill="black", font=small, anchor="mt")
    draw.text(((left + right) / 2, CURVE_HEIGHT - 6), "frame", fill="black", font=small, anchor="mb")
    jitter = document.get("jitter") or {}
    extra = f", extra jitter {jitter['extra_px']:.1f} px" if jitter.get("extra_px") is not None else ""
    title = (f"Pose adherence {document['score']:.2f} (mean body PCK, {document.get('extractor') or '?'}) "
             f"over {len(frames)} frames; {len(document['flagged_frames'])} flagged{extra}")
    draw.text((left, 14), title, fill="black", font=large)
    legend = [("body PCK", BLUE), ("hands PCK", GREEN), ("body error px (right)", ORANGE),
              ("flagged", (240, 160, 160))]
    x = right
    for label, color in reversed(legend):
        width = draw.textlength(label, font=small)
        x -= width
        draw.text((x, 40), label, fill="black", font=small, anchor="lm")
        draw.rectangle([x - 18, 35, x - 6, 45], fill=color)
        x -= 34
    return image


def _thumbnail(rgb: np.ndarray, expected, detected, size: tuple[int, int]) -> Image.Image:
    """The frame at ``size`` with the expected pose map over it and detected joints as dots."""
    height, width = rgb.shape[:2]
    w, h = size
    frame = Image.fromarray(np.ascontiguousarray(rgb[..., :3])).resize((w, h), Image.BILINEAR)
    frame = np.asarray(frame, np.float32)
    scale = np.array([w / width, h / height, 1.0], np.float32)
    if expected is not None and len(expected):
        people = np.asarray(expected, np.float32)[:, :len(OPENPOSE_FULL)] * scale
        pose = draw_pose_map(people, w, h).astype(np.float32)
        drawn = pose.any(axis=2, keepdims=True)
        frame = np.where(drawn, (1 - OVERLAY) * frame + OVERLAY * pose, frame)
    image = Image.fromarray(frame.round().astype(np.uint8))
    if detected is not None and len(detected):
        draw = ImageDraw.Draw(image)
        for person in np.asarray(detected, np.float32):
            for x, y, c in person[BODY] * scale:
                if c > 0:
                    draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill="white", outline="black")
    return image


def _caption(entry: dict) -> list[str]:
    error = "no error" if entry["body_error_px"] is None else f"{entry['body_error_px']:.1f} px"
    first = f"frame {entry['frame']}: body PCK {entry['body_pck']:.2f}, {error}"
    problems = [f"{', '.join(entry['swapped'])} swapped"] if entry["swapped"] else []
    if entry["missing_person"]:
        problems.append("person missing")
    if entry["hands_pck"] is not None:
        problems.append(f"hands PCK {entry['hands_pck']:.2f}")
    return [first, "; ".join(problems)]


def render_report(document: dict, frames: dict, expected: dict, detected: dict | None = None) -> np.ndarray:
    """The picture as (H, W, 3) uint8. ``frames``: {frame number: generated RGB}; ``expected`` and
    ``detected``: {frame number: (people, points, 3) in the IMPORT layout, pixels of that frame}.
    Worst frames missing from ``frames`` are left out."""
    detected = detected or {}
    entries = {e["frame"]: e for e in document["frames"]}
    worst = [n for n in document["worst_frames"][:WORST_FRAMES] if n in frames and n in entries]
    slot_w = (WIDTH - GAP * (WORST_FRAMES + 1)) // WORST_FRAMES
    sizes = []
    for n in worst:
        h, w = frames[n].shape[:2]
        k = min(slot_w / w, THUMB_MAX_HEIGHT / h)
        sizes.append((max(1, round(w * k)), max(1, round(h * k))))
    row = (max(h for _, h in sizes) + CAPTION + 2 * GAP + 24) if worst else 0
    sheet = Image.new("RGB", (WIDTH, CURVE_HEIGHT + row), (236, 236, 236))
    sheet.paste(_curve(document), (0, 0))
    if worst:
        draw = ImageDraw.Draw(sheet)
        font = _font(15)
        top = CURVE_HEIGHT + GAP
        draw.text((GAP, top), "Worst frames: the expected pose (its pose map) over the generated frame; "
                  "white dots: the joints detected", fill="black", font=font)
        for i, n in enumerate(worst):
            left = GAP + i * (slot_w + GAP)
            for k, line in enumerate(_caption(entries[n])):
                color = RED if entries[n]["flagged"] else "black"
                draw.text((left, top + 24 + 20 * k), line, fill=color, font=font)
            thumbnail = _thumbnail(frames[n], expected.get(n), detected.get(n), sizes[i])
            sheet.paste(thumbnail, (left, top + 24 + CAPTION))
    return np.asarray(sheet)


def write_report(path, document: dict, frames: dict, expected: dict, detected: dict | None = None) -> Path:
    """Render (see ``render_report``) and write the PNG atomically; returns the path."""
    path = Path(path)
    write_png(path, render_report(document, frames, expected, detected), level=6)
    return path
