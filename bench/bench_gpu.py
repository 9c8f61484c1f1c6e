"""Benchmark: full-size SD1.5 generation on a GPU, through the backend's own loading and pipelines.

    <backend venv>/bin/python bench/bench_gpu.py [--device cuda] [--out-json figures.json]
    <backend venv>/bin/python bench/bench_gpu.py --tiny          # the same path, tiny model, CPU

Builds SD1.5 (UNet, VAE, CLIP text encoder, tokenizer), the openpose and depth ControlNets, the
AnimateDiff v1-5-3 motion adapter and the IP-Adapter (ViT-H/14 image encoder) from their
published configurations (bench/sd15_configs.py) with random weights, writes them in fp16 in the
tiny set's layout (bench/full_size_model.py), and loads them with backend.models.load_models,
offline (random weights take as long to run as trained ones). Then times, each after a warm-up
run (2 steps, same shapes):

- frames pipeline, pose + depth ControlNets, 512x512, 20 steps, guidance 7.5, batch 4 and 8;
- AnimateDiff with both ControlNets, 16 and 64 frames (context 16, stride 4), and 16 frames
  with an identity reference (IP-Adapter);

printing seconds, frames/s and peak memory (GPU: torch.cuda.max_memory_allocated, reset before
each timed run; CPU: the process's peak resident set, reset through /proc/self/clear_refs, which
still counts what the allocator kept from the warm-up: bench_animatediff.py measures CPU memory in
fresh processes).
Targets on the GPU: frames pipeline >= 8 frames/s; AnimateDiff 16 frames in <= 4 s; the peak
memory of 64 frames close to that of 16 (context windows keep it flat). --tiny runs the same
code on the tiny random model (backend.tiny_model) at 64x64, 2 steps, on the CPU (one thread):
a check that the path works, whose figures are not judged against the targets.

First, Wan 2.1 VACE 1.3B (bench/bench_gpu_wan.py, issue 11): its transformer at 480x832, 81
frames, two forwards a step (classifier-free guidance), and the VAE decode of a segment, under
"wan" in the JSON (--wan only: nothing else; --wan off: skipped). Then SDXL + two ControlNets at
1024x1024 and its fast preview (bench/bench_gpu_sdxl.py, issue 14), under "sdxl" (--sdxl only /
off likewise).

A case that fails is reported and the next one runs; the exit status is then 1. Progress lines carry the seconds
since the start, and --out-json is rewritten after every case.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

# Nothing may touch the network: the benchmark runs on machines that have none.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from measure import GPU_PEAK_TFLOPS, Clock, PeakMemory, quiet_libraries, timed_run  # noqa: E402

TARGET_FRAMES_PER_S = 8.0
TARGET_VIDEO_16_SECONDS = 4.0
FLAT_MEMORY_RATIO = 1.15  # peak at 64 frames over peak at 16 frames, at most
PROMPT, NEGATIVE, SEED = "a knight dancing in a hall", "blurry", 0


@dataclass(frozen=True)
class Settings:
    size: int
    steps: int
    frames: int  # frames per timed run of the frames pipeline
    batches: tuple
    video_frames: tuple
    guidance: float = 7.5
    context_length: int = 16
    context_stride: int = 4


FULL = Settings(size=512, steps=20, frames=32, batches=(4, 8), video_frames=(16, 64))
TINY = Settings(size=64, steps=2, frames=8, batches=(4, 8), video_frames=(16, 64))


def run_cases(models, settings: Settings, meter: PeakMemory, log: Clock, record) -> None:
    """Every case, each recorded (``record(case)``) as soon as it is done. A case that fails is
    recorded with its error and the others still run: a one-shot run on a GPU stays useful."""
    from backend.pipelines import GenerateParams

    def attempt(case: dict, count: int, params, warm_count: int, reference=None) -> None:
        log(f"{case['case']}: {count} frames")
        try:
            result = timed_run(models, settings.size, params, count, warm_count, meter, reference=reference)
        except Exception as exc:  # noqa: BLE001 - reported, and the next case runs
            log(f"  FAILED: {type(exc).__name__}: {exc}")
            if meter.cuda:
                meter.torch.cuda.empty_cache()
            record({**case, "frames": count, "error": f"{type(exc).__name__}: {exc}"})
            return
        record({**case, **result})

    common = dict(prompt=PROMPT, negative=NEGATIVE, seed=SEED, steps=settings.steps, guidance=settings.guidance)
    for batch in settings.batches:
        params = GenerateParams(pipeline="frames", batch=batch, **common)
        attempt({"case": f"frames batch {batch}", "pipeline": "frames", "batch": batch}, settings.frames, params,
                batch)
    video = GenerateParams(pipeline="animatediff", context_length=settings.context_length,
                           context_stride=settings.context_stride, **common)
    warm_count = settings.context_length + settings.context_stride  # two windows: every shape
    for count in settings.video_frames:
        attempt({"case": f"animatediff {count}", "pipeline": "animatediff"}, count, video, min(count, warm_count))
    if models.has_ip_adapter:
        count = settings.video_frames[0]
        reference = np.random.default_rng(SEED).integers(0, 256, (settings.size, settings.size, 3), dtype=np.uint8)
        attempt({"case": f"animatediff {count} + reference", "pipeline": "animatediff", "reference": True}, count,
                video, min(count, warm_count), reference=reference)


def judge(cases: list, settings: Settings, judged: bool) -> list:
    """The targets, each with its figure and PASS / MISS (None when not judged or not measured)."""
    done = {case["case"]: case for case in cases if "error" not in case}
    first, last = settings.video_frames[0], settings.video_frames[-1]
    figures = [(f"frames pipeline batch {b} >= {TARGET_FRAMES_PER_S:g} frames/s",
                done.get(f"frames batch {b}", {}).get("frames_per_s"), lambda v: v >= TARGET_FRAMES_PER_S)
               for b in settings.batches]
    figures.append((f"animatediff {first} frames in <= {TARGET_VIDEO_16_SECONDS:g} s",
                    done.get(f"animatediff {first}", {}).get("seconds"), lambda v: v <= TARGET_VIDEO_16_SECONDS))
    ratio = None
    if f"animatediff {first}" in done and f"animatediff {last}" in done:
        ratio = round(done[f"animatediff {last}"]["peak_mib"] / done[f"animatediff {first}"]["peak_mib"], 3)
    figures.append((f"animatediff peak memory {last} / {first} frames <= {FLAT_MEMORY_RATIO:g}", ratio,
                    lambda v: v <= FLAT_MEMORY_RATIO))
    return [{"target": target, "value": value, "pass": None if not judged or value is None else bool(test(value))}
            for target, value, test in figures]


def print_table(cases: list, memory_kind: str) -> None:
    print(f"\n{'case':<28}{'frames':>7}{'seconds':>10}{'frames/s':>10}{'peak MiB':>11}{'before':>9}{'run MiB':>9}")
    for c in cases:
        if "error" in c:
            print(f"{c['case']:<28}{c['frames']:>7}  FAILED: {c['error'][:120]}")
            continue
        print(f"{c['case']:<28}{c['frames']:>7}{c['seconds']:>10.2f}{c['frames_per_s']:>10.2f}"
              f"{c['peak_mib']:>11.0f}{c['resident_mib']:>9.0f}{c['working_mib']:>9.0f}")
    print(f"(memory: {memory_kind}; 'before' is what was held before the run, 'run MiB' the peak above it)")


def print_targets(verdicts: list, judged: bool) -> None:
    print("\ntargets" + ("" if judged else " (full size on a GPU only: not judged at these settings)"))
    for v in verdicts:
        mark = {True: "PASS", False: "MISS", None: "-"}[v["pass"]]
        print(f"  {v['target']:<52} {v['value']!s:>10}  {mark}")


def utilisation(cases: list, models, settings: Settings, gpu: str) -> list:
    """Achieved TFLOP/s of the frames pipeline from the architectures' FLOPs (bench_generate's
    count on the meta device) and the number of UNet evaluations the scheduler made (SD1.5's PNDM
    makes 21 for 20 steps), and its share of the GPU's dense fp16 peak where that is known."""
    from bench_generate import flops_per_frame

    evaluations = len(models.pose_depth_pipe.scheduler.timesteps)
    per_frame = flops_per_frame(settings.size, evaluations)["frame"]
    peak = next((tflops for name, tflops in GPU_PEAK_TFLOPS.items() if name in gpu), None)
    rows = []
    for case in cases:
        if case["pipeline"] == "frames" and "error" not in case:
            achieved = case["frames_per_s"] * per_frame
            rows.append({"case": case["case"], "tflop_per_frame": round(per_frame, 2), "unet_evaluations": evaluations,
                         "tflop_per_s": round(achieved, 1), "share_of_peak": peak and round(achieved / peak, 3)})
    return rows


