"""Benchmark: SDXL + ControlNets at 1024x1024 on a GPU, and its fast preview (issue 14).
bench_gpu.py runs it after Wan (its figures go under "sdxl" in that JSON); it also runs alone:

    <backend venv>/bin/python bench/bench_gpu_sdxl.py [--device cuda] [--out-json sdxl.json]
    <backend venv>/bin/python bench/bench_gpu_sdxl.py --tiny        # the same path, tiny SDXL, CPU

SDXL 1.0 base (UNet 2.57B, both text encoders, VAE) and two SDXL ControlNets (the xinsir openpose
/ diffusers depth architecture, 1.25B each) are built from their published configurations
(backend/published_configs.py) with random weights on the device, saved in fp16 in the tiny
SDXL set's layout with a rank-64 LoRA on the attention projections standing in for LCM-LoRA SDXL
(rank 64 too, over more layers: 197M parameters; unfused, a LoRA adds two thin matmuls per
layer), and loaded with backend.models.load_models, offline. Timed after a warm-up (same shapes):

- frames pipeline, pose + depth ControlNets, 1024x1024, 20 steps, guidance 7.5, batch 2;
- the same as a preview (``preview: true``): 512x512, 4 LCM steps, guidance 1, batch 4.

Prints seconds, frames/s, peak memory and the preview's speed-up per frame (target >= 5x).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from measure import Clock, PeakMemory, quiet_libraries, timed_run  # noqa: E402

TARGET_PREVIEW_RATIO = 5.0
PROMPT, NEGATIVE, SEED = "a knight dancing in a hall", "blurry", 0


@dataclass(frozen=True)
class SdxlSettings:
    size: int
    steps: int
    frames: int
    batch: int
    preview_batch: int
    guidance: float = 7.5
    lora_rank: int = 64


FULL = SdxlSettings(size=1024, steps=20, frames=8, batch=2, preview_batch=4)
TINY = SdxlSettings(size=128, steps=2, frames=4, batch=2, preview_batch=4, lora_rank=4)


def write_full_size(folder: Path, device: str, log: Clock, rank: int) -> Path:
    """The full-size SDXL set (random weights, fp16) in the tiny SDXL set's layout."""
    import torch
    from diffusers import (AutoencoderKL, ControlNetModel, EulerDiscreteScheduler, StableDiffusionXLPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from backend import published_configs as published
    from backend.model_set import write_model_set
    from backend.single_file_config import clip_tokenizer
    from backend.tiny_lora import write_random_lora

    dtype = torch.float16
    with torch.device(device):
        log("building the SDXL UNet, VAE and text encoders")
        unet = UNet2DConditionModel.from_config(published.SDXL_UNET).to(dtype)
        vae = AutoencoderKL.from_config(published.SDXL_VAE).to(dtype)
        text_encoder = CLIPTextModel(CLIPTextConfig(**published.SDXL_TEXT_ENCODER)).to(dtype)
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**published.SDXL_TEXT_ENCODER_2)).to(dtype)
    base = StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
        tokenizer=clip_tokenizer(published.SDXL_TOKENIZER), tokenizer_2=clip_tokenizer(published.SDXL_TOKENIZER_2),
        unet=unet, scheduler=EulerDiscreteScheduler.from_config(published.SDXL_SCHEDULER),
        force_zeros_for_empty_prompt=True, add_watermarker=False)
    base.save_pretrained(folder / "base")
    log("wrote base/; the preview LoRA")
    lora = write_random_lora(StableDiffusionXLPipeline, unet, folder / "preview-lora.safetensors", 1, rank=rank)
    del base, unet, vae, text_encoder, text_encoder_2
    for name in ("controlnet-openpose", "controlnet-depth"):
        log(f"building {name}")
        with torch.device(device):
            ControlNetModel.from_config(published.SDXL_CONTROLNET).to(dtype).save_pretrained(folder / name)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return write_model_set(folder, "base", "controlnet-openpose", "controlnet-depth",
                           preview_lora=lora.name)


