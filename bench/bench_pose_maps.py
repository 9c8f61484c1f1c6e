"""Benchmark: pose maps for 240 frames at 512x512 (body + hands + face, PNG + JSON written)
against Blender's Workbench engine rendering the same frames, and against the job as it was
before issue 13 (one thread, RGB PNG, json.dump), all measured in the same run.

    python bench/bench_pose_maps.py [--frames 240] [--workbench-frames 48] [--resolution 512x512]
                                    [--workers N] [--repeats 3]

Targets (issue 13): at least 300 frames/s on a quiet 2-core machine, at least 1.8x the
single-core path of before (on 2 cores) and at least 50x the Workbench rate. Each job is run
``--repeats`` times and the fastest run counts (the machine's other work only ever slows a
run). Also printed: where the time goes, the job on one thread, and threads against processes
drawing the same frames (why the job uses processes).
"""
import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cli import load_extension  # noqa: E402

TARGET_FPS = 300
TARGET_SPEEDUP = 1.8
TARGET_RATIO = 50


def before_issue_13(scene, job, chunk: int = 16) -> None:
    """The job's path before issue 13, for the baseline: one thread samples a chunk, then draws
    an RGB map, writes it as an RGB PNG and the keypoints with json.dump, frame after frame."""
    from posebridge.draw.png import write_png
    from posebridge.draw.pose_map import draw_pose_map
    from posebridge.pose.formats import comfyui, openpose_json
    from posebridge.render import pose_maps

    def dump_json(path: Path, document) -> None:  # the writer of before: chunked json.dump
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(document, handle, separators=(",", ":"))
        os.replace(tmp, path)

    keypoints = job.output_dir / "keypoints"
    for first in range(0, len(job.frames), chunk):
        seq = pose_maps.sample_keypoints(scene, job, job.frames[first:first + chunk])
        for index in range(seq.frame_count):
            frame = int(seq.frame_numbers[index])
            write_png(job.pose_path(frame), draw_pose_map(seq.data[index], job.width, job.height, job.style))
            job.depth_path(frame).unlink(missing_ok=True)
            dump_json(keypoints / openpose_json.frame_file_name(frame), openpose_json.frame_document(seq, index, job.parts))
    whole = pose_maps.sample_keypoints(scene, job, job.frames)
    dump_json(keypoints / "sequence.json", comfyui.sequence_document(whole, job.parts))


