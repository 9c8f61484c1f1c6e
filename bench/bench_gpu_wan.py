"""Benchmark: Wan 2.1 VACE 1.3B on a GPU (issue 11): the transformer at 480x832, 81 frames, and
the VAE decode of one segment. bench_gpu.py runs it before the SD1.5 cases (its figures go under
"wan" in that JSON); it also runs alone:

    <backend venv>/bin/python bench/bench_gpu_wan.py [--device cuda] [--out-json wan.json]
    <backend venv>/bin/python bench/bench_gpu_wan.py --tiny        # the same path, tiny model, CPU

The transformer is built from its published configuration (bench/wan_configs.py) with random
weights on the device, no file written, in bf16 as ``from_pretrained(torch_dtype=bfloat16)``
leaves it (its ``_keep_in_fp32_modules`` stay fp32). One denoising step is what WanVACEPipeline
does: a forward for the prompt and one for the negative prompt (classifier-free guidance as two
forwards, not a batch of 2), latents 16 x 21 x 60 x 104, VACE context 96 x 21 x 60 x 104, text
512 x 4096. Timed after a warm-up step: seconds a forward and a step, a segment's transformer time
at the pipeline's default 50 steps, TFLOP/s (FLOPs counted from the architecture) and peak memory.
Then AutoencoderKLWan (the Wan2.1 VAE, default configuration) decodes 21 latent frames into 81
frames of 480x832, in fp32 (as Wan's model cards load it) and bf16, after a warm-up on 3 latent
frames. The text encoder (umT5-XXL) is not timed: it runs once per prompt.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import wan_configs  # noqa: E402
from measure import GPU_PEAK_TFLOPS, Clock, PeakMemory, quiet_libraries  # noqa: E402

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


@dataclass(frozen=True)
class WanSettings:
    height: int
    width: int
    frames: int
    text_tokens: int
    timed_steps: int  # denoising steps timed (two forwards each)
    vae_dtypes: tuple = ("fp32", "bf16")
    steps: int = wan_configs.PIPELINE["steps"]  # the pipeline's default: a segment's step count
    dtype: str = "bf16"

    def latent_shape(self, channels: int) -> tuple:
        """(1, channels, latent frames, height / 8, width / 8): the VAE's 4x time, 8x space."""
        return 1, channels, (self.frames - 1) // 4 + 1, self.height // 8, self.width // 8


FULL = WanSettings(height=480, width=832, frames=81, text_tokens=512, timed_steps=3)
TINY = WanSettings(height=64, width=64, frames=9, text_tokens=8, timed_steps=1)


def build_transformer(config: dict, device: str, dtype):
    """WanVACETransformer3DModel with random weights on ``device``, cast to ``dtype`` except the
    parameters under its _keep_in_fp32_modules (matched by name part, as diffusers' loader does)."""
    import torch
    from diffusers import WanVACETransformer3DModel

    with torch.device(device):
        model = WanVACETransformer3DModel.from_config(config).eval()
    keep = set(model._keep_in_fp32_modules or ())
    for name, param in model.named_parameters():
        if not keep.intersection(name.split(".")):
            param.data = param.data.to(dtype)
    return model


def transformer_flops(config: dict, latent_shape: tuple, text_tokens: int) -> float:
    """FLOPs of one forward (multiply-add = 2): blocks, patch embeddings in and projection out, text
    embedding; norms, rotary and the time embedding omitted (torch's FlopCounterMode agrees within
    0.1% on what it counts, the attention products aside)."""
    _, channels, frames, height, width = latent_shape
    p_t, p_h, p_w = config["patch_size"]
    n = frames // p_t * (height // p_h) * (width // p_w)  # video tokens
    t, d, f = text_tokens, config["num_attention_heads"] * config["attention_head_dim"], config["ffn_dim"]
    block = (8 * n * d * d + 4 * n * n * d  # self-attention: q, k, v, out; scores and values
             + 4 * n * d * d + 4 * t * d * d + 4 * n * t * d  # cross-attention to the text
             + 4 * n * d * f)  # feed-forward
    vace = len(config["vace_layers"])
    patch_in_out = channels + config["vace_in_channels"] + config["out_channels"]
    patch = 2 * n * d * math.prod(config["patch_size"]) * patch_in_out
    text = 2 * t * (config["text_dim"] * d + d * d)
    return config["num_layers"] * block + vace * (block + 2 * n * d * d) + 2 * n * d * d + patch + text