def run_sdxl(tiny: bool, device: str, log: Clock, settings: SdxlSettings | None = None) -> dict:
    """Every SDXL case; a failing case is recorded with its error and the next runs."""
    import torch

    from backend.model_loading import write_tiny_sdxl_set
    from backend.model_set import read_model_set
    from backend.models import load_models
    from backend.pipelines import GenerateParams

    settings = settings or (TINY if tiny else FULL)
    figures = {"settings": asdict(settings), "cases": []}
    meter = PeakMemory(device)
    with tempfile.TemporaryDirectory(prefix="posebridge_bench_sdxl_") as work:
        folder = Path(work)
        if tiny:
            write_tiny_sdxl_set(folder)
        else:
            write_full_size(folder, device, log, settings.lora_rank)
        model_set = read_model_set(folder)
        log("loading the SDXL set")
        models = load_models(model_set.base, model_set.openpose, model_set.depth, device=device,
                             dtype="fp32" if tiny else "fp16", local_files_only=True,
                             preview_lora=model_set.preview_lora)
        common = dict(prompt=PROMPT, negative=NEGATIVE, seed=SEED, steps=settings.steps, guidance=settings.guidance)
        cases = [
            ({"case": f"sdxl frames {settings.size} batch {settings.batch}"}, settings.size,
             GenerateParams(pipeline="frames", batch=settings.batch, **common)),
            ({"case": f"sdxl preview {settings.size // 2} batch {settings.preview_batch}", "preview": True},
             settings.size // 2, GenerateParams(pipeline="frames", batch=settings.preview_batch, preview=True, **common)),
        ]
        with torch.inference_mode():
            for case, size, params in cases:
                log(f"{case['case']}: {settings.frames} frames")
                try:
                    result = timed_run(models, size, params, settings.frames, params.batch, meter)
                except Exception as exc:  # noqa: BLE001 - reported, and the next case runs
                    log(f"  FAILED: {type(exc).__name__}: {exc}")
                    figures["cases"].append({**case, "error": f"{type(exc).__name__}: {exc}"})
                    continue
                figures["cases"].append({**case, **result})
                log(f"  {result['frames_per_s']:.3f} frames/s, peak {result['peak_mib']:.0f} MiB")
        del models
    full, preview = (next((c for c in figures["cases"] if c.get("preview") is flag and "error" not in c), None)
                     for flag in (None, True))
    if full and preview:
        ratio = preview["frames_per_s"] / full["frames_per_s"]
        figures["preview_ratio"] = round(ratio, 2)
        figures["target"] = {"target": f"preview >= {TARGET_PREVIEW_RATIO:g}x the full settings per frame",
                             "value": round(ratio, 2), "pass": None if tiny else ratio >= TARGET_PREVIEW_RATIO}
    return figures


def print_sdxl(figures: dict) -> None:
    for case in figures["cases"]:
        if "error" in case:
            print(f"  {case['case']}: FAILED {case['error']}")
        else:
            print(f"  {case['case']}: {case['frames']} frames in {case['seconds']:.2f} s = "
                  f"{case['frames_per_s']:.3f} frames/s, peak {case['peak_mib']:.0f} MiB")
    if "target" in figures:
        target = figures["target"]
        verdict = {None: "not judged", True: "PASS", False: "MISS"}[target["pass"]]
        print(f"  {target['target']}: {target['value']}x ({verdict})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny SDXL set at 128x128 on the CPU")
    parser.add_argument("--device", default=None)
    parser.add_argument("--out-json", type=Path)
    args = parser.parse_args(argv)
    log = Clock()
    quiet_libraries()
    from backend.models import pick_device

    device = pick_device(args.device or ("cpu" if args.tiny else "cuda"))
    figures = run_sdxl(args.tiny, device, log)
    print_sdxl(figures)
    if args.out_json:
        args.out_json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 1 if any("error" in case for case in figures["cases"]) else 0


if __name__ == "__main__":
    sys.exit(main())
