"""Benchmark: generation throughput, the seed's loop against PoseBridge's full path (issue 4).

    <backend venv>/bin/python bench/bench_generate.py [--frames 24] [--size 512] [--steps 10]
                                                      [--batch 4] [--blender-python PY]

Same tiny random-weight model (make-tiny-model), resolution, steps, seed, prompt and pose maps
(the demo shot's, rendered by the poses command) in one run:

(a) the seed's loop: in this process, one diffusers StableDiffusionControlNetPipeline call per
    frame (batch 1), each frame saved as PNG, as a hand-written script does it.
(b) the full path: the `generate` batch command in Blender (bpy) -> stdlib HTTP client ->
    `posebridge-backend` process (batch --batch) -> PNG frames back -> one VSE strip.
    Timed inside the command (its own "in N s", Blender's start-up excluded as (a) excludes
    Python's and torch's), and as the whole process for reference.

Both start warm: the models are loaded and one frame was generated before the timing. Targets on
CPU with the tiny model: (b) at least 1.5x the frames/s of (a); transport and encoding (HTTP,
base64, PNG decode/encode, file writes, polling: (b) minus the backend's pipeline time) at most
10% of (b). Also printed: the backend's resident memory, and a frames/s estimate for SD1.5 + two
ControlNets at 512x512, 20 steps on datacenter GPUs from the FLOPs of the real architectures
(counted on PyTorch's meta device, nothing downloaded).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from cli import load_extension  # noqa: E402

PROMPT = "a knight dancing"
NEGATIVE = "blurry"
SEED = 0
GUIDANCE = 7.5
TARGET_RATIO = 1.5
TARGET_TRANSPORT_SHARE = 0.10
# Dense fp16/bf16 tensor-core peaks (TFLOP/s) and the share of it a UNet pipeline reaches at
# batch 4 (model FLOPs utilisation; SD1.5 UNets run at roughly 35-50% on these with SDPA).
GPUS = {"A100 SXM": 312.0, "H100 SXM": 989.0, "L40S": 362.0}
MFU = 0.40


def default_blender_python() -> str:
    venvs = Path(os.environ.get("POSEBRIDGE_VENVS", Path.home() / ".cache/posebridge/venvs"))
    return str(venvs / "bpy50" / "bin" / "python")


def render_pose_maps(blender_python: str, out: Path, frames: int, size: int) -> Path:
    subprocess.run([blender_python, str(REPO / "cli.py"), "demo", "--out", str(out), "--frames", str(frames),
                    "--resolution", f"{size}x{size}"], check=True, capture_output=True)
    return out / "poses"


def seed_loop(model_dir: Path, poses: list[Path], out: Path, steps: int) -> float:
    """(a): seconds for one pipeline call per frame, each saved as PNG (warm)."""
    import torch
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline
    from PIL import Image

    from posebridge.backend.model_set import read_model_set

    # Stock diffusers, as a script loads it: none of the backend's own changes.
    models = read_model_set(model_dir)
    controlnet = ControlNetModel.from_pretrained(models.openpose, local_files_only=True)
    pipe = StableDiffusionControlNetPipeline.from_pretrained(
        models.base, controlnet=controlnet, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    out.mkdir(parents=True, exist_ok=True)

    def one(path: Path):
        image = Image.open(path).convert("RGB")
        result = pipe(PROMPT, negative_prompt=NEGATIVE, image=image, num_inference_steps=steps,
                      guidance_scale=GUIDANCE, generator=torch.Generator("cpu").manual_seed(SEED))
        result.images[0].save(out / path.name.replace("pose_", "frame_"))

    one(poses[0])  # warm-up
    started = time.perf_counter()
    for path in poses:
        one(path)
    return time.perf_counter() - started


def memory_kib(pid: int) -> dict:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def full_path(model_dir: Path, poses_dir: Path, work: Path, steps: int, batch: int, blender_python: str):
    """(b): (command's own seconds, process seconds, backend job status, backend memory)."""
    from posebridge.generate.client import BackendClient
    from posebridge.generate.controls import control_frames
    from posebridge.generate.launcher import start_local_backend

    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = start_local_backend(sys.executable, port=port, model=str(model_dir),
                                  extra_args=["--device", "cpu", "--batch", str(batch)],
                                  log_path=work / "backend.log", addon_dir=REPO)
    try:
        backend.wait_until_ready(timeout=600)
        client = BackendClient(backend.url)
        warm = client.submit(dict(prompt=PROMPT, steps=steps, batch=batch),
                             control_frames(poses_dir)[:batch], name="warm-up")
        while client.status(warm["id"])["state"] in ("queued", "running"):
            time.sleep(0.1)
        command = [blender_python, str(REPO / "cli.py"), "generate", "--backend", backend.url,
                   "--poses", str(poses_dir), "--prompt", PROMPT, "--negative", NEGATIVE,
                   "--seed", str(SEED), "--steps", str(steps), "--guidance", str(GUIDANCE),
                   "--batch", str(batch), "--out", str(work / "b"), "--save", str(work / "b.blend")]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        process_seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"generate failed:\n{done.stderr[-3000:]}")
        match = re.search(r"in ([0-9.]+) s", done.stdout)
        job = client.jobs()[-1]
        memory = memory_kib(backend.process.pid)
    finally:
        backend.stop()
    return float(match.group(1)), process_seconds, job, memory