def environment(device: str) -> dict:
    import diffusers
    import torch
    import transformers

    # Other work on the cores skews CPU times (with threads waiting on each other, many-fold).
    info = {"torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
            "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average": round(os.getloadavg()[0], 2)}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info


def write_models(folder: Path, tiny: bool, device: str, log: Clock, setup: dict) -> None:
    """The tiny set (backend.tiny_model) or the full-size one, with its posebridge-models.json."""
    started = time.perf_counter()
    if tiny:
        from backend.model_loading import write_tiny_model_set

        write_tiny_model_set(folder)
    else:
        from full_size_model import write_full_size_model

        write_full_size_model(folder, device=device, log=log)
    setup["write_s"] = round(time.perf_counter() - started, 2)
    log(f"model set written in {setup['write_s']} s to {folder}")


def load(folder: Path, device: str, dtype: str, log: Clock, setup: dict):
    """The set loaded as the backend loads it: backend.models.load_models, offline."""
    from backend.model_set import read_model_set
    from backend.models import load_models

    paths = read_model_set(folder)
    if paths is None:
        raise SystemExit(f"{folder} holds no posebridge-models.json")
    log("loading with backend.models.load_models, offline")
    started = time.perf_counter()
    models = load_models(paths.base, paths.openpose, paths.depth, device=device, dtype=dtype, local_files_only=True,
                         motion_adapter=paths.motion_adapter, ip_adapter=paths.ip_adapter)
    setup["load_s"] = round(time.perf_counter() - started, 2)
    setup["dtype"] = str(models.dtype).removeprefix("torch.")
    log(f"loaded in {setup['load_s']} s ({setup['dtype']})")
    return models


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny random model at 64x64 (CPU by default)")
    parser.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda, or cpu with --tiny)")
    parser.add_argument("--dtype", default="auto", choices=("auto", "fp16", "bf16", "fp32"))
    parser.add_argument("--out-json", type=Path, help="write the figures there as JSON")
    parser.add_argument("--work", type=Path, help="write the model set here and keep it (default: a temp folder)")
    parser.add_argument("--models", type=Path, help="use this model set (posebridge-models.json), write none")
    parser.add_argument("--threads", type=int,
                        help="torch's CPU threads (default: 1 with --tiny, whose ops are too small to share out and"
                             " whose times threads waiting on each other on a busy machine make many-fold worse;"
                             " else torch's own choice)")
    parser.add_argument("--size", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--frames", type=int, help="frames per timed run of the frames pipeline")
    parser.add_argument("--batches", type=int, nargs="+")
    parser.add_argument("--video-frames", type=int, nargs="+")
    parser.add_argument("--wan", choices=("first", "only", "off"), default="first",
                        help="Wan 2.1 VACE 1.3B before the SD1.5 cases (default), alone, or not at all")
    parser.add_argument("--sdxl", choices=("first", "only", "off"), default="first",
                        help="SDXL + ControlNets at 1024x1024 and its preview (after Wan) before the SD1.5 cases"
                             " (default), alone, or not at all")
    args = parser.parse_args(argv)
    log = Clock()

    import torch

    quiet_libraries()
    threads = args.threads or (1 if args.tiny else None)
    if threads:
        torch.set_num_threads(threads)
    from backend.models import pick_device

    base = TINY if args.tiny else FULL
    overrides = dict(size=args.size, steps=args.steps, frames=args.frames,
                     batches=tuple(args.batches or ()), video_frames=tuple(args.video_frames or ()))
    settings = replace(base, **{k: v for k, v in overrides.items() if v})
    device = pick_device(args.device or ("cpu" if args.tiny else "cuda"))
    judged = not args.tiny and device.startswith("cuda") and (settings.size, settings.steps) == (512, 20)
    figures = {"mode": "tiny" if args.tiny else "full", "device": device, "settings": asdict(settings),
               "environment": environment(device), "setup": {}, "cases": []}

    def save() -> None:
        if args.out_json:
            args.out_json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")

    log(f"{figures['mode']} model set on {device}: {json.dumps(figures['environment'])}")
    if args.wan != "off":
        from bench_gpu_wan import print_wan, run_wan

        figures["wan"] = run_wan(args.tiny, device, log)
        save()
        print_wan(figures["wan"])
        if args.wan == "only":
            return 1 if any("error" in case for case in figures["wan"]["cases"]) else 0
    if args.sdxl != "off":
        from bench_gpu_sdxl import print_sdxl, run_sdxl

        figures["sdxl"] = run_sdxl(args.tiny, device, log)
        save()
        print_sdxl(figures["sdxl"])
        if args.sdxl == "only":
            return 1 if any("error" in case for case in figures["sdxl"]["cases"]) else 0
    temporary = None
    model_dir = args.models
    if model_dir is None:
        if args.work is None:
            temporary = tempfile.TemporaryDirectory(prefix="posebridge_bench_gpu_")
        model_dir = args.work or Path(temporary.name)
        write_models(model_dir, args.tiny, device, log, figures["setup"])
    models = load(model_dir, device, args.dtype, log, figures["setup"])
    save()

    meter = PeakMemory(device)
    figures["memory_kind"] = meter.kind

    def record(case: dict) -> None:
        figures["cases"].append(case)
        if "error" not in case:
            log(f"  {case['case']}: {case['frames']} frames in {case['seconds']:.2f} s = "
                f"{case['frames_per_s']:.2f} frames/s, peak {case['peak_mib']:.0f} MiB")
        save()

    with torch.inference_mode():
        run_cases(models, settings, meter, log, record)
    if not meter.reset_works:
        print("note: /proc/self/clear_refs could not be written: CPU peaks cover the whole process")
    print_table(figures["cases"], meter.kind)
    video = [c for c in figures["cases"]
             if c["pipeline"] == "animatediff" and not c.get("reference") and "error" not in c]
    if len(video) >= 2:
        print(f"animatediff memory, {video[-1]['frames']} over {video[0]['frames']} frames: peak "
              f"{video[-1]['peak_mib'] / video[0]['peak_mib']:.3f}x, above the loaded models "
              f"{video[-1]['working_mib'] / max(video[0]['working_mib'], 1e-9):.3f}x")
    figures["targets"] = judge(figures["cases"], settings, judged)
    print_targets(figures["targets"], judged)
    save()
    if judged:
        log("FLOPs of the frames pipeline (meta device)")
        figures["utilisation"] = utilisation(figures["cases"], models, settings, figures["environment"]["gpu"])
        for u in figures["utilisation"]:
            share = f" = {u['share_of_peak']:.0%} of the fp16 peak" if u["share_of_peak"] else ""
            print(f"  {u['case']}: {u['tflop_per_frame']} TFLOP a frame ({u['unet_evaluations']} UNet evaluations)"
                  f" -> {u['tflop_per_s']} TFLOP/s achieved{share}")
        save()
    if temporary is not None:
        temporary.cleanup()
    failed = [c["case"] for c in figures["cases"] + figures.get("wan", {}).get("cases", [])
              + figures.get("sdxl", {}).get("cases", []) if "error" in c]
    log(f"done{'; FAILED: ' + ', '.join(failed) if failed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
