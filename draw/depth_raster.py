"""Depth maps of triangles seen through a Blender camera, rasterised on the CPU with numpy only.

Inside Blender in background mode there is no GPU drawing and no OpenCV, so the z-buffer is done
here: triangles in camera space (Blender's: the camera looks down -Z, +Y up) go through the
camera's window matrix onto the pixel grid of ``pose/projection.py`` (pixel column i is centred
on x = i, the image spans -0.5 .. width - 0.5, y down), and every pixel centre gets the distance
along the view axis (-z) of the nearest surface covering it.

How it stays fast without per-triangle Python loops:
  * triangles with no pixel centre inside their bounding box (most of a dense character's tiny
    triangles, and everything off-screen) are dropped before any per-pixel work;
  * the rest are grouped by bounding-box size; a group is tested on one padded (n, gh, gw) grid
    with broadcast comparisons, and the covered samples go into the z-buffer with a single
    ``np.minimum.at`` scatter (numpy >= 1.25 has a fast path for it);
  * the few triangles covering large areas (a floor, a wall) are each done on their own bounding
    box with dense array operations, where the per-call overhead no longer matters.

Coverage is exact-rule and watertight: each edge is evaluated from its two end points in a
canonical order (the lexicographically smaller first), so two triangles sharing an edge compute
bit-identical edge values with opposite signs, and a pixel centre lying exactly on an edge goes to
exactly one side (ties go to the triangle on the left of the canonically ordered edge, which is a
half-open rule: as if every sample were nudged infinitesimally up and slightly left).
"""
from __future__ import annotations

import numpy as np

# Bounding boxes larger than this (pixels) are rasterised one triangle at a time over their box.
_DENSE_AREA = 4096
# Upper bound on the samples of one batched grid, to keep temporary arrays around 10-20 MB.
_MAX_BATCH_SAMPLES = 1 << 20
# Grid sizes for grouping: each bounding-box side is padded up to the next one (1, 2, 3, 4, 6, 8,
# 12, 16, ...: steps of 1.33x-1.5x). Coarser steps waste samples on padding, finer ones make more
# groups, each costing a few dozen numpy calls; these measured best on character-like shots.
_GRID_STEPS = np.unique(np.concatenate([2 ** np.arange(16), 3 * 2 ** np.arange(15)]))
# The tie rule needs "lhs >= rhs", done as "lhs > the float just below rhs". For a normal rhs,
# rhs - |rhs| * _STEP_DOWN rounds to exactly that float (the 2**-60 keeps the halfway case of
# powers of two from rounding back up); for rhs == 0, _BELOW_ZERO stands in: a normal number
# (Blender may flush denormals to zero), and no edge value is nonzero yet that small.
_STEP_DOWN = 2.0 ** -53 + 2.0 ** -60
_BELOW_ZERO = 1e-300
# Layout of _TriangleSetup.rows: per edge ax, ay, ex, ey, step, floor; then the depth-key plane
# k0, x0, y0, kdx, kdy, kmin, kmax.
_EDGE_ROWS = 6
_PLANE = 3 * _EDGE_ROWS
_ROWS = _PLANE + 7


def is_orthographic(projection) -> bool:
    """True for an orthographic window matrix, False for a perspective one.

    Perspective matrices have a bottom row (0, 0, -k, 0) (clip w is proportional to the
    distance), orthographic ones (0, 0, 0, 1); anything else is not a camera we can rasterise.
    """
    row = np.asarray(projection, dtype=np.float64)[3]
    if row[0] == 0 and row[1] == 0 and row[2] == 0 and row[3] == 1:
        return True
    if row[0] == 0 and row[1] == 0 and row[2] < 0 and row[3] == 0:
        return False
    raise ValueError(f"not a perspective or orthographic window matrix (bottom row {row})")


