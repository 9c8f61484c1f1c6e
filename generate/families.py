"""What the backend's model family means for the pose maps Generate sends it.

An SDXL backend (``/health``: ``"family": "sdxl"``, ``"pose_style": "xinsir"``) reads pose maps
best at SDXL's own sizes (about a megapixel, in the aspect buckets it was trained on) and drawn
with the wider sticks xinsir's SDXL openpose models learned; an SD1.5 backend, ControlNet's own
line widths at the render size. The line-widths setting "auto" follows the backend: the last
``/health`` seen in this session decides (ControlNet's widths before any is seen).

Pure: no bpy. Blender's side (render/generate_job.py) asks /health and calls these.
"""
from __future__ import annotations

import math

AUTO = "auto"
SD15, SDXL = "sd15", "sdxl"
DEFAULT_POSE_STYLE = "controlnet"
STYLE_NAMES = {"controlnet": "ControlNet", "xinsir": "SDXL (wider sticks)", "proportional": "Proportional"}

# SDXL's training buckets (width, height) near 1024x1024: the sizes it draws well at.
_LANDSCAPE = ((1152, 896), (1216, 832), (1344, 768), (1536, 640))
SDXL_BUCKETS = ((1024, 1024),) + _LANDSCAPE + tuple((h, w) for w, h in _LANDSCAPE)

_seen = {"health": None}  # the last /health of a ready backend, this session


def sdxl_bucket(width: int, height: int) -> tuple[int, int]:
    """The SDXL bucket whose aspect ratio is nearest ``width``/``height`` (compared as log
    ratios, so 2:1 and 1:2 are equally far from square)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"a size must be positive (got {width}x{height})")
    aspect = math.log(width / height)
    return min(SDXL_BUCKETS, key=lambda size: abs(math.log(size[0] / size[1]) - aspect))


def remember(health: dict) -> None:
    """Keep a ready backend's /health: "auto" line widths follow it from now on."""
    if isinstance(health, dict) and health.get("status", "ready") == "ready":
        _seen["health"] = dict(health)


def seen_health() -> dict | None:
    return _seen["health"]


def forget() -> None:
    _seen["health"] = None


def family_of(health: dict | None) -> str | None:
    return (health or {}).get("family")


def line_widths_for(choice: str, health: dict | None = None) -> str:
    """The line widths to draw with: ``choice`` itself, or for "auto" the backend's pose style
    (``health``, else the last one seen; ControlNet's when none is known)."""
    if choice != AUTO:
        return choice
    health = health if health is not None else seen_health()
    return (health or {}).get("pose_style") or DEFAULT_POSE_STYLE


def map_size_for(health: dict | None, render_size: tuple[int, int],
                 resolution: tuple[int, int] | None) -> tuple[int, int] | None:
    """The size Generate renders its pose maps at: an explicit ``resolution`` as given; the
    render size for SD1.5 (None: plan_job takes the scene's); for SDXL the bucket nearest the
    render's aspect ratio."""
    if resolution is not None or family_of(health) != SDXL:
        return resolution
    return sdxl_bucket(*render_size)


def describe(choice: str, health: dict | None = None) -> str:
    """The panel's line under the line-widths setting: what "auto" means now, and why."""
    if choice != AUTO:
        return ""
    health = health if health is not None else seen_health()
    style = STYLE_NAMES.get(line_widths_for(choice, health), line_widths_for(choice, health))
    family = family_of(health)
    if family is None:
        return f"Auto: {style} (no backend seen yet; Generate asks it first)"
    return f"Auto: {style}, as the backend serves {family.upper() if family == SDXL else 'SD1.5'}"


def small_maps_note(health: dict | None, size: tuple[int, int]) -> str | None:
    """A note when pose maps are far below an SDXL backend's native area (they are then
    upscaled and the sticks come out thin), or None."""
    if family_of(health) != SDXL or size[0] * size[1] >= 0.5 * 1024 * 1024:
        return None
    width, height = sdxl_bucket(*size)
    return (f"the pose maps are {size[0]}x{size[1]}, small for the SDXL backend: render them at "
            f"{width}x{height} with SDXL line widths (poses --resolution {width}x{height} --line-widths xinsir)")