def time_transformer(config: dict, settings: WanSettings, device: str, meter: PeakMemory, log: Clock) -> dict:
    import torch

    dtype = getattr(torch, DTYPES[settings.dtype])
    started = time.perf_counter()
    model = build_transformer(config, device, dtype)
    meter.sync()
    build_s = time.perf_counter() - started
    params = sum(p.numel() for p in model.parameters())
    log(f"wan transformer: {params / 1e6:.1f}M parameters built on {device} in {build_s:.1f} s")
    generator = torch.Generator(device).manual_seed(0)

    def random(*shape):
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)

    latent_shape = settings.latent_shape(config["in_channels"])
    control_shape = settings.latent_shape(config["vace_in_channels"])
    latents, control = random(*latent_shape), random(*control_shape)
    prompt, negative = (random(1, settings.text_tokens, config["text_dim"]) for _ in range(2))
    timestep = torch.full((1,), 999.0, device=device)
    guidance = wan_configs.PIPELINE["guidance"]

    def step():
        kwargs = dict(hidden_states=latents, timestep=timestep, control_hidden_states=control, return_dict=False)
        conditional = model(encoder_hidden_states=prompt, **kwargs)[0]
        unconditional = model(encoder_hidden_states=negative, **kwargs)[0]
        return unconditional + guidance * (conditional - unconditional)

    step()  # warm-up: every kernel chosen, every buffer allocated
    meter.reset()
    resident = meter.now_mib()
    started = time.perf_counter()
    for _ in range(settings.timed_steps):
        out = step()
    meter.sync()
    per_step = (time.perf_counter() - started) / settings.timed_steps
    assert tuple(out.shape) == latent_shape, out.shape
    flops = transformer_flops(config, latent_shape, settings.text_tokens)
    segment = per_step * settings.steps
    result = {"parameters": params, "dtype": settings.dtype, "build_s": round(build_s, 2),
              "latents": list(latent_shape), "control": list(control_shape),
              "text": [1, settings.text_tokens, config["text_dim"]],
              "guidance": "two forwards a step (prompt, negative prompt), as WanVACEPipeline",
              "timed_steps": settings.timed_steps, "seconds_per_forward": round(per_step / 2, 4),
              "seconds_per_step": round(per_step, 4), "steps": settings.steps,
              "seconds_per_segment": round(segment, 4), "frames_per_s": round(settings.frames / segment, 4),
              "tflop_per_forward": round(flops / 1e12, 3), "tflop_per_s": round(2 * flops / per_step / 1e12, 2),
              "peak_mib": round(meter.peak_mib(), 1), "resident_mib": round(resident, 1)}
    return result


def time_vae_decode(config: dict, settings: WanSettings, dtype_name: str, device: str, meter: PeakMemory,
                    log: Clock) -> dict:
    import torch
    from diffusers import AutoencoderKLWan

    dtype = getattr(torch, DTYPES[dtype_name])
    with torch.device(device):
        vae = AutoencoderKLWan.from_config(config).eval().to(dtype)
    shape = settings.latent_shape(vae.config.z_dim)
    latents = torch.randn(shape, generator=torch.Generator(device).manual_seed(0), device=device, dtype=dtype)
    log(f"wan VAE decode, {dtype_name}: latents {list(shape)}")
    vae.decode(latents[:, :, :3])  # warm-up: the first frame's path and the cached frames' path
    meter.reset()
    resident = meter.now_mib()
    started = time.perf_counter()
    video = vae.decode(latents).sample
    meter.sync()
    seconds = time.perf_counter() - started
    expected = (1, 3, settings.frames, settings.height, settings.width)
    assert tuple(video.shape) == expected, (video.shape, expected)
    result = {"dtype": dtype_name, "latents": list(shape), "frames": settings.frames, "seconds": round(seconds, 3),
              "frames_per_s": round(settings.frames / seconds, 3), "peak_mib": round(meter.peak_mib(), 1),
              "resident_mib": round(resident, 1)}
    del vae, latents, video
    return result