def rasterize_depth(triangles_camera, projection, width: int, height: int, *, near: float = 1e-4,
                    far: float = np.inf) -> np.ndarray:
    """(height, width) float32 depth map: -z of the nearest surface at each pixel centre.

    ``triangles_camera`` (T, 3, 3): vertices in camera space. ``projection`` (4, 4): Blender's
    window matrix (``Object.calc_matrix_camera``), perspective or orthographic. Pixels no
    triangle covers are ``np.inf``. Parts of triangles nearer than ``near`` are clipped away
    (in camera space, before projecting); surfaces farther than ``far`` are left out, as
    Blender's clip_start / clip_end do. Both windings are drawn.
    """
    tris = np.asarray(triangles_camera, dtype=np.float64)
    projection = np.asarray(projection, dtype=np.float64)
    if tris.ndim != 3 or tris.shape[1:] != (3, 3):
        raise ValueError(f"triangles must be (T, 3, 3), got {tris.shape}")
    if projection.shape != (4, 4):
        raise ValueError(f"projection must be (4, 4), got {projection.shape}")
    width, height = int(width), int(height)
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if not (np.isfinite(near) and near > 0) or not far > near:
        raise ValueError(f"need 0 < near < far, near finite; got near={near}, far={far}")
    ortho = is_orthographic(projection)

    finite = np.isfinite(tris).all(axis=(1, 2))
    if not finite.all():
        tris = tris[finite]
    tris = _drop_beyond(tris, far)
    tris = clip_near(tris, near)
    # The z-buffer holds a key that grows with distance and is affine in screen space over a
    # triangle: the distance itself for orthographic, -1/distance for perspective (1/w is what
    # interpolates linearly on screen), so one min-scatter serves both.
    zbuf = np.full(height * width, np.inf)
    if len(tris):
        vertices = np.ascontiguousarray(tris.transpose(2, 1, 0))  # (xyz, vertex, T)
        xs, ys = _to_pixels(vertices, projection, width, height)
        distance = -vertices[2]
        key = distance if ortho else -1.0 / distance
        setup = _TriangleSetup(xs, ys, key, width, height)
        _rasterize(setup, zbuf, width, height)
    zbuf = zbuf.reshape(height, width)
    if ortho:
        depth = zbuf.astype(np.float32)
    else:
        with np.errstate(divide="ignore"):
            depth = (-1.0 / zbuf).astype(np.float32)  # -1/inf is -0: mapped back to inf below
        depth[~np.isfinite(zbuf)] = np.inf
    if np.isfinite(far):
        depth[depth > far] = np.inf
    return depth


def _drop_beyond(tris: np.ndarray, far: float) -> np.ndarray:
    """Triangles entirely farther than ``far`` cannot show (the rest is cut per pixel)."""
    if not np.isfinite(far) or not len(tris):
        return tris
    return tris[(-tris[:, :, 2]).min(axis=1) <= far]


def clip_near(tris: np.ndarray, near: float) -> np.ndarray:
    """Triangles (T, 3, 3) cut to the part at distance (-z) >= ``near``.

    A triangle with one vertex in front stays one triangle, with two it becomes a quad (two
    triangles), with none it is dropped. A new vertex is always computed from the front vertex
    towards the back one, so two triangles sharing an edge get bit-identical cut points (no
    cracks at the near plane).
    """
    if not len(tris):
        return tris
    distance = -tris[:, :, 2]
    front = distance >= near
    count = front.sum(axis=1)
    if count.min() == 3:
        return tris
    whole = tris[count == 3]

    def rolled(sel, first):
        # Rotate each selected triangle so that vertex ``first`` comes first (winding kept).
        order = (first[:, None] + np.arange(3)) % 3
        return np.take_along_axis(tris[sel], order[:, :, None], axis=1)

    def cut(inside, outside):
        d_in, d_out = -inside[:, 2], -outside[:, 2]
        t = (d_in - near) / (d_in - d_out)
        point = inside + t[:, None] * (outside - inside)
        point[:, 2] = -near  # exactly on the plane
        return point

    one = count == 1
    v = rolled(one, np.argmax(front[one], axis=1))  # the front vertex first
    singles = np.stack([v[:, 0], cut(v[:, 0], v[:, 1]), cut(v[:, 0], v[:, 2])], axis=1)

    two = count == 2
    v = rolled(two, (np.argmin(front[two], axis=1) + 1) % 3)  # the back vertex last
    p12, p02 = cut(v[:, 1], v[:, 2]), cut(v[:, 0], v[:, 2])
    quads = np.concatenate(
        [np.stack([v[:, 0], v[:, 1], p12], axis=1), np.stack([v[:, 0], p12, p02], axis=1)]
    )
    return np.concatenate([whole, singles, quads])


def _to_pixels(vertices: np.ndarray, projection: np.ndarray, width: int, height: int):
    """Pixel coordinates x and y (3, T) of ``vertices`` (3, 3, T: coordinate, vertex, triangle),
    as ``pose.projection.project_points`` computes them.

    Written out element by element (no matmul) so a vertex shared by several triangles gets
    bit-identical coordinates in each of them, whatever BLAS would do.
    """
    x, y, z = vertices
    m = projection
    w = m[3, 2] * z + m[3, 3]
    ndc_x = (m[0, 0] * x + m[0, 1] * y + m[0, 2] * z + m[0, 3]) / w
    ndc_y = (m[1, 0] * x + m[1, 1] * y + m[1, 2] * z + m[1, 3]) / w
    return (ndc_x + 1.0) * (width / 2.0) - 0.5, (1.0 - ndc_y) * (height / 2.0) - 0.5


