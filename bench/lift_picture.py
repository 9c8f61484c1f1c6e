"""README picture for issue 16: one imported motion seen from the source camera and from the side,
capture against import.

    python bench/lift_picture.py [--clip 07_01] [--source front] [--lift learned] [--out FILE]

The capture (a CMU clip in ../shared/data/cmu) is imported onto a Rigify metarig as the source
camera sees it, exactly as ``bench_lift_3d`` does. Both rigs' body keypoints are then projected
through the source camera and through a camera on the subject's side, at a few moments, and
drawn as stick figures: the capture in grey, the import in orange, each import lined up on the
capture's mid-hip. From the source camera the two coincide (the import keeps the video's image
directions); from the side, the import's depth shows.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import bench_lift_3d  # noqa: E402  (puts the repository and tests on sys.path)

from cli import exit_now, load_extension  # noqa: E402

PANEL = (240, 300)  # width, height of one moment in one view
MARGIN = 0.12  # of the panel, around the two figures
# The torso as the bench measures it (mid-hip to mid-shoulders) and the limbs; no head: the two
# rigs' own neck and face points sit in different places.
BONES = (("r_shoulder", "l_shoulder"), ("r_shoulder", "r_elbow"),
         ("r_elbow", "r_wrist"), ("l_shoulder", "l_elbow"), ("l_elbow", "l_wrist"), ("mid_shoulder", "mid_hip"),
         ("r_hip", "l_hip"), ("r_hip", "r_knee"), ("r_knee", "r_ankle"), ("l_hip", "l_knee"), ("l_knee", "l_ankle"))
# Palette keys: 1 background, 2 capture, 3 import (drawn last, on top), 4 divider.
PALETTE = np.array([(0, 0, 0), (30, 30, 34), (175, 175, 180), (255, 140, 40), (70, 70, 76)], np.uint8)


def panel_figures(capture_xy, import_xy, index, panel=PANEL):
    """Pixel segments (x1, y1, x2, y2 int arrays, one per figure) of the two skeletons in one
    panel: scaled together to fit, the import moved onto the capture's mid-hip (the import's
    distance from the camera is its own: only the pose is compared)."""
    def with_midpoints(xy):
        middle = [xy[[index("r_shoulder"), index("l_shoulder")]].mean(0), xy[[index("r_hip"), index("l_hip")]].mean(0)]
        return np.concatenate([xy, middle])

    extra = {"mid_shoulder": len(capture_xy), "mid_hip": len(capture_xy) + 1}
    bones = np.array([(extra.get(a) or index(a), extra.get(b) or index(b)) for a, b in BONES])
    capture_xy, import_xy = with_midpoints(capture_xy), with_midpoints(import_xy)
    shifted = import_xy - import_xy[extra["mid_hip"]] + capture_xy[extra["mid_hip"]]
    both = np.concatenate([capture_xy, shifted])
    low, high = both.min(0), both.max(0)
    width, height = panel
    scale = (1.0 - 2.0 * MARGIN) * min(width / max(high[0] - low[0], 1e-6), height / max(high[1] - low[1], 1e-6))
    centre = (low + high) / 2.0
    out = []
    for xy in (capture_xy, shifted):
        px = np.rint((xy - centre) * scale + np.array(panel) / 2.0).astype(np.int64)
        out.append((px[bones[:, 0], 0], px[bones[:, 0], 1], px[bones[:, 1], 0], px[bones[:, 1], 1]))
    return out


def compose(views, layout, panel=PANEL, thickness=4):
    """One image: a row per view (name -> (capture xy (moments, points, 2), import xy)), a
    column per moment."""
    from posebridge.draw.paint import paint
    from posebridge.draw.raster import thick_lines

    rows, columns = len(views), next(iter(views.values()))[0].shape[0]
    width, height = panel
    image = np.zeros((rows * height, columns * width, 3), np.uint8)
    for r, (capture, imported) in enumerate(views.values()):
        for c in range(columns):
            layers = []
            background = np.arange(width * height)
            layers.append((background, np.ones_like(background)))
            for key, (x1, y1, x2, y2) in zip((2, 3), panel_figures(capture[c], imported[c], layout.index, panel)):
                flat = thick_lines(x1, y1, x2, y2, thickness, width, height)[1]
                layers.append((flat, np.full(flat.shape, key)))
            tile = paint(width, height, layers, PALETTE)
            tile[:, -1] = tile[-1, :] = PALETTE[4]  # a thin divider between panels
            image[r * height:(r + 1) * height, c * width:(c + 1) * width] = tile
    return image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="07_01", choices=list(bench_lift_3d.CLIPS))
    parser.add_argument("--source", default="front", help="the view the import sees (lift_views.VIEWS)")
    parser.add_argument("--lift", default=None, choices=bench_lift_3d.LIFTS, help="default: the import's default")
    parser.add_argument("--moments", type=int, default=5, help="frames shown, spread over the clip")
    parser.add_argument("--out", type=Path, default=bench_lift_3d.REPO / "docs" / "images" / "lift_3d.png")
    args = parser.parse_args(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else None)
    load_extension()
    from posebridge.pose.layouts import OPENPOSE_FULL
    from posebridge.draw.png import write_png

    path = bench_lift_3d.SHARED_CMU / f"{args.clip}.bvh"
    if not path.exists():
        print(f"no {path}: the CMU clips live in ../shared/data/cmu")
        return 2
    scene, capture, frames = bench_lift_3d.load_clip(path)
    side = "side" if args.source != "side" else "front"
    cameras = bench_lift_3d.view_cameras(scene, capture, frames, [args.source, side])
    with tempfile.TemporaryDirectory() as workdir:
        figures, target = bench_lift_3d.measure_view(scene, capture, cameras[args.source][0], frames, workdir,
                                                     lift=args.lift, keep_target=True)
    moments = [frames[int(i)] for i in np.linspace(0, len(frames) - 1, args.moments + 2)[1:-1]]
    views = {}
    for view in (args.source, side):
        (capture_rig, target_rig), _ = bench_lift_3d.rig_points(scene, [capture, target], cameras[view][0], moments)
        views[view] = (capture_rig[2], target_rig[2])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_png(args.out, compose(views, OPENPOSE_FULL))
    lift = figures["lift"]
    print(f"{args.out}: {args.clip} imported from the {args.source} camera ({args.lift or 'default'} lift), "
          f"rows: {args.source}, {side}; frames {moments}; this view's limbs in 3-D: mean "
          f"{lift['mean_deg']:.1f} deg, p95 {lift['p95_deg']:.1f}")
    return 0


if __name__ == "__main__":
    exit_now(main())
