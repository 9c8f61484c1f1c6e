"""Benchmark: pose maps for 240 frames at 512x512 (body + hands + face, PNG + JSON written)
against Blender's Workbench engine rendering the same frames, measured in the same run.

    python bench/bench_pose_maps.py [--frames 240] [--workbench-frames 240] [--resolution 512x512]

Targets (issue 2): at least 150 pose frames per second (start-up excluded) and at least 20 times
the Workbench rate. Prints a breakdown of where the pose-map time goes.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cli import load_extension  # noqa: E402

TARGET_FPS = 150
TARGET_RATIO = 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--workbench-frames", type=int, default=None,
                        help="frames to render with Workbench (default: all of them)")
    parser.add_argument("--resolution", default="512x512")
    args = parser.parse_args()
    width, height = (int(v) for v in args.resolution.lower().split("x"))

    load_extension()
    import bpy

    from posebridge.draw.png import write_png
    from posebridge.draw.pose_map import draw_pose_map
    from posebridge.pose.formats import openpose_json
    from posebridge.render import pose_maps
    from posebridge.render.demo_shot import build_demo_shot
    from posebridge.render.plain_render import render_workbench_frames

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    build_demo_shot(scene, frame_count=args.frames, resolution=(width, height))
    out = Path(tempfile.mkdtemp(prefix="posebridge_bench_"))

    # Start-up (planning, first imports) is excluded: plan, then time the run.
    job = pose_maps.plan_job(scene, output_dir=str(out / "poses"), hands=True, face=True)
    started = time.perf_counter()
    report = pose_maps.render_pose_maps(scene, job)
    pose_seconds = time.perf_counter() - started
    assert report.frames_written == args.frames
    pose_fps = args.frames / pose_seconds

    # Where the time goes, each stage timed on its own over all frames.
    started = time.perf_counter()
    seq = pose_maps.sample_keypoints(scene, job, job.frames)
    sample_s = time.perf_counter() - started
    started = time.perf_counter()
    images = [draw_pose_map(seq.data[i], width, height, job.style) for i in range(seq.frame_count)]
    draw_s = time.perf_counter() - started
    started = time.perf_counter()
    for i, image in enumerate(images):
        write_png(out / f"b_{i}.png", image)
    png_s = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(seq.frame_count):
        openpose_json.write_frame(seq, i, out, prefix="b", parts=job.parts)
    json_s = time.perf_counter() - started

    workbench_frames = job.frames[: args.workbench_frames or args.frames]
    started = time.perf_counter()
    render_workbench_frames(scene, workbench_frames, out / "workbench")
    workbench_seconds = time.perf_counter() - started
    workbench_fps = len(workbench_frames) / workbench_seconds

    ratio = pose_fps / workbench_fps
    per_frame = lambda s: f"{1000 * s / args.frames:.2f} ms/frame"  # noqa: E731
    print(f"Blender {bpy.app.version_string}, {width}x{height}, {args.frames} frames, body+hands+face")
    print(f"pose maps (PNG + JSON): {pose_seconds:.2f} s = {pose_fps:.1f} frames/s "
          f"(target >= {TARGET_FPS})")
    print(f"  sampling poses+camera {per_frame(sample_s)}, drawing {per_frame(draw_s)}, "
          f"PNG {per_frame(png_s)}, JSON {per_frame(json_s)}")
    print(f"Workbench render: {len(workbench_frames)} frames in {workbench_seconds:.2f} s = "
          f"{workbench_fps:.2f} frames/s")
    print(f"ratio pose maps / Workbench: {ratio:.1f}x (target >= {TARGET_RATIO}x)")
    met = pose_fps >= TARGET_FPS and ratio >= TARGET_RATIO
    print("targets met" if met else "TARGETS MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
