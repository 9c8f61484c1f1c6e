"""OpenCV-exact rasterisation in numpy: filled ellipse polygons, filled circles, thick lines.

ControlNet's openpose models were trained on maps drawn by OpenCV with non-antialiased (LINE_8)
primitives, so these functions reproduce OpenCV's integer rules pixel for pixel instead of
drawing "nice" shapes: ``cv2.ellipse2Poly`` (delta 1) + ``cv2.fillConvexPoly`` (shift 0),
``cv2.circle`` (filled), and ``cv2.line`` (thickness >= 2, drawn by OpenCV as a 16.16 fixed-point
quad plus round caps). Only numpy and the standard library are used: this runs inside Blender.

Every primitive function works on a *batch* of N shapes and returns the pixels they cover as
``(owner, flat)`` int arrays: ``flat`` is ``y * width + x`` of a covered pixel (always inside the
canvas) and ``owner`` the index of the shape in the batch that covers it. A pixel may be listed
several times. Callers decide colours and stacking order (see :mod:`.paint`), which lets a whole
frame be drawn with a few dozen vectorised numpy calls instead of one Python call per shape.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

SHIFT = 16  # OpenCV's fixed-point precision for drawing (XY_SHIFT)
ONE = 1 << SHIFT
HALF = ONE >> 1

_I64 = np.int64
_EMPTY = np.zeros(0, _I64)


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return _EMPTY, _EMPTY


def _tdiv(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Integer division rounding toward zero, as C does (numpy's // rounds toward -inf)."""
    q = np.abs(num) // np.abs(den)
    return np.where((num < 0) != (den < 0), -q, q)