def flops_per_frame(size: int, steps: int) -> dict:
    """TFLOPs of one 512x512 frame with SD1.5 + two ControlNets, classifier-free guidance."""
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        unet = UNet2DConditionModel(
            sample_size=size // 8, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=768, attention_head_dim=8)
        controlnet = ControlNetModel.from_unet(unet)
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
        latent = torch.randn(1, 4, size // 8, size // 8)
        text = torch.randn(1, 77, 768)
        control = torch.randn(1, 3, size, size)
        timestep = torch.tensor([500])

    def count(fn) -> float:
        with FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops() / 1e12

    down, mid = controlnet(latent, timestep, text, controlnet_cond=control, return_dict=False)
    unet_tf = count(lambda: unet(latent, timestep, text, down_block_additional_residuals=down,
                                 mid_block_additional_residual=mid))
    controlnet_tf = count(lambda: controlnet(latent, timestep, text, controlnet_cond=control))
    vae_tf = count(lambda: vae.decode(latent))
    per_step = 2 * (unet_tf + 2 * controlnet_tf)  # guidance: conditional + unconditional
    return {"unet": unet_tf, "controlnet": controlnet_tf, "vae": vae_tf,
            "frame": steps * per_step + vae_tf}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--blender-python", default=default_blender_python())
    args = parser.parse_args()
    load_extension()
    from posebridge.backend.model_loading import write_tiny_model_set

    work = Path(tempfile.mkdtemp(prefix="posebridge_bench_generate_"))
    model_dir = write_tiny_model_set(work / "tiny-model").parent
    poses_dir = render_pose_maps(args.blender_python, work / "demo", args.frames, args.size)
    poses = sorted(poses_dir.glob("pose_*.png"))
    print(f"{len(poses)} pose maps {args.size}x{args.size}, {args.steps} steps, tiny model, CPU "
          f"({os.cpu_count()} cores); work folder {work}")

    seed_seconds = seed_loop(model_dir, poses, work / "a", args.steps)
    command_s, process_s, job, memory = full_path(model_dir, poses_dir, work, args.steps, args.batch,
                                                  args.blender_python)
    frames = len(poses)
    seed_fps, full_fps = frames / seed_seconds, frames / command_s
    pipeline_s = job["finished"] - job["started"] - job["codec_seconds"]
    transport_s = command_s - pipeline_s
    print(f"(a) seed's loop, batch 1, in process: {seed_seconds:7.2f} s  {seed_fps:6.2f} frames/s")
    print(f"(b) generate command -> HTTP -> backend (batch {args.batch}) -> PNG -> strip: "
          f"{command_s:7.2f} s  {full_fps:6.2f} frames/s  (whole Blender process {process_s:.2f} s)")
    ratio = full_fps / seed_fps
    print(f"    ratio (b)/(a): {ratio:.2f}x  (target >= {TARGET_RATIO}x)  {'OK' if ratio >= TARGET_RATIO else 'MISSED'}")
    share = transport_s / command_s
    print(f"    backend pipeline {pipeline_s:.2f} s; transport and encoding {transport_s:.2f} s = "
          f"{share:.1%} of (b) (target <= {TARGET_TRANSPORT_SHARE:.0%})  "
          f"{'OK' if share <= TARGET_TRANSPORT_SHARE else 'MISSED'}"
          f"  [of which backend PNG decode/encode {job['codec_seconds']:.2f} s]")
    print(f"    backend resident memory: {memory.get('VmRSS', 0) / 1024:.0f} MiB now, "
          f"{memory.get('VmHWM', 0) / 1024:.0f} MiB peak")

    flops = flops_per_frame(512, 20)
    print(f"SD1.5 + 2 ControlNets, 512x512, 20 steps, guidance: UNet {flops['unet']:.3f} TFLOP and each "
          f"ControlNet {flops['controlnet']:.3f} TFLOP per sample and step, VAE decode {flops['vae']:.3f} TFLOP: "
          f"{flops['frame']:.1f} TFLOP per frame")
    for gpu, peak in GPUS.items():
        print(f"    {gpu}: {peak:.0f} TFLOP/s peak x {MFU:.0%} utilisation -> "
              f"{peak * MFU / flops['frame']:.1f} frames/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
