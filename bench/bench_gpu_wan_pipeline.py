"""Benchmark: a Wan 2.1 VACE segment end to end through PoseBridge's own pipeline (issue 11):
``backend.pipelines.generate(..., pipeline="wan-vace")`` on the full-size 1.3B transformer and
Wan2.1 VAE with random weights, written as a diffusers folder and loaded by backend.wan_model
(bfloat16 transformer, float32 VAE) the way a real model is:

    <backend venv>/bin/python bench/bench_gpu_wan_pipeline.py [--out-json F] [--steps 2,12]
    <backend venv>/bin/python bench/bench_gpu_wan_pipeline.py --tiny     # the same path on the CPU
    ... --memory-cap-gib 10 [--cpu-offload]   # a smaller card: what a segment that does not fit says

bench_gpu_wan.py times the transformer step and the VAE decode alone; this one times what a job
does: the control video and mask built from 81 pose maps at 832x480, their VAE encodings
(inactive and reactive halves), the denoising loop with guidance, the decode, and the frames
back as uint8. Each segment runs at two step counts (2 and 12 by default) after a warm-up, so
the per-step time and the fixed cost per segment both come out, and a 50-step segment (the
pipeline's default) is the fixed cost plus 50 steps. A second segment continues from the first
one's last 5 frames with a reference image (one more latent frame). The text encoder is a
stand-in of umT5-XXL's width with one layer: umT5 runs once per prompt, not per step.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO.parent))  # the repository as the posebridge package (see below)

import wan_configs  # noqa: E402
from measure import Clock, PeakMemory, quiet_libraries  # noqa: E402

SEGMENT_STEPS = 50  # WanVACEPipeline's default
LEAD = 5


def _package():
    """The repository imported as ``posebridge`` (its folder may have any name)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("posebridge", REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["posebridge"] = module
    spec.loader.exec_module(module)
    return module


def write_full_size(folder: Path, device: str, log: Clock) -> Path:
    """The 1.3B VACE transformer (random, bf16), the Wan2.1 VAE (random, fp32), a one-layer text
    encoder of umT5-XXL's width and the tiny set's tokenizer and scheduler, as a pipeline folder."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanVACEPipeline
    from transformers import UMT5Config, UMT5EncoderModel

    from bench_gpu_wan import build_transformer
    from posebridge.backend import tiny_wan

    started = time.perf_counter()
    transformer = build_transformer(wan_configs.VACE_1_3B, device, torch.bfloat16)
    with torch.device(device):
        vae = AutoencoderKLWan.from_config(wan_configs.VAE).eval()
    tokenizer = tiny_wan._tokenizer()
    text_width = wan_configs.VACE_1_3B["text_dim"]
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=len(tokenizer), d_model=text_width, d_kv=64, d_ff=256, num_layers=1, num_heads=64,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id)).to(torch.bfloat16)
    pipe = WanVACEPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                           scheduler=UniPCMultistepScheduler(**tiny_wan.SCHEDULER))
    pipe.save_pretrained(folder)
    log(f"full-size Wan VACE written to {folder} in {time.perf_counter() - started:.1f} s")
    del pipe, transformer, vae, text_encoder
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return folder


def pose_maps(count: int, width: int, height: int, seed: int = 0) -> list:
    """Pose-map-like frames: coloured limbs swinging on black (what the control video holds)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    frames = []
    for i in range(count):
        frame = np.zeros((height, width, 3), np.uint8)
        x = width // 2 + int(width * 0.1 * np.sin(i / 6))
        frame[height // 5 : 4 * height // 5, x - 4 : x + 4] = (255, 0, 85)
        frame[height // 3 : height // 3 + 8, x - width // 8 : x + width // 8] = rng.integers(60, 255, 3)
        frames.append(frame)
    return frames


def timed_segment(models, frames, params, meter: PeakMemory, **options) -> dict:
    from posebridge.backend.pipelines import Hooks, generate

    meter.reset()
    started = time.perf_counter()
    made = dict(generate(models, frames, None, params, hooks=Hooks(), **options))
    meter.sync()
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "frames_made": len(made), "steps": params.steps,
            "frame_shape": list(next(iter(made.values())).shape), "peak_mib": round(meter.peak_mib(), 1)}


def capped_run(device: str, cap_gib: float, cpu_offload: bool, steps: int, log: Clock, work: Path) -> dict:
    """One 81-frame segment with torch limited to ``cap_gib`` of the GPU (a smaller card): the
    error a job gets when it does not fit (GpuMemoryError's advice), or, with cpu_offload (modules
    moved in while they run, the VAE tiled), the time and peak when it does."""
    import torch

    from posebridge.backend.models import LoadedModels
    from posebridge.backend.pipelines import GenerateParams
    from posebridge.backend.wan_model import WanModel

    folder = write_full_size(work / "wan", device, log)
    torch.cuda.set_per_process_memory_fraction(cap_gib * 2**30 / torch.cuda.get_device_properties(0).total_memory)
    meter = PeakMemory(device)
    wan = WanModel(str(folder), device=device, dtype=torch.float16, cpu_offload=cpu_offload, local_files_only=True)
    models = LoadedModels(pose_pipe=None, pose_depth_pipe=None, device=device, dtype=torch.float16, wan=wan)
    params = GenerateParams(pipeline="wan-vace", resolution="480p", guidance=5.0, prompt="a dancer", steps=steps)
    case = {"case": f"segment, {steps} steps, {cap_gib} GiB cap" + (", cpu offload" if cpu_offload else "")}
    try:
        case.update(timed_segment(models, pose_maps(81, 832, 480), params, meter))
    except Exception as exc:  # noqa: BLE001 - the error a job would report is the figure
        case["error"] = f"{type(exc).__name__}: {exc}"
    log(f"  {case}")
    return {"device": device, "memory_cap_gib": cap_gib, "cpu_offload": cpu_offload, "cases": [case]}


def run(tiny: bool, device: str, steps: tuple[int, int], log: Clock, work: Path) -> dict:
    import numpy as np
    import torch

    from posebridge.backend.models import LoadedModels
    from posebridge.backend.pipelines import GenerateParams
    from posebridge.backend.wan_model import WanModel

    if tiny:
        from posebridge.backend.tiny_wan import make_tiny_wan

        folder, (width, height), count, resolution = make_tiny_wan(work / "wan"), (64, 48), 9, "maps"
    else:
        folder = write_full_size(work / "wan", device, log)
        (width, height), count, resolution = (832, 480), 81, "480p"
    meter = PeakMemory(device)
    dtype = torch.float32 if tiny else torch.float16  # WanModel runs bf16 on a GPU for either
    wan = WanModel(str(folder), device=device, dtype=dtype, local_files_only=True)
    models = LoadedModels(pose_pipe=None, pose_depth_pipe=None, device=device, dtype=dtype, wan=wan)
    started = time.perf_counter()
    wan.pipeline()
    meter.sync()
    figures = {"device": device, "frames": count, "size": [width, height], "resolution": resolution,
               "load_s": round(time.perf_counter() - started, 2), "resident_mib": round(meter.now_mib(), 1),
               "memory_kind": meter.kind, "cases": []}
    log(f"loaded by backend.wan_model in {figures['load_s']} s, {figures['resident_mib']:.0f} MiB resident")
    frames = pose_maps(count, width, height)
    params = dict(pipeline="wan-vace", resolution=resolution, guidance=5.0, prompt="a dancer in a red coat")
    timed_segment(models, frames[: min(count, 9)], GenerateParams(**params, steps=1), meter)  # warm-up
    for n in steps:
        case = {"case": f"segment, {n} steps", **timed_segment(models, frames, GenerateParams(**params, steps=n), meter)}
        figures["cases"].append(case)
        log(f"  {case}")
    reference = np.full((height, height, 3), 255, np.uint8)
    reference[height // 6 : -height // 6, height // 3 : -height // 3] = (200, 40, 40)
    known = {i: frame for i, frame in enumerate(pose_maps(LEAD, width, height, seed=1))}
    case = {"case": f"next segment: {LEAD} lead frames + reference, {steps[0]} steps",
            **timed_segment(models, frames, GenerateParams(**params, steps=steps[0]), meter,
                            known=known, reference=reference)}
    figures["cases"].append(case)
    log(f"  {case}")
    low, high = figures["cases"][0], figures["cases"][1]
    per_step = (high["seconds"] - low["seconds"]) / (high["steps"] - low["steps"])
    fixed = low["seconds"] - low["steps"] * per_step
    figures["seconds_per_step"] = round(per_step, 4)
    figures["fixed_seconds"] = round(fixed, 3)  # control video, VAE encodes, text, decode, frames out
    figures["segment_50_steps_s"] = round(fixed + SEGMENT_STEPS * per_step, 2)
    figures["peak_mib"] = max(case["peak_mib"] for case in figures["cases"])
    return figures


def print_figures(figures: dict) -> None:
    print(f"\nWan VACE through backend.pipelines ({figures['frames']} frames at {figures['size'][0]}x"
          f"{figures['size'][1]}, {figures['resolution']}; {figures['memory_kind']})")
    print(f"  load {figures['load_s']} s, resident {figures['resident_mib']:.0f} MiB")
    for case in figures["cases"]:
        print(f"  {case['case']:<44} {case['seconds']:8.2f} s, peak {case['peak_mib']:.0f} MiB")
    print(f"  a step {figures['seconds_per_step']:.3f} s; per segment fixed {figures['fixed_seconds']:.2f} s;"
          f" a {SEGMENT_STEPS}-step segment {figures['segment_50_steps_s']:.1f} s"
          f" = {figures['frames'] / figures['segment_50_steps_s']:.2f} frames/s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny Wan VACE on the CPU")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --tiny")
    parser.add_argument("--steps", default="2,12", help="the two step counts timed (default 2,12)")
    parser.add_argument("--memory-cap-gib", type=float, help="limit torch to this much GPU memory (one segment)")
    parser.add_argument("--cpu-offload", action="store_true", help="with --memory-cap-gib: offload and tile")
    parser.add_argument("--out-json", type=Path)
    args = parser.parse_args(argv)
    low, high = (int(s) for s in args.steps.split(","))
    if not 0 < low < high:
        parser.error("--steps: two counts, the first lower")

    import torch

    quiet_libraries()
    _package()
    if args.tiny:
        torch.set_num_threads(1)
    log = Clock()
    with tempfile.TemporaryDirectory(prefix="posebridge-wan-bench-") as work:
        if args.memory_cap_gib:
            figures = capped_run(args.device or "cuda", args.memory_cap_gib, args.cpu_offload, low, log, Path(work))
        else:
            figures = run(args.tiny, args.device or ("cpu" if args.tiny else "cuda"), (low, high), log, Path(work))
            print_figures(figures)
    if args.out_json:
        args.out_json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