def _ragged_arange(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For counts [2, 3]: which run each item belongs to [0, 0, 1, 1, 1] and its place [0, 1, 0, 1, 2]."""
    counts = np.maximum(counts, 0)
    run = np.repeat(np.arange(counts.size), counts)
    starts = np.cumsum(counts) - counts
    return run, np.arange(run.size) - starts[run]


# --- ellipse2Poly --------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _sin_table() -> np.ndarray:
    """Sines of whole degrees 0..450 as OpenCV stores them: float32 of the value rounded to 7 places.

    cos(a) is read as sin(450 - a) from the same table. Using the table (not np.sin) is what makes
    the polygon vertices round to the same integers as OpenCV's.
    """
    table = np.round(np.sin(np.deg2rad(np.arange(451))), 7).astype(np.float32)
    table.flags.writeable = False
    return table


def ellipse_polygons(cx, cy, axis_a, axis_b, angle) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of ``cv2.ellipse2Poly((cx, cy), (a, b), angle, 0, 360, 1)`` for N ellipses.

    All arguments are integer arrays of length N (OpenCV takes ints). Returns int64 (N, 361) x and
    y. OpenCV then drops consecutive repeated vertices; that changes nothing for filling or for the
    outline (a repeated vertex adds an empty edge), so the fixed 361 columns are kept, which lets a
    whole batch stay one rectangular array.
    """
    table = _sin_table().astype(np.float64)
    cx = np.asarray(cx, np.float64)[:, None]
    cy = np.asarray(cy, np.float64)[:, None]
    ang = np.asarray(angle, _I64) % 360  # OpenCV folds the angle into [0, 360]; 0 and 360 agree
    cos_r = table[450 - ang][:, None]
    sin_r = table[ang][:, None]
    deg = np.arange(361)
    x = np.asarray(axis_a, np.float64)[:, None] * table[450 - deg]
    y = np.asarray(axis_b, np.float64)[:, None] * table[deg]
    # Same operation order as OpenCV so the doubles (and their rounding) are identical;
    # np.rint rounds halves to even like cvRound.
    px = cx + x * cos_r - y * sin_r
    py = cy + x * sin_r + y * cos_r
    return np.rint(px).astype(_I64), np.rint(py).astype(_I64)


# --- lines -----------------------------------------------------------------------------------------

def _clip_segments(x1, y1, x2, y2, right, bottom):
    """OpenCV's clipLine (Cohen-Sutherland, truncating integer maths) for many segments.

    ``right``/``bottom`` are the last valid coordinates. Returns the clipped end points and a mask of
    segments that still touch the rectangle. Clipping moves end points to integer positions, which
    changes the pixels of the rasterised line, so it has to be reproduced, not replaced by discarding
    outside pixels.
    """
    def code(x, y):
        return (x < 0) * 1 + (x > right) * 2 + (y < 0) * 4 + (y > bottom) * 8

    # Both ends inside (the usual case); a negative int64 viewed as uint64 is huge, so one
    # comparison per coordinate checks both sides.
    u = lambda v: v.view(np.uint64)
    inside = (u(x1) <= right) & (u(y1) <= bottom) & (u(x2) <= right) & (u(y2) <= bottom)
    out = np.flatnonzero(~inside)
    if out.size == 0:
        return x1, y1, x2, y2, inside
    d1, d2 = code(x1[out], y1[out]), code(x2[out], y2[out])
    part = (d1 & d2) == 0  # not wholly beyond one edge: only these can still be drawn
    cut = out[part]
    if cut.size == 0:
        return x1, y1, x2, y2, inside
    a1, b1, a2, b2, d1, d2 = x1[cut], y1[cut], x2[cut], y2[cut], d1[part], d2[part]
    safe = lambda d: np.where(d == 0, 1, d)  # lanes a step skips may divide by zero

    m = (d1 & 12) != 0  # first end above/below: move it onto that edge
    edge = np.where(d1 < 8, 0, bottom)
    a1 = np.where(m, a1 + _tdiv((edge - b1) * (a2 - a1), safe(b2 - b1)), a1)
    b1 = np.where(m, edge, b1)
    d1 = np.where(m, (a1 < 0) * 1 + (a1 > right) * 2, d1)

    m = (d2 & 12) != 0  # same for the second end (using the moved first end, as OpenCV does)
    edge = np.where(d2 < 8, 0, bottom)
    a2 = np.where(m, a2 + _tdiv((edge - b2) * (a2 - a1), safe(b2 - b1)), a2)
    b2 = np.where(m, edge, b2)
    d2 = np.where(m, (a2 < 0) * 1 + (a2 > right) * 2, d2)

    again = ((d1 & d2) == 0) & ((d1 | d2) != 0)  # then left/right
    m = again & (d1 != 0)
    edge = np.where(d1 == 1, 0, right)
    b1 = np.where(m, b1 + _tdiv((edge - a1) * (b2 - b1), safe(a2 - a1)), b1)
    a1 = np.where(m, edge, a1)
    d1 = np.where(m, 0, d1)
    m = again & (d2 != 0)
    edge = np.where(d2 == 1, 0, right)
    b2 = np.where(m, b2 + _tdiv((edge - a2) * (b2 - b1), safe(a2 - a1)), b2)
    a2 = np.where(m, edge, a2)
    d2 = np.where(m, 0, d2)

    x1, y1, x2, y2 = x1.copy(), y1.copy(), x2.copy(), y2.copy()
    x1[cut], y1[cut], x2[cut], y2[cut] = a1, b1, a2, b2
    inside[cut] = (d1 | d2) == 0
    return x1, y1, x2, y2, inside


def lines8(x1, y1, x2, y2, width: int, height: int):
    """Pixels of 1-pixel 8-connected lines between integer points (OpenCV's LineIterator).

    OpenCV walks from the left end point; along the major axis it steps every pixel and takes a
    minor step when the error term goes negative, which puts the minor coordinate after k steps at
    ceil((2*minor*k - major) / (2*major)): nearest to the true line, halves towards the start.
    """
    x1, y1, x2, y2 = (np.asarray(v, _I64).ravel() for v in (x1, y1, x2, y2))
    x1, y1, x2, y2, inside = _clip_segments(x1, y1, x2, y2, width - 1, height - 1)
    swap = x2 < x1
    start = np.where(swap, y2 * width + x2, y1 * width + x1)
    dx = np.abs(x2 - x1)
    dy = np.where(swap, y1 - y2, y2 - y1)
    ady = np.abs(dy)
    row = np.where(dy < 0, -width, width)  # one row along the line's vertical direction
    steep = ady > dx
    major = np.maximum(ady, dx)
    minor = np.minimum(ady, dx)
    major_step = np.where(steep, row, 1)  # walking in flat indices: x is +1, y is +-width
    minor_step = np.where(steep, 1, row)
    owner, k = _ragged_arange(np.where(inside, major + 1, 0))
    maj = major[owner]
    m = -((maj - 2 * minor[owner] * k) // np.maximum(2 * maj, 1))  # 0 when maj == 0
    return owner, start[owner] + k * major_step[owner] + m * minor_step[owner]


def lines_fixed(x1, y1, x2, y2, width: int, height: int):
    """Pixels of OpenCV's 16.16 fixed-point 1-pixel line (Line2, used to outline shifted polygons).

    A DDA: one pixel per whole step of the major axis starting from the rounded first end point,
    the minor coordinate accumulating a truncated fixed-point slope, plus the rounded last end
    point; pixels outside the canvas are dropped.
    """
    x1, y1, x2, y2 = (np.asarray(v, _I64).ravel() for v in (x1, y1, x2, y2))
    x1, y1, x2, y2, inside = _clip_segments(
        x1, y1, x2, y2, (width << SHIFT) - 1, (height << SHIFT) - 1
    )
    dx, dy = x2 - x1, y2 - y1
    ax, ay = np.abs(dx), np.abs(dy)
    xmajor = ax > ay
    # Walk in increasing major coordinate.
    swap = np.where(xmajor, dx < 0, dy < 0)
    x1, x2 = np.where(swap, x2, x1), np.where(swap, x1, x2)
    y1, y2 = np.where(swap, y2, y1), np.where(swap, y1, y2)
    dx, dy = x2 - x1, y2 - y1
    step = np.where(xmajor, _tdiv(dy << SHIFT, ax | 1), _tdiv(dx << SHIFT, ay | 1))
    ecount = np.where(xmajor, dx, dy) >> SHIFT
    sx, sy = x1 + HALF, y1 + HALF

    owner, k = _ragged_arange(np.where(inside, ecount + 1, 0))
    xm = xmajor[owner]
    acc = np.where(xm, sy[owner], sx[owner]) + k * step[owner]
    px = np.where(xm, (sx[owner] >> SHIFT) + k, acc >> SHIFT)
    py = np.where(xm, acc >> SHIFT, (sy[owner] >> SHIFT) + k)
    # The last end point, rounded, is always put as well.
    ends = np.flatnonzero(inside)
    owner = np.concatenate([ends, owner])
    px = np.concatenate([(x2[ends] + HALF) >> SHIFT, px])
    py = np.concatenate([(y2[ends] + HALF) >> SHIFT, py])
    keep = (px >= 0) & (px < width) & (py >= 0) & (py < height)
    return owner[keep], py[keep] * width + px[keep]


# --- convex polygons ----------------------------------------------------------------------------

def convex_spans(vx: np.ndarray, vy: np.ndarray, shift: int, width: int, height: int):
    """Scanline spans of OpenCV's FillConvexPoly interior for N polygons of n vertices each.

    ``vx``/``vy`` are int (N, n) with ``shift`` fractional bits. Returns (owner, y, x_left, x_right),
    already clipped. OpenCV's rule, restated: start at the topmost vertex (first one on ties) and
    follow the outline both ways; each side keeps the edge toward the first vertex lying below the
    current scanline, entered at that scanline with x at the edge's start vertex and a rounded
    16.16 slope; every scanline from the top row to one above the bottom row gets the span between
    the two sides' x, each rounded to nearest. The bottom row itself comes only from the outline.
    Because a side only ever moves to a vertex lower than all before it, the edge in use on row y
    is the one ending at the first vertex whose running maximum of y exceeds y, which a sorted
    search finds for all rows of all polygons at once.
    """
    vx = np.asarray(vx, _I64)
    vy = np.asarray(vy, _I64)
    count, n = vx.shape
    if count == 0 or n < 3:
        return _empty() + _empty()
    delta = (1 << shift) >> 1
    rows_y = (vy + delta) >> shift
    cols_x = (vx + delta) >> shift
    top = np.argmin(vy, axis=1)
    ymin = rows_y[np.arange(count), top]
    ymax = rows_y.max(axis=1)
    ok = (cols_x.max(axis=1) >= 0) & (ymax >= 0) & (cols_x.min(axis=1) < width) & (ymin < height)
    lo = np.maximum(ymin, 0)
    hi = np.minimum(ymax - 1, height - 1)
    owner, local = _ragged_arange(np.where(ok, hi - lo + 1, 0))
    if owner.size == 0:
        return _empty() + _empty()
    y = lo[owner] + local

    # Both sides of all polygons as 2N chains (down-forward, then down-backward) in one batch.
    steps = np.arange(n)
    order = (top[None, :, None] + np.array([1, -1])[:, None, None] * steps) % n
    order = (order + (np.arange(count) * n)[None, :, None]).ravel()
    chain_y = rows_y.ravel()[order]
    chain_x = (vx << (SHIFT - shift)).ravel()[order]
    run = np.maximum.accumulate(chain_y.reshape(2 * count, n), axis=1).ravel()
    # Offset each chain's (non-decreasing) running maximum so one searchsorted serves them all.
    span = int(run.max() - run.min()) + 2
    base = np.arange(2 * count, dtype=_I64) * span
    rows = np.concatenate([owner, owner + count])
    yy = np.concatenate([y, y])
    at = np.searchsorted(run + np.repeat(base, n), yy + base[rows], side="right")
    start_y = run[at - 1]  # the scanline at which this edge was entered
    dy = run[at] - start_y
    xs = chain_x[at - 1]
    slope = _tdiv((chain_x[at] - xs) * 2 + dy, 2 * dy)
    side_x = (xs + (yy - start_y) * slope).reshape(2, -1)
    left = (np.minimum(side_x[0], side_x[1]) + HALF) >> SHIFT
    right = (np.maximum(side_x[0], side_x[1]) + HALF) >> SHIFT
    keep = (right >= 0) & (left < width)
    return owner[keep], y[keep], np.maximum(left[keep], 0), np.minimum(right[keep], width - 1)


def spans_to_pixels(owner, y, x_left, x_right, width: int):
    """Expand scanline spans into (owner, flat) pixel lists."""
    run, k = _ragged_arange(x_right - x_left + 1)
    return owner[run], y[run] * width + x_left[run] + k


def fill_convex_polygons(vx, vy, shift: int, width: int, height: int):
    """``cv2.fillConvexPoly`` (LINE_8) for N polygons of n vertices: outline plus interior.

    With shift 0 the outline is drawn with integer 8-connected lines, otherwise with the 16.16
    fixed-point line, exactly as OpenCV does; the outline supplies the bottom row and the pixels the
    rounded interior spans miss.
    """
    vx = np.asarray(vx, _I64)
    vy = np.asarray(vy, _I64)
    count, n = vx.shape
    if count == 0:
        return _empty()
    px, py = np.roll(vx, 1, axis=1), np.roll(vy, 1, axis=1)  # edge i runs from vertex i-1 to i
    if shift == 0:
        # Rounded ellipse vertices repeat a lot; an empty edge only repeats its neighbours' end
        # pixel, so skip those (keeping edge 0, in case a polygon is a single point).
        real = (px != vx) | (py != vy)
        real[:, 0] = True
        edge = np.flatnonzero(real)
        o_owner, o_flat = lines8(
            px.ravel()[edge], py.ravel()[edge], vx.ravel()[edge], vy.ravel()[edge], width, height
        )
        o_owner = edge[o_owner]
    else:
        o_owner, o_flat = lines_fixed(px, py, vx, vy, width, height)
    o_owner = o_owner // n
    f_owner, f_flat = spans_to_pixels(*convex_spans(vx, vy, shift, width, height), width)
    return np.concatenate([o_owner, f_owner]), np.concatenate([o_flat, f_flat])


def ellipses(cx, cy, axis_a, axis_b, angle, width: int, height: int):
    """Filled ellipses as ControlNet draws limbs: ellipse2Poly (delta 1) then fillConvexPoly."""
    vx, vy = ellipse_polygons(cx, cy, axis_a, axis_b, angle)
    return fill_convex_polygons(vx, vy, 0, width, height)


# --- circles ------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def circle_stamp(radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(dy, dx) offsets of the pixels of ``cv2.circle(..., radius, thickness=-1)`` (LINE_8).

    OpenCV fills a midpoint-circle: walking one octant, each step fills the rows at +-dy with
    half-width dx and the rows at +-dx with half-width dy, decrementing dx when the running error
    turns positive. Clipping at the canvas border only drops pixels, so a fixed stamp is exact.
    """
    half_width: dict[int, int] = {}
    dx, dy, err, plus, minus = radius, 0, 0, 1, 2 * radius - 1
    while dx >= dy:
        for row, half in ((dy, dx), (dx, dy)):
            for r in (row, -row):
                half_width[r] = max(half_width.get(r, -1), half)
        dy += 1
        err += plus
        plus += 2
        if err > 0:
            err -= minus
            dx -= 1
            minus -= 2
    rows = sorted(half_width)
    ys = np.concatenate([np.full(2 * half_width[r] + 1, r) for r in rows]).astype(_I64)
    xs = np.concatenate([np.arange(-half_width[r], half_width[r] + 1) for r in rows]).astype(_I64)
    ys.flags.writeable = xs.flags.writeable = False
    return ys, xs


def circles(cx, cy, radius: int, width: int, height: int):
    """Filled circles of one radius at integer centres (``cv2.circle`` thickness -1, LINE_8)."""
    cx = np.asarray(cx, _I64).ravel()
    cy = np.asarray(cy, _I64).ravel()
    if cx.size == 0:
        return _empty()
    sy, sx = circle_stamp(int(radius))
    y = cy[:, None] + sy
    x = cx[:, None] + sx
    keep = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    owner = np.broadcast_to(np.arange(cx.size)[:, None], keep.shape)
    return owner[keep], (y * width + x)[keep]


# --- thick lines --------------------------------------------------------------------------------

def thick_lines(x1, y1, x2, y2, thickness: int, width: int, height: int):
    """``cv2.line`` between integer points with the given thickness (LINE_8, shift 0).

    Thickness <= 1 is the plain 8-connected line. Otherwise OpenCV offsets both end points by a
    rounded 16.16 perpendicular of half the thickness, fills that quad as a shifted convex polygon,
    and stamps a filled circle of radius round(thickness / 2) on each end point.
    """
    x1, y1, x2, y2 = (np.asarray(v, _I64).ravel() for v in (x1, y1, x2, y2))
    if x1.size == 0:
        return _empty()
    if thickness <= 1:
        return lines8(x1, y1, x2, y2, width, height)
    ddx = (x1 - x2).astype(np.float64)
    ddy = (y2 - y1).astype(np.float64)
    length2 = ddx * ddx + ddy * ddy
    has_quad = length2 > np.finfo(np.float64).eps
    scale = ((thickness << (SHIFT - 1)) + (thickness & 1) * ONE * 0.5) / np.sqrt(
        np.where(has_quad, length2, 1.0)
    )
    off_x = np.rint(ddy * scale).astype(_I64)
    off_y = np.rint(ddx * scale).astype(_I64)
    fx1, fy1, fx2, fy2 = x1 << SHIFT, y1 << SHIFT, x2 << SHIFT, y2 << SHIFT
    quad_x = np.stack([fx1 + off_x, fx1 - off_x, fx2 - off_x, fx2 + off_x], axis=1)[has_quad]
    quad_y = np.stack([fy1 + off_y, fy1 - off_y, fy2 - off_y, fy2 + off_y], axis=1)[has_quad]
    q_owner, q_flat = fill_convex_polygons(quad_x, quad_y, SHIFT, width, height)
    q_owner = np.flatnonzero(has_quad)[q_owner]
    cap = ((thickness << (SHIFT - 1)) + HALF) >> SHIFT
    c_owner, c_flat = circles(np.concatenate([x1, x2]), np.concatenate([y1, y2]), cap, width, height)
    c_owner = c_owner % x1.size
    return np.concatenate([q_owner, c_owner]), np.concatenate([q_flat, c_flat])
