"""Benchmark: the numpy depth rasteriser on a character-like shot at 512x512.

    python bench/bench_depth_raster.py [--resolution 512x512] [--triangles 20000] [--frames 30]

The shot: a body made of ellipsoids (torso, head, limbs; many small triangles) in front of a floor
that runs behind the camera (clipped at the near plane) and a wall (a few huge triangles), seen
by a 50 mm perspective camera. The character turns a little every frame. Prints ms/frame and
triangles/s, and runs a plain per-triangle-loop rasteriser (the obvious numpy way: one bounding
box at a time) on the same frames as the baseline, checking both agree.

Target (issue 5): the whole depth job at >= 8 frames/s, which leaves the rasteriser <= 60 ms a
frame for 20k triangles at 512x512 on one core.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cli import load_extension  # noqa: E402

BUDGET_MS = 60.0


def ellipsoid(centre, radii, segments: int, rotation) -> np.ndarray:
    """A UV ellipsoid as (2 * segments^2, 3, 3) triangles (poles included as slivers)."""
    theta = np.linspace(0, np.pi, segments + 1)
    phi = np.linspace(0, 2 * np.pi, segments + 1)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    unit = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], axis=-1)
    grid = (unit * radii) @ rotation.T + centre
    a, b = grid[:-1, :-1], grid[:-1, 1:]
    c, d = grid[1:, :-1], grid[1:, 1:]
    return np.concatenate([np.stack([a, b, d], -2), np.stack([a, d, c], -2)]).reshape(-1, 3, 3)


def rotation_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


# Body parts: centre (x, y, z) relative to the hips, radii.
PARTS = [
    ((0.0, 0.35, 0.0), (0.18, 0.32, 0.11)),  # torso
    ((0.0, 0.82, 0.0), (0.10, 0.12, 0.11)),  # head
    ((-0.27, 0.45, 0.0), (0.05, 0.16, 0.05)), ((0.27, 0.45, 0.0), (0.05, 0.16, 0.05)),  # arms
    ((-0.30, 0.12, 0.05), (0.04, 0.15, 0.04)), ((0.30, 0.12, 0.05), (0.04, 0.15, 0.04)),
    ((-0.10, -0.30, 0.0), (0.08, 0.25, 0.08)), ((0.10, -0.30, 0.0), (0.08, 0.25, 0.08)),  # legs
    ((-0.10, -0.78, 0.02), (0.06, 0.24, 0.06)), ((0.10, -0.78, 0.02), (0.06, 0.24, 0.06)),
]


def shot_frame(frame: int, character_triangles: int, distance: float = 4.5) -> np.ndarray:
    """Camera-space triangles of one frame: character (hips ``distance`` m away) + floor + wall."""
    segments = max(2, int(round(np.sqrt(character_triangles / (2 * len(PARTS))))))
    turn = rotation_y(0.05 * frame)
    hips = np.array([0.2 * np.sin(0.1 * frame), -0.1, -distance])
    body = [ellipsoid(turn @ np.array(c) + hips, np.array(r), segments, turn) for c, r in PARTS]
    floor_y, wall_z = -1.05, -9.0
    # The floor starts 3 m behind the camera: it crosses the near plane and is clipped.
    floor = np.array([[[-40, floor_y, 3], [40, floor_y, 3], [40, floor_y, wall_z]],
                      [[-40, floor_y, 3], [40, floor_y, wall_z], [-40, floor_y, wall_z]]])
    wall = np.array([[[-40, floor_y, wall_z], [40, floor_y, wall_z], [40, 20, wall_z]],
                     [[-40, floor_y, wall_z], [40, 20, wall_z], [-40, 20, wall_z]]])
    return np.concatenate(body + [floor, wall]).astype(np.float64)


def perspective(width: int, height: int, lens=50.0, sensor=36.0, near=0.1, far=100.0):
    """Blender's window matrix for a camera with sensor fit 'auto'."""
    focal = 2 * lens / sensor
    m = np.zeros((4, 4))
    m[0, 0] = focal * max(width, height) / width
    m[1, 1] = focal * max(width, height) / height
    m[2, 2] = -(far + near) / (far - near)
    m[2, 3] = -2 * far * near / (far - near)
    m[3, 2] = -1.0
    return m