class _TriangleSetup:
    """Per-triangle data for the coverage test and the depth plane, for the triangles that have
    at least one pixel centre of the image inside their bounding box (the others are dropped).

    Edge k (k = 0, 1, 2) runs between canonical end points a, b. A pixel centre (px, py) is on the
    inner side when ``ex * (py - ay) > ey * (px - ax)``, or ``>=`` on the edges that win ties
    (``step``, ``floor`` nonzero); ``ex``, ``ey`` carry the sign that makes "inner" positive, so
    a shared edge is tested with exactly negated numbers by its two triangles. Everything is
    stored as rows of one (rows, n) array, so grouping triangles is one reordering, then slices.
    """


    def __init__(self, xs, ys, key, width: int, height: int):
        # xs, ys, key: (3, T), one row per vertex.
        x0, x1, x2 = xs
        y0, y1, y2 = ys
        area2 = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        left = np.ceil(np.minimum(np.minimum(x0, x1), x2))
        right = np.floor(np.maximum(np.maximum(x0, x1), x2))
        top = np.ceil(np.minimum(np.minimum(y0, y1), y2))
        bottom = np.floor(np.maximum(np.maximum(y0, y1), y2))
        np.clip(left, 0, width, out=left)
        np.clip(right, -1, width - 1, out=right)
        np.clip(top, 0, height, out=top)
        np.clip(bottom, -1, height - 1, out=bottom)
        keep = (area2 != 0) & (left <= right) & (top <= bottom)
        keep = np.flatnonzero(keep)
        xs, ys, key, area2 = xs[:, keep], ys[:, keep], key[:, keep], area2[keep]
        self.count = len(keep)
        self.left = left[keep].astype(np.int64)
        self.top = top[keep].astype(np.int64)
        self.box_w = right[keep].astype(np.int64) - self.left + 1
        self.box_h = bottom[keep].astype(np.int64) - self.top + 1

        rows = np.empty((_ROWS, self.count))
        orientation = np.sign(area2)
        for k, (i, j) in enumerate(((0, 1), (1, 2), (2, 0))):
            xi, yi, xj, yj = xs[i], ys[i], xs[j], ys[j]
            swap = (xi > xj) | ((xi == xj) & (yi > yj))
            ax, ay = np.where(swap, xj, xi), np.where(swap, yj, yi)
            sign = np.where(swap, -orientation, orientation)
            edge = rows[_EDGE_ROWS * k:_EDGE_ROWS * (k + 1)]
            edge[0], edge[1] = ax, ay
            edge[2] = sign * (np.where(swap, xi, xj) - ax)  # exact: negation commutes
            edge[3] = sign * (np.where(swap, yi, yj) - ay)  # with rounding
            wins_ties = sign > 0
            edge[4] = wins_ties * _STEP_DOWN
            edge[5] = wins_ties * _BELOW_ZERO

        # The depth key as a plane over the screen, through vertex 0.
        k0, k1, k2 = key
        x0, x1, x2 = xs
        y0, y1, y2 = ys
        plane = rows[_PLANE:]
        plane[0], plane[1], plane[2] = k0, x0, y0
        plane[3] = ((k1 - k0) * (y2 - y0) - (k2 - k0) * (y1 - y0)) / area2
        plane[4] = ((k2 - k0) * (x1 - x0) - (k1 - k0) * (x2 - x0)) / area2
        # Inside a triangle the key lies between its vertex values; clamping to them keeps
        # near-degenerate (edge-on) triangles from producing wild extrapolated depths.
        plane[5] = np.minimum(np.minimum(k0, k1), k2)
        plane[6] = np.maximum(np.maximum(k0, k1), k2)
        self.rows = rows

    def take(self, order: np.ndarray) -> None:
        """Reorder the triangles (so that groups become contiguous slices)."""
        self.rows = np.take(self.rows, order, axis=1)
        self.left, self.top = self.left[order], self.top[order]
        self.box_w, self.box_h = self.box_w[order], self.box_h[order]