def run_wan(tiny: bool, device: str, log: Clock, settings: WanSettings | None = None) -> dict:
    """Every Wan case; one that fails is recorded with its error and the next one runs."""
    import torch

    settings = settings or (TINY if tiny else FULL)
    meter = PeakMemory(device)
    figures = {"settings": asdict(settings), "memory_kind": meter.kind, "cases": []}
    transformer_config = wan_configs.TINY_VACE if tiny else wan_configs.VACE_1_3B
    vae_config = wan_configs.TINY_VAE if tiny else wan_configs.VAE

    def attempt(name: str, measure) -> None:
        log(f"{name}")
        try:
            case = {"case": name, **measure()}
        except Exception as exc:  # noqa: BLE001 - reported, and the next case runs
            log(f"  FAILED: {type(exc).__name__}: {exc}")
            case = {"case": name, "error": f"{type(exc).__name__}: {exc}"}
        if meter.cuda:
            torch.cuda.empty_cache()
        figures["cases"].append(case)
        if "error" not in case:
            log("  " + ", ".join(f"{k} {v}" for k, v in case.items() if k not in ("case", "guidance")))

    with torch.inference_mode():
        attempt("wan vace transformer", lambda: time_transformer(transformer_config, settings, device, meter, log))
        for dtype_name in settings.vae_dtypes:
            attempt(f"wan vae decode {dtype_name}",
                    lambda d=dtype_name: time_vae_decode(vae_config, settings, d, device, meter, log))
    figures["segment"] = segment(figures["cases"], settings, device)
    return figures


def segment(cases: list, settings: WanSettings, device: str) -> dict | None:
    """An 81-frame segment: the pipeline's steps, then the decode (the first VAE dtype measured)."""
    done = {case["case"]: case for case in cases if "error" not in case}
    transformer = done.get("wan vace transformer")
    decode = next((done[f"wan vae decode {d}"] for d in settings.vae_dtypes if f"wan vae decode {d}" in done), None)
    if transformer is None or decode is None:
        return None
    seconds = transformer["seconds_per_segment"] + decode["seconds"]
    result = {"steps": settings.steps, "vae_dtype": decode["dtype"], "seconds": round(seconds, 2),
              "frames_per_s": round(settings.frames / seconds, 4),
              "peak_mib": max(transformer["peak_mib"], decode["peak_mib"])}
    if device.startswith("cuda"):
        import torch

        name = torch.cuda.get_device_name()
        peak = next((tflops for key, tflops in GPU_PEAK_TFLOPS.items() if key in name), None)
        result["transformer_share_of_peak"] = peak and round(transformer["tflop_per_s"] / peak, 3)
    return result


def print_wan(figures: dict) -> None:
    print("\nWan 2.1 VACE 1.3B" + (f" ({figures['memory_kind']})" if figures.get("memory_kind") else ""))
    for case in figures["cases"]:
        if "error" in case:
            print(f"  {case['case']:<24} FAILED: {case['error'][:120]}")
        elif "seconds_per_step" in case:
            print(f"  {case['case']:<24} {case['seconds_per_forward']:.3f} s a forward, {case['seconds_per_step']:.3f}"
                  f" s a step (CFG: 2 forwards), {case['seconds_per_segment']:.1f} s for {case['steps']} steps,"
                  f" {case['tflop_per_s']} TFLOP/s, peak {case['peak_mib']:.0f} MiB")
        else:
            print(f"  {case['case']:<24} {case['frames']} frames in {case['seconds']:.2f} s"
                  f" = {case['frames_per_s']:.2f} frames/s, peak {case['peak_mib']:.0f} MiB")
    seg = figures.get("segment")
    if seg:
        print(f"  segment of {figures['settings']['frames']} frames ({seg['steps']} steps + {seg['vae_dtype']} decode):"
              f" {seg['seconds']:.1f} s = {seg['frames_per_s']:.2f} frames/s, peak {seg['peak_mib']:.0f} MiB")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny configurations (CPU by default)")
    parser.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda, or cpu with --tiny)")
    parser.add_argument("--out-json", type=Path, help="write the figures there as JSON")
    args = parser.parse_args(argv)
    log = Clock()

    import torch

    quiet_libraries()
    if args.tiny:
        torch.set_num_threads(1)
    device = args.device or ("cpu" if args.tiny else "cuda")
    figures = run_wan(args.tiny, device, log)
    print_wan(figures)
    if args.out_json:
        args.out_json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 1 if any("error" in case for case in figures["cases"]) else 0


if __name__ == "__main__":
    sys.exit(main())