def fastest(repeats: int, run) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--workbench-frames", type=int, default=48,
                        help="frames to render with Workbench (its rate is steady; default 48)")
    parser.add_argument("--resolution", default="512x512")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: the job's)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    width, height = (int(v) for v in args.resolution.lower().split("x"))

    load_extension()
    import bpy

    from posebridge.draw.map_frame import to_plain, write_map_frame
    from posebridge.draw.png import write_png
    from posebridge.draw.pose_map import draw_pose_map, draw_pose_map_indexed
    from posebridge.pose.formats import openpose_json
    from posebridge.render import pose_map_run, pose_maps
    from posebridge.render.demo_shot import build_demo_shot
    from posebridge.render.plain_render import render_workbench_frames
    from posebridge.workers.ordered_pool import default_workers
    from posebridge.workers.processes import WorkerProcesses

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    build_demo_shot(scene, frame_count=args.frames, resolution=(width, height))
    out = Path(tempfile.mkdtemp(prefix="posebridge_bench_"))
    workers = default_workers() - 1 if args.workers is None else args.workers  # the job's default

    def plan(name):  # start-up (planning, first imports) is not timed
        return pose_maps.plan_job(scene, output_dir=str(out / name), hands=True, face=True)

    jobs = {name: plan(name) for name in ("before", "one", "pool", "processes")}
    before_s = fastest(args.repeats, lambda: before_issue_13(scene, jobs["before"]))
    one_s = fastest(args.repeats, lambda: pose_map_run.render_pose_maps(scene, jobs["one"], workers=0))
    reports = []
    pool_s = fastest(args.repeats, lambda: reports.append(pose_map_run.render_pose_maps(scene, jobs["pool"], workers=workers)))
    assert reports[-1].frames_written == args.frames
    for frame in (jobs["one"].frames[0], jobs["one"].frames[-1]):  # same files either way
        assert jobs["one"].pose_path(frame).read_bytes() == jobs["pool"].pose_path(frame).read_bytes()

    # Drawing and writing only (the rig sampled first, not timed), on threads against processes:
    # why the job hands frames to processes.
    job = jobs["processes"]
    seq = pose_maps.sample_keypoints(scene, job, job.frames)
    run = pose_map_run._Run(job, pose_map_run.JobReport())
    items = [run.map_frame(seq, index, None) for index in range(seq.frame_count)]
    parallel = max(2, workers)
    with ThreadPoolExecutor(parallel) as threads:
        thread_s = fastest(args.repeats, lambda: list(threads.map(write_map_frame, items)))
    with WorkerProcesses("draw.map_frame:write_plain", parallel) as processes:
        wait([processes.submit(to_plain(item)) for item in items[:parallel]])  # start-up not timed
        process_s = fastest(args.repeats, lambda: wait([processes.submit(to_plain(item)) for item in items]))

    # Where the time goes, each stage on its own over all frames, before and now.
    def per_frame(seconds):
        return f"{1000 * seconds / args.frames:.2f} ms"

    started = time.perf_counter()
    seq = pose_maps.sample_keypoints(scene, job, job.frames)
    sample_s = time.perf_counter() - started
    started = time.perf_counter()
    rgb = [draw_pose_map(seq.data[i], width, height, job.style) for i in range(seq.frame_count)]
    draw_rgb_s = time.perf_counter() - started
    started = time.perf_counter()
    indexed = [draw_pose_map_indexed(seq.data[i], width, height, job.style) for i in range(seq.frame_count)]
    draw_indexed_s = time.perf_counter() - started
    started = time.perf_counter()
    for i, image in enumerate(rgb):
        write_png(out / f"rgb_{i}.png", image)
    png_rgb_s = time.perf_counter() - started
    started = time.perf_counter()
    for i, (indices, colours) in enumerate(indexed):
        write_png(out / f"indexed_{i}.png", indices, palette=colours)
    png_indexed_s = time.perf_counter() - started
    rgb_kb = sum((out / f"rgb_{i}.png").stat().st_size for i in range(len(rgb))) / len(rgb) / 1024
    indexed_kb = sum((out / f"indexed_{i}.png").stat().st_size for i in range(len(rgb))) / len(rgb) / 1024
    started = time.perf_counter()
    for i in range(seq.frame_count):
        openpose_json.write_frame(seq, i, out, prefix="b", parts=job.parts)
    json_s = time.perf_counter() - started

    workbench_frames = job.frames[: args.workbench_frames or args.frames]
    started = time.perf_counter()
    render_workbench_frames(scene, workbench_frames, out / "workbench")
    workbench_s = time.perf_counter() - started

    fps = {name: args.frames / seconds for name, seconds in
           (("before", before_s), ("one", one_s), ("pool", pool_s), ("threads", thread_s), ("processes", process_s))}
    workbench_fps = len(workbench_frames) / workbench_s
    speedup = fps["pool"] / fps["before"]
    ratio = fps["pool"] / workbench_fps
    print(f"Blender {bpy.app.version_string}, {width}x{height}, {args.frames} frames, body+hands+face, "
          f"{len(os.sched_getaffinity(0))} cores, fastest of {args.repeats}")
    print(f"before issue 13 (one thread, RGB PNG, json.dump): {fps['before']:.1f} frames/s")
    print(f"now, one thread (workers=0):                      {fps['one']:.1f} frames/s "
          f"({fps['one'] / fps['before']:.2f}x before)")
    print(f"now, Blender's thread + {workers} worker process(es) (the job's default): {fps['pool']:.1f} frames/s "
          f"(target >= {TARGET_FPS}); {speedup:.2f}x before (target >= {TARGET_SPEEDUP}x)")
    print(f"  drawing + writing only, {parallel} threads: {fps['threads']:.1f} frames/s; "
          f"{parallel} processes: {fps['processes']:.1f} frames/s")
    print(f"  per frame: sampling {per_frame(sample_s)}, drawing RGB {per_frame(draw_rgb_s)} / "
          f"palette {per_frame(draw_indexed_s)}, PNG RGB {per_frame(png_rgb_s)} ({rgb_kb:.1f} KB) / "
          f"palette {per_frame(png_indexed_s)} ({indexed_kb:.1f} KB), JSON {per_frame(json_s)}")
    print(f"Workbench render: {len(workbench_frames)} frames in {workbench_s:.2f} s = {workbench_fps:.2f} frames/s")
    print(f"ratio pose maps / Workbench: {ratio:.1f}x (target >= {TARGET_RATIO}x)")
    met = fps["pool"] >= TARGET_FPS and speedup >= TARGET_SPEEDUP and ratio >= TARGET_RATIO
    print("targets met" if met else "TARGETS MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
