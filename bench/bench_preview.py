"""Benchmark: the fast preview against the full settings on the same backend (issue 14).

    <backend venv>/bin/python bench/bench_preview.py [--frames 8] [--size 512] [--steps 20]
                                                     [--family sd15|sdxl] [--device cpu]

One set of loaded models (the tiny random-weight set of the family, whose random LoRA stands in
for LCM-LoRA: a LoRA costs the same whatever its weights), the same pose maps and seed:

(a) full: the frames pipeline at --size, --steps steps, guidance 7.5 (two UNet passes a step);
(b) preview: ``preview: true`` as the Generate panel's Preview sends it: half the size, the
    backend's preview steps (LCM, 4) and guidance 1 (one pass a step), the preview LoRA active.

Both warm (one call each first), timed over --frames frames, fastest of --repeats runs. Prints
frames/s of each and the ratio; target: the preview at least 5x faster per frame. The tiny model
on a CPU is not a GPU running SD1.5 or SDXL, but the preview saves the same things there: steps
(20 -> 4), guidance's second pass, and three quarters of the pixels; bench_gpu.py times the
full-size architectures when an accelerator is lent.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGET_RATIO = 5.0


def pose_maps(count: int, size: int):
    """Stick figures moving right, as pose maps (uint8 RGB)."""
    import numpy as np

    frames = []
    for i in range(count):
        image = np.zeros((size, size, 3), np.uint8)
        x = size // 4 + i * size // (4 * count)
        s = size // 64
        image[8 * s : 14 * s, x : x + 6 * s] = (255, 0, 0)
        image[14 * s : 40 * s, x + 2 * s : x + 4 * s] = (0, 255, 0)
        image[20 * s : 22 * s, x - 10 * s : x + 16 * s] = (0, 0, 255)
        image[40 * s : 60 * s, x - 4 * s : x - 2 * s] = (255, 255, 0)
        frames.append(image)
    return frames


def timed(models, poses, params, repeats: int) -> float:
    """Frames per second, fastest of ``repeats`` runs after one warm-up."""
    from backend.pipelines import generate

    list(generate(models, poses[:1], None, params))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        list(generate(models, poses, None, params))
        best = min(best, time.perf_counter() - start)
    return len(poses) / best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--family", choices=("sd15", "sdxl"), default="sd15")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from backend.model_loading import write_tiny_model_set, write_tiny_sdxl_set
    from backend.model_set import read_model_set
    from backend.models import load_models
    from backend.pipelines import GenerateParams

    with tempfile.TemporaryDirectory() as work:
        (write_tiny_sdxl_set if args.family == "sdxl" else write_tiny_model_set)(Path(work) / "set")
        model_set = read_model_set(Path(work) / "set")
        models = load_models(model_set.base, model_set.openpose, None, device=args.device, local_files_only=True,
                             preview_lora=model_set.preview_lora)
        poses = pose_maps(args.frames, args.size)
        half = args.size // 16 * 8
        full = GenerateParams(prompt="a knight dancing", negative="blurry", seed=0, steps=args.steps, guidance=7.5,
                              batch=4)
        preview = GenerateParams(**{**full.__dict__, "preview": True, "width": half, "height": half})
        full_fps = timed(models, poses, full, args.repeats)
        preview_fps = timed(models, poses, preview, args.repeats)
    ratio = preview_fps / full_fps
    setup = models.preview
    print(f"tiny {args.family}, {args.device}, {args.frames} frames, batch 4")
    print(f"full:    {args.size}x{args.size}, {args.steps} steps, guidance 7.5: {full_fps:8.2f} frames/s")
    print(f"preview: {half}x{half}, {setup.steps} LCM steps, guidance {setup.guidance:g}:   "
          f"{preview_fps:8.2f} frames/s")
    print(f"preview / full: {ratio:.1f}x (target {TARGET_RATIO:g}x: {'met' if ratio >= TARGET_RATIO else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