def _samples(rows: np.ndarray, origin_x, origin_y, gx: np.ndarray, gy: np.ndarray):
    """Coverage mask and depth keys of triangles over grids of pixel centres.

    ``rows`` (rows, n): ``_TriangleSetup`` rows of n triangles; ``origin_x``, ``origin_y`` (n,):
    whole-pixel grid origins; ``gx``, ``gy``: offsets 0, 1, ... shaped to broadcast against each
    other and against (n,). Batches use (1, w, 1) and (h, 1, 1), giving (h, w, n): the triangle
    axis innermost, so numpy loops run over many triangles, not over a grid row of 2 pixels. A
    single triangle uses (1, w) and (h, 1), giving (h, w).
    """
    px = origin_x + gx  # global pixel-centre coordinates, so both triangles of a shared
    py = origin_y + gy  # edge compute the very same numbers
    mask = None
    for k in range(3):
        ax, ay, ex, ey, step, floor = rows[_EDGE_ROWS * k:_EDGE_ROWS * (k + 1)]
        lhs = ex * (py - ay)
        rhs = ey * (px - ax)
        rhs -= np.abs(rhs) * step + floor  # the float just below, on edges that win ties
        inside = lhs > rhs
        if mask is None:
            mask = inside
        else:
            mask &= inside
    k0, x0, y0, kdx, kdy, kmin, kmax = rows[_PLANE:]
    base = k0 + kdx * (origin_x - x0) + kdy * (origin_y - y0)
    key = (base + kdy * gy) + kdx * gx
    np.minimum(key, kmax, out=key)
    np.maximum(key, kmin, out=key)
    return mask, key


def _grid_size(size: np.ndarray, limit: int) -> np.ndarray:
    """Each bounding-box side padded up to the next grid step, at most ``limit``."""
    return np.minimum(_GRID_STEPS[np.searchsorted(_GRID_STEPS, size)], limit)


def _rasterize(setup: _TriangleSetup, zbuf: np.ndarray, width: int, height: int) -> None:
    """Min-merge every triangle's depth keys into the flat z-buffer ``zbuf``."""
    if not setup.count:
        return
    area = setup.box_w * setup.box_h
    grid_w = np.where(area > _DENSE_AREA, 0, _grid_size(setup.box_w, width))
    grid_h = np.where(area > _DENSE_AREA, 0, _grid_size(setup.box_h, height))
    group = grid_w * (height + 1) + grid_h  # 0 for the large triangles, done one by one
    order = np.argsort(group, kind="stable")
    setup.take(order)
    grid_w, grid_h, group = grid_w[order], grid_h[order], group[order]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    ends = np.r_[starts[1:], setup.count]

    image = zbuf.reshape(height, width)
    pixels, keys = [], []
    for start, end in zip(starts, ends):
        w, h = int(grid_w[start]), int(grid_h[start])
        if w == 0:
            for t in range(start, end):
                _dense_triangle(setup, t, image)
            continue
        gx = np.arange(w, dtype=np.float64)[None, :, None]
        gy = np.arange(h, dtype=np.float64)[:, None, None]
        offsets = (np.arange(0, h * width, width)[:, None] + np.arange(w))[:, :, None]
        step = max(1, _MAX_BATCH_SAMPLES // (w * h))
        for first in range(start, end, step):
            last = min(first + step, end)
            # Shift grids that would stick out past the right / bottom edge back inside: the
            # extra columns/rows are outside the triangle's box, so the edge tests reject them.
            origin_x = np.minimum(setup.left[first:last], width - w)
            origin_y = np.minimum(setup.top[first:last], height - h)
            mask, key = _samples(setup.rows[:, first:last], origin_x.astype(np.float64),
                                 origin_y.astype(np.float64), gx, gy)
            flat = offsets + (origin_y * width + origin_x)
            pixels.append(flat[mask])
            keys.append(key[mask])
    if pixels:
        # One scatter for all batches: np.minimum.at has a sizeable cost per call.
        np.minimum.at(zbuf, np.concatenate(pixels), np.concatenate(keys))


def _dense_triangle(setup: _TriangleSetup, t: int, image: np.ndarray) -> None:
    """One large triangle, straight into its bounding box of the z-buffer image, in bands of
    rows that keep the temporary arrays small (a 4K frame's box would otherwise take ~100 MB)."""
    left, top = int(setup.left[t]), int(setup.top[t])
    w, h = int(setup.box_w[t]), int(setup.box_h[t])
    gx = np.arange(w, dtype=np.float64)[None, :]
    band = max(1, _MAX_BATCH_SAMPLES // 4 // w)
    for y in range(top, top + h, band):
        rows = min(band, top + h - y)
        gy = np.arange(rows, dtype=np.float64)[:, None]
        mask, key = _samples(setup.rows[:, t], float(left), float(y), gx, gy)
        region = image[y:y + rows, left:left + w]
        np.minimum(region, key, out=region, where=mask)
