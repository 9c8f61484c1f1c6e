"""Measuring a generation: timed runs after a warm-up, peak memory (GPU or process), synthetic
control frames, timestamped progress lines. Shared by the benchmarks in bench/."""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

WARMUP_STEPS = 2
# Dense fp16/bf16 tensor-core peaks (TFLOP/s, without sparsity), to put achieved rates in proportion.
GPU_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}


def quiet_libraries() -> None:
    """diffusers' and transformers' progress bars and warnings off: the progress lines are ours."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for logging in (diffusers_logging, transformers_logging):
        logging.set_verbosity_error()
        logging.disable_progress_bar()


class Clock:
    """Progress lines with the seconds since the start, flushed at once (partial runs count)."""

    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.start:7.1f} s] {message}", flush=True)


class PeakMemory:
    """Peak memory of a timed run: on cuda what torch allocated, on the CPU the process's
    resident set (its high-water mark is reset by writing 5 to /proc/self/clear_refs)."""

    def __init__(self, device: str):
        import torch

        self.torch = torch
        self.cuda = device.startswith("cuda")
        self.kind = "GPU memory allocated by torch" if self.cuda else "process resident set (VmHWM)"
        self.reset_works = True

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def reset(self) -> None:
        self.sync()
        if self.cuda:
            self.torch.cuda.reset_peak_memory_stats()
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.reset_works = False  # the peak then covers the whole process so far

    def now_mib(self) -> float:
        if self.cuda:
            return self.torch.cuda.memory_allocated() / 2**20
        return process_memory_mib("VmRSS")

    def peak_mib(self) -> float:
        if self.cuda:
            return self.torch.cuda.max_memory_allocated() / 2**20
        return process_memory_mib("VmHWM")


def process_memory_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS: now, VmHWM: peak), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def control_frames(count: int, size: int) -> tuple[list, list]:
    """Synthetic pose maps (two coloured limbs, one moving) and depth maps (a sliding ramp)."""
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    poses, depths = [], []
    for i in range(count):
        pose = np.zeros((size, size, 3), np.uint8)
        quarter, width = size // 4, max(1, size // 64)
        x = quarter + (i * max(1, size // 32)) % (2 * quarter)
        pose[quarter : 3 * quarter, x - width : x + width] = (255, 0, 85)
        pose[2 * quarter - width : 2 * quarter + width, quarter : 3 * quarter] = (0, 255, 170)
        poses.append(pose)
        grey = np.roll(ramp, i * max(1, size // 64)).astype(np.uint8)
        depths.append(np.repeat(np.broadcast_to(grey, (size, size))[:, :, None], 3, axis=2))
    return poses, depths


def timed_run(models, size: int, params, count: int, warm_count: int, meter: PeakMemory, reference=None) -> dict:
    """One generation of ``count`` frames of ``size`` x ``size`` (synthetic pose and depth maps),
    timed after a warm-up on ``warm_count`` frames (WARMUP_STEPS steps: the same shapes, so every
    kernel is chosen and every buffer allocated); its seconds, frames/s, memory and counters."""
    from backend.pipelines import Hooks, generate

    poses, depths = control_frames(count, size)
    warm = replace(params, steps=min(WARMUP_STEPS, params.steps))
    for _ in generate(models, poses[:warm_count], depths[:warm_count], warm, reference=reference):
        pass
    meter.reset()
    resident = meter.now_mib()
    hooks = Hooks()
    started = time.perf_counter()
    made = sum(1 for _ in generate(models, poses, depths, params, reference=reference, hooks=hooks))
    meter.sync()
    seconds = time.perf_counter() - started
    peak = meter.peak_mib()
    return {"frames": made, "seconds": round(seconds, 4), "frames_per_s": round(made / seconds, 4),
            "peak_mib": round(peak, 1), "resident_mib": round(resident, 1),
            "working_mib": round(peak - resident, 1), "counters": dict(hooks.counters)}
