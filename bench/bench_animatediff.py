"""Benchmark: the AnimateDiff pipeline on the CPU with the tiny model: throughput against the
frames pipeline, the context windows' compute overhead, and flat memory in the shot's length.

    <backend venv>/bin/python bench/bench_animatediff.py [--size 128] [--steps 4] [--frames 48]
                                                        [--memory-size 256] [--memory-frames 16 64 256]
                                                        [--diffusers-frames 16 64 256]

(1) Throughput: 48 frames, pose + depth ControlNets, guidance 7.5, AnimateDiff in context windows
    of 16 frames every 4 and every 8 frames, against the frames pipeline (batch 16, the frames a
    window holds) on the same frames, in the same run, each after a warm-up. Each frame goes
    through the motion UNet once per window holding it, about context_length / stride times a
    step (windows.window_overhead gives the exact figure for the shot: fewer at its ends), and
    through the ControlNets once a step: the windows' compute overhead is printed beside the
    measured ratio.
(2) Memory: the peak resident memory of the backend (a fresh process per point: models loaded,
    the shot's control images in memory, then one AnimateDiff run; pose ControlNet, 256x256)
    at 16, 64 and 256 frames. Target: within 15% of each other. The contrast, at the same frame
    counts: diffusers' own AnimateDiffControlNetPipeline (from_pipe on the same motion pipeline
    and pose ControlNet, stock: the backend's control-embedding cache taken off), with FreeNoise
    context windows (16/4) so that it runs past the motion module's 32 frames; its UNet's spatial
    layers and its ControlNet see every frame at once. It returns latents (output_type="latent"):
    its decoding, which would add the whole video as floats, is left out in its favour.
    Ours is fed as the backend feeds it: the control images as the PNGs a job receives, decoded
    as the pipeline reads them (backend.pipelines.EncodedFrames). What may grow with the shot in
    ours is its own data: those PNGs and the latents. The resident set also keeps what glibc holds after freeing;
    --malloc-mmap-threshold 65536 makes it follow live memory instead.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from measure import Clock, PeakMemory, control_frames, quiet_libraries, timed_run  # noqa: E402

GUIDANCE = 7.5
FLAT_WITHIN = 0.15  # the memory series' largest peak over its smallest, at most 1.15
POINT_TIMEOUT_S = 300


# --- (1) throughput -----------------------------------------------------------------------------


def throughput(model_dir: Path, args, log: Clock) -> dict:
    from backend.model_set import read_model_set
    from backend.models import load_models
    from backend.pipelines import GenerateParams
    from backend.pipelines.windows import context_windows, window_overhead

    paths = read_model_set(model_dir)
    models = load_models(paths.base, paths.openpose, paths.depth, device="cpu", local_files_only=True,
                         motion_adapter=paths.motion_adapter)
    meter = PeakMemory("cpu")
    common = dict(prompt="a knight dancing", negative="blurry", seed=0, steps=args.steps, guidance=GUIDANCE)
    log(f"frames pipeline, batch {args.batch}: {args.frames} frames {args.size}x{args.size}, {args.steps} steps")
    frames = timed_run(models, args.size, GenerateParams(pipeline="frames", batch=args.batch, **common),
                       args.frames, args.batch, meter)
    rows = [{"case": f"frames batch {args.batch}", **frames, "ratio": 1.0}]
    for length, stride in ((16, 4), (16, 8)):
        log(f"animatediff, context {length} stride {stride}: {args.frames} frames")
        params = GenerateParams(pipeline="animatediff", context_length=length, context_stride=stride, **common)
        result = timed_run(models, args.size, params, args.frames, min(args.frames, length + stride), meter)
        windows = context_windows(args.frames, length, stride)
        rows.append({"case": f"animatediff {length}/{stride}", **result, "windows": len(windows),
                     "window_overhead": round(window_overhead(args.frames, length, stride), 3),
                     "long_shot_overhead": length / stride,
                     "ratio": round(result["frames_per_s"] / frames["frames_per_s"], 3)})
    print(f"\n(1) {args.frames} frames, {args.size}x{args.size}, {args.steps} steps, pose + depth, tiny model, CPU")
    print(f"{'case':<22}{'seconds':>9}{'frames/s':>10}{'x frames':>10}{'windows':>9}{'UNet passes/frame':>19}")
    for row in rows:
        passes = f"{row['window_overhead']:.2f} (~{row['long_shot_overhead']:.0f})" if "windows" in row else "1"
        print(f"{row['case']:<22}{row['seconds']:>9.2f}{row['frames_per_s']:>10.2f}{row['ratio']:>9.2f}x"
              f"{row.get('windows', '-'):>9}{passes:>19}")
    print("UNet passes/frame: motion-UNet passes of a frame per step (the windows' compute overhead;"
          " ~length/stride for a long shot); ControlNets: one pass per frame and step in both pipelines")
    return {"settings": {"frames": args.frames, "size": args.size, "steps": args.steps, "batch": args.batch},
            "cases": rows}


# --- (2) memory, one point per process ----------------------------------------------------------


def memory_point(model_dir: Path, pipeline: str, count: int, size: int, steps: int) -> dict:
    """One AnimateDiff run of ``count`` frames in this (fresh) process: its peak resident memory."""
    import torch

    from backend.model_set import read_model_set
    from backend.models import load_models

    quiet_libraries()
    paths = read_model_set(model_dir)
    models = load_models(paths.base, paths.openpose, None, device="cpu", local_files_only=True,
                         motion_adapter=paths.motion_adapter)
    poses, _ = control_frames(count, size)
    run = _ours if pipeline == "ours" else _diffusers
    go = run(models, poses, size, steps)  # everything set up; the run itself below
    meter = PeakMemory("cpu")
    loaded = meter.now_mib()
    meter.reset()  # the peak from here on
    started = time.perf_counter()
    with torch.inference_mode():
        go()
    seconds = time.perf_counter() - started
    peak = meter.peak_mib()
    return {"pipeline": pipeline, "frames": count, "seconds": round(seconds, 2), "loaded_mib": round(loaded, 1),
            "peak_mib": round(peak, 1), "run_mib": round(peak - loaded, 1)}


def _ours(models, poses, size, steps):
    """As the backend runs a job: the control images held as the PNGs it received, decoded as the
    pipeline reads them (backend.jobs)."""
    import io

    from PIL import Image

    from backend.pipelines import EncodedFrames, GenerateParams, generate

    def encode(array) -> bytes:
        out = io.BytesIO()
        Image.fromarray(array).save(out, format="PNG")
        return out.getvalue()

    def decode(data: bytes):
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")

    encoded = EncodedFrames([encode(p) for p in poses], decode, (size, size))
    poses.clear()  # the job holds PNGs, not arrays
    params = GenerateParams(prompt="a knight dancing", negative="blurry", steps=steps, guidance=GUIDANCE,
                            pipeline="animatediff", context_length=16, context_stride=4)

    def go():
        for _ in generate(models, encoded, None, params):  # frames are streamed on, none kept
            pass

    return go


def _diffusers(models, poses, size, steps):
    import torch
    from diffusers import AnimateDiffControlNetPipeline
    from PIL import Image

    controlnet = models.controlnets[0]
    # Stock diffusers: take off the backend's conditioning cache (backend/control_cache.py).
    controlnet.controlnet_cond_embedding = getattr(controlnet.controlnet_cond_embedding, "embedding",
                                                   controlnet.controlnet_cond_embedding)
    pipe = AnimateDiffControlNetPipeline.from_pipe(models.motion_pipe, controlnet=controlnet)
    pipe.set_progress_bar_config(disable=True)
    pipe.enable_free_noise(context_length=16, context_stride=4)
    images = [Image.fromarray(p) for p in poses]

    def go():
        pipe(prompt="a knight dancing", negative_prompt="blurry", num_frames=len(images), height=size, width=size,
             conditioning_frames=images, num_inference_steps=steps, guidance_scale=GUIDANCE,
             generator=torch.Generator("cpu").manual_seed(0), output_type="latent")

    return go


def measure_point(model_dir: Path, pipeline: str, count: int, args) -> dict:
    """memory_point in a fresh process; a point that fails or runs too long says so."""
    command = [sys.executable, str(Path(__file__).resolve()), "--point", pipeline, "--point-frames", str(count),
               "--models", str(model_dir), "--memory-size", str(args.memory_size),
               "--memory-steps", str(args.memory_steps)] + (["--threads", str(args.threads)] if args.threads else [])
    env = dict(os.environ)
    if args.malloc_mmap_threshold:
        # glibc then serves large blocks with mmap and gives them back when freed, so the resident
        # set follows live memory rather than what the allocator keeps after a peak.
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.malloc_mmap_threshold)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=POINT_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        return {"pipeline": pipeline, "frames": count, "error": f"over {POINT_TIMEOUT_S} s"}
    for line in done.stdout.splitlines():
        if line.startswith("POINT "):
            return json.loads(line[len("POINT "):])
    reason = "killed (out of memory?)" if done.returncode < 0 else done.stderr.strip().splitlines()[-1:]
    return {"pipeline": pipeline, "frames": count, "error": str(reason)}


def memory_series(model_dir: Path, args, log: Clock) -> dict:
    series = {"ours": [], "diffusers": []}
    for pipeline, counts in (("ours", args.memory_frames), ("diffusers", args.diffusers_frames)):
        for count in counts:
            log(f"memory: {pipeline}, {count} frames (fresh process)")
            point = measure_point(model_dir, pipeline, count, args)
            series[pipeline].append(point)
            log(f"  {json.dumps(point)}")
            if "error" in point:
                break  # longer shots would not fit either
    print(f"\n(2) peak resident memory, fresh process per point: tiny model, pose ControlNet, "
          f"{args.memory_size}x{args.memory_size}, {args.memory_steps} steps, context 16/4"
          + (f", MALLOC_MMAP_THRESHOLD_={args.malloc_mmap_threshold}" if args.malloc_mmap_threshold else ""))
    print(f"{'frames':>7}  {'ours: peak MiB':>15}{'run MiB':>9}{'s':>7}   "
          f"{'diffusers: peak MiB':>20}{'run MiB':>9}{'s':>7}")
    theirs = {p["frames"]: p for p in series["diffusers"]}
    for point in series["ours"]:
        other = theirs.get(point["frames"], {})
        print(f"{point['frames']:>7}  {_cell(point)}   {_cell(other, 20)}")
    for pipeline, points in series.items():
        ok = [p for p in points if "error" not in p]
        if len(ok) >= 2:
            peaks = [p["peak_mib"] for p in ok]
            spread = max(peaks) / min(peaks)
            growth = ok[-1]["run_mib"] / max(ok[0]["run_mib"], 1e-9)
            verdict = f" (target <= {1 + FLAT_WITHIN:.2f}: {'PASS' if spread <= 1 + FLAT_WITHIN else 'MISS'})" \
                if pipeline == "ours" else ""
            print(f"{pipeline}: largest peak / smallest {spread:.3f}x{verdict}; memory above the loaded process, "
                  f"{ok[-1]['frames']} over {ok[0]['frames']} frames: {growth:.2f}x")
        for p in points:
            if "error" in p:
                print(f"{pipeline}: {p['frames']} frames did not complete: {p['error']}")
    return series


def _cell(point: dict, width: int = 15) -> str:
    if not point:
        return f"{'-':>{width}}{'':>16}"
    if "error" in point:
        return f"{'failed':>{width}}{'':>16}"
    return f"{point['peak_mib']:>{width}.0f}{point['run_mib']:>9.0f}{point['seconds']:>7.1f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16, help="frames pipeline batch (baseline)")
    parser.add_argument("--memory-size", type=int, default=256)
    parser.add_argument("--memory-steps", type=int, default=2)
    parser.add_argument("--memory-frames", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--diffusers-frames", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--malloc-mmap-threshold", type=int, metavar="BYTES",
                        help="MALLOC_MMAP_THRESHOLD_ for the memory points (e.g. 65536: live memory, not"
                             " what glibc keeps after a peak)")
    parser.add_argument("--threads", type=int, help="torch's CPU threads, here and in each point's process")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--out-json", type=Path)
    parser.add_argument("--models", type=Path, help="a tiny model set to use (default: written to a temp folder)")
    parser.add_argument("--point", choices=("ours", "diffusers"), help=argparse.SUPPRESS)
    parser.add_argument("--point-frames", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    if args.point:  # a child process: one memory point
        point = memory_point(args.models, args.point, args.point_frames, args.memory_size, args.memory_steps)
        print("POINT " + json.dumps(point), flush=True)
        return 0

    log = Clock()
    quiet_libraries()
    temporary = None
    model_dir = args.models
    if model_dir is None:
        from backend.model_loading import write_tiny_model_set

        temporary = tempfile.TemporaryDirectory(prefix="posebridge_bench_animatediff_")
        model_dir = write_tiny_model_set(temporary.name).parent
    import torch

    log(f"tiny model set in {model_dir}; {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads,"
        f" load average {os.getloadavg()[0]:.2f}")
    figures = {}
    if not args.skip_throughput:
        figures["throughput"] = throughput(model_dir, args, log)
    figures["memory"] = memory_series(model_dir, args, log)
    figures["load_average_end"] = os.getloadavg()[0]
    log(f"done (load average {figures['load_average_end']:.2f}: other work on the cores skews the times)")
    if args.out_json:
        args.out_json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    if temporary is not None:
        temporary.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