def per_triangle_loop(tris, projection, width, height, near):
    """The baseline: near-clip like the real one, then one numpy pass per triangle's box."""
    from posebridge.draw.depth_raster import clip_near

    tris = clip_near(tris, near)
    m = projection
    x, y, z = tris[..., 0], tris[..., 1], tris[..., 2]
    w = -z
    sx = ((m[0, 0] * x + m[0, 2] * z) / w + 1) * width / 2 - 0.5
    sy = (1 - (m[1, 1] * y + m[1, 2] * z) / w) * height / 2 - 0.5
    inv = 1.0 / w
    depth = np.full((height, width), np.inf)
    for (x0, x1, x2), (y0, y1, y2), (q0, q1, q2) in zip(sx, sy, inv):
        left, right = max(int(np.ceil(min(x0, x1, x2))), 0), min(int(max(x0, x1, x2)), width - 1)
        top, bottom = max(int(np.ceil(min(y0, y1, y2))), 0), min(int(max(y0, y1, y2)), height - 1)
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if left > right or top > bottom or area == 0:
            continue
        px, py = np.meshgrid(np.arange(left, right + 1), np.arange(top, bottom + 1))
        b1 = ((px - x0) * (y2 - y0) - (x2 - x0) * (py - y0)) / area
        b2 = ((x1 - x0) * (py - y0) - (px - x0) * (y1 - y0)) / area
        b0 = 1 - b1 - b2
        inside = (b0 >= 0) & (b1 >= 0) & (b2 >= 0)
        d = 1.0 / (b0 * q0 + b1 * q1 + b2 * q2)
        region = depth[top:bottom + 1, left:right + 1]
        np.minimum(region, np.where(inside, d, np.inf), out=region)
    return depth.astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", default="512x512")
    parser.add_argument("--triangles", type=int, default=20000, help="character triangles")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--baseline-frames", type=int, default=3)
    args = parser.parse_args()
    width, height = (int(v) for v in args.resolution.lower().split("x"))

    load_extension()
    from posebridge.draw.depth_raster import rasterize_depth

    near = 0.1
    projection = perspective(width, height, near=near)

    def run(distance: float):
        """Median, min and max seconds a frame over the shot, and the last depth map."""
        frames = [shot_frame(f, args.triangles, distance) for f in range(args.frames)]
        rasterize_depth(frames[0], projection, width, height, near=near)  # warm-up
        times = []
        for tris in frames:
            started = time.perf_counter()
            depth = rasterize_depth(tris, projection, width, height, near=near)
            times.append(time.perf_counter() - started)
        return frames, np.array(times), depth

    frames, times, depth = run(4.5)
    ms = 1000 * np.median(times)
    count = len(frames[0])
    print(f"{width}x{height}, {count} triangles a frame ({count - 4} character + floor + wall), "
          f"{args.frames} frames, numpy {np.__version__}")
    print(f"rasterize_depth, full-body shot: {ms:.1f} ms/frame median (min {1000 * times.min():.1f},"
          f" max {1000 * times.max():.1f}) = {count / ms * 1000 / 1e6:.2f} M triangles/s "
          f"(budget <= {BUDGET_MS:.0f} ms: {'OK' if ms <= BUDGET_MS else 'OVER'})")

    base_times, worst, differ = [], 0.0, 0
    for tris in frames[: args.baseline_frames]:
        started = time.perf_counter()
        expected = per_triangle_loop(tris, projection, width, height, near)
        base_times.append(time.perf_counter() - started)
        got = rasterize_depth(tris, projection, width, height, near=near)
        both = np.isfinite(expected) & np.isfinite(got)
        worst = max(worst, float(np.max(np.abs(got[both] - expected[both]) / expected[both])))
        differ += int((np.isfinite(expected) != np.isfinite(got)).sum())
    base_ms = 1000 * np.median(base_times)
    print(f"baseline per-triangle loop: {base_ms:.0f} ms/frame -> {base_ms / ms:.0f}x faster; "
          f"max relative depth difference {worst:.1e}, pixels covered differently {differ}")

    # What follows the rasteriser in the job: shot range, encoding, PNG writing.
    from posebridge.draw.depth_encode import encode_depth, shot_depth_range
    from posebridge.draw.png import write_png

    maps = [rasterize_depth(t, projection, width, height, near=near) for t in frames]
    depth_range = shot_depth_range(maps)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        for i, depth_map in enumerate(maps):
            write_png(Path(folder) / f"depth_{i:04d}.png", encode_depth(depth_map, depth_range))
        encode_ms = 1000 * (time.perf_counter() - started) / len(maps)
    print(f"encode_depth (inverse, 8-bit) + write_png: {encode_ms:.1f} ms/frame")

    # The same character close up (bigger triangles, more pixels each).
    _, close_times, _ = run(2.0)
    close_ms = 1000 * np.median(close_times)
    print(f"rasterize_depth, close-up (character at 2 m): {close_ms:.1f} ms/frame median "
          f"(min {1000 * close_times.min():.1f}, max {1000 * close_times.max():.1f})")
    return 0 if max(ms, close_ms) <= BUDGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
