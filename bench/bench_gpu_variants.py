"""Which speed-ups pay on a GPU: the frames pipeline and AnimateDiff 16 frames, timed per variant in one process.

    <backend venv>/bin/python bench/bench_gpu_variants.py [--variants baseline,channels_last] [--out-json v.json]
    <backend venv>/bin/python bench/bench_gpu_variants.py --tiny       # the same path, tiny model, CPU

Builds the full-size SD1.5 set with random weights and loads it through backend.models.load_models
once, as bench_gpu.py does; then, for each variant in turn: applies it (backend/speedups.py, or an
attention-backend order), checks one denoising step (the UNet with both ControlNets' residuals, on
fixed inputs) against fp32 copies of the models made before any variant, and times each module's
part of it; times the frames pipeline (pose + depth, 512x512, 20 steps, guidance 7.5, batch 8, 16
frames) and AnimateDiff 16 frames (context 16), each after a warm-up; compares their frames with
the baseline's (largest and mean difference in 8-bit levels, PSNR); and takes the variant back.

Variants, cheap first and torch.compile last:
  baseline; cudnn_benchmark, channels_last, fused_qkv (backend.speedups); sdpa_cudnn (cuDNN's
  fused attention first in torch's SDPA choice); baseline_again (the spread of two timings of the
  same code); combined (the cheap ones that paid: >= 2% faster on one case, no slower on the
  other); compile (combined + torch.compile of the UNets and ControlNets, default mode: its warm-up
  runs every step, and its one-off compilation is reported); compile_max_autotune (mode
  max-autotune-no-cudagraphs). Compiled variants skip the step check (it would compile again).

The run keeps to --budget-s: a variant that would not fit (estimated from those before it) is
skipped and said so, and an alarm stops one that overruns. The JSON is rewritten after each.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import traceback
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from bench_gpu import (  # noqa: E402  (sets HF_HUB_OFFLINE before anything loads)
    NEGATIVE,
    PROMPT,
    SEED,
    TARGET_FRAMES_PER_S,
    TARGET_VIDEO_16_SECONDS,
    environment,
    load,
    write_models,
)
from measure import WARMUP_STEPS, Clock, PeakMemory, control_frames, quiet_libraries  # noqa: E402
from step_check import StepCheck, difference  # noqa: E402

CHEAP = ("cudnn_benchmark", "channels_last", "fused_qkv")  # backend.speedups.SPEEDUPS
VARIANTS = ("baseline", *CHEAP, "sdpa_cudnn", "baseline_again", "combined", "compile", "compile_max_autotune")
COMPILE_MODES = {"compile": None, "compile_max_autotune": "max-autotune-no-cudagraphs"}
PAYS = 1.02  # a cheap variant pays when one case runs this much faster and the other no slower
CASES = ("frames", "video")


@dataclass(frozen=True)
class Settings:
    size: int
    steps: int
    batch: int
    frames: int  # frames per timed run of the frames pipeline
    video_frames: int = 16
    guidance: float = 7.5
    context_length: int = 16
    context_stride: int = 4


FULL = Settings(size=512, steps=20, batch=8, frames=16)
TINY = Settings(size=64, steps=2, batch=4, frames=8)


class OverBudget(Exception):
    pass


@contextmanager
def sdpa_cudnn_first():
    """torch's scaled_dot_product_attention tries cuDNN's fused attention first."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    with sdpa_kernel(order, set_priority=True):
        yield


def run_case(models, case: str, settings: Settings, meter: PeakMemory, full_warm: bool):
    """One timed generation after a warm-up (WARMUP_STEPS steps, or every step when ``full_warm``:
    a compiled model then meets every input it will see); its figures and frames (uint8)."""
    from backend.pipelines import GenerateParams, generate

    common = dict(prompt=PROMPT, negative=NEGATIVE, seed=SEED, steps=settings.steps, guidance=settings.guidance)
    if case == "frames":
        params = GenerateParams(pipeline="frames", batch=settings.batch, **common)
        count, warm_count = settings.frames, settings.batch
    else:
        params = GenerateParams(pipeline="animatediff", context_length=settings.context_length,
                                context_stride=settings.context_stride, **common)
        count = settings.video_frames
        warm_count = min(count, settings.context_length + settings.context_stride)
    poses, depths = control_frames(count, settings.size)
    warm = params if full_warm else replace(params, steps=min(WARMUP_STEPS, params.steps))
    started = time.perf_counter()
    for _ in generate(models, poses[:warm_count], depths[:warm_count], warm):
        pass
    meter.sync()
    warm_s = time.perf_counter() - started
    graphs = _graphs_compiled()
    meter.reset()
    started = time.perf_counter()
    frames = [frame for _, frame in generate(models, poses, depths, params)]
    meter.sync()
    seconds = time.perf_counter() - started
    graphs = _graphs_compiled() - graphs  # a compiled model that compiles again while timed: not warm
    figures = {"frames": len(frames), "seconds": round(seconds, 4), "frames_per_s": round(len(frames) / seconds, 4),
               "warm_frames": warm_count, "warm_steps": warm.steps, "warm_s": round(warm_s, 3),
               "peak_mib": round(meter.peak_mib(), 1)}
    if full_warm:  # the warm-up ran every step: what it took beyond a run of its size is compilation
        figures["compile_s"] = round(warm_s - seconds * warm_count / len(frames), 2)
        figures["graphs_compiled_while_timed"] = graphs
    return figures, np.stack(frames)


def _graphs_compiled() -> int:
    """How many graphs torch.compile has made in this process (0 before the first)."""
    if "torch._dynamo" not in sys.modules:
        return 0
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def pays(record: dict) -> bool:
    ratios = [record.get(case, {}).get("speedup") for case in CASES]
    return None not in ratios and max(ratios) >= PAYS and min(ratios) >= 1 / PAYS


class Runner:
    """The variants in order, on one set of loaded models, within a time budget."""

    def __init__(self, models, settings: Settings, meter: PeakMemory, log: Clock, deadline: float,
                 compile_estimate_s: float, compile_backend: str, save):
        self.models, self.settings, self.meter, self.log = models, settings, meter, log
        self.deadline, self.compile_estimate_s, self.compile_backend, self.save = (
            deadline, compile_estimate_s, compile_backend, save)
        self.applied: list[str] = []  # cheap speed-ups on now
        self.baseline_frames: dict = {}
        self.baseline: dict = {}
        self.records: list = []
        self.skipped: list = []
        self.check = None
        self.cheap_most_s = 0.0
        self.compile_s = None

    def plan(self, name: str):
        """(cheap speed-ups, attention order first, compile mode or False) for ``name``."""
        paid = [r["variant"] for r in self.records if r["variant"] in (*CHEAP, "sdpa_cudnn") and pays(r)]
        if name in ("combined", *COMPILE_MODES):
            return [n for n in CHEAP if n in paid], "sdpa_cudnn" in paid, COMPILE_MODES.get(name, False)
        return ([name] if name in CHEAP else []), name == "sdpa_cudnn", False

    def estimate(self, name: str) -> float:
        if name not in COMPILE_MODES:
            return 1.1 * self.cheap_most_s
        compiling = self.compile_estimate_s if self.compile_s is None else self.compile_s
        if name != "compile":
            compiling *= 3  # autotuning times many kernels for each shape
        return 2 * self.cheap_most_s + compiling

    def run(self, names) -> None:
        for name in names:
            remaining = self.deadline - time.perf_counter()
            needed = self.estimate(name)
            if name == "combined" and not self.plan(name)[0] and not self.plan(name)[1]:
                self.skip(name, "no cheap variant paid")
                continue
            if remaining < needed:
                self.skip(name, f"{remaining:.0f} s of the budget left, about {needed:.0f} s needed")
                continue
            if hasattr(signal, "SIGALRM"):
                signal.alarm(max(1, int(remaining)))
            started = time.perf_counter()
            try:
                record = self.variant(name)
            except OverBudget:
                record = {"variant": name, "error": "stopped: over the time budget"}
            except Exception as exc:  # noqa: BLE001 - reported; the next variant runs
                traceback.print_exc()
                record = {"variant": name, "error": f"{type(exc).__name__}: {exc}"}
            finally:
                if hasattr(signal, "SIGALRM"):
                    signal.alarm(0)
            record["total_s"] = round(time.perf_counter() - started, 1)
            if name not in COMPILE_MODES and "error" not in record:
                self.cheap_most_s = max(self.cheap_most_s, record["total_s"])
            self.records.append(record)
            self.log(f"{name}: {json.dumps({k: v for k, v in record.items() if k != 'variant'})}")
            self.save()
            if record.get("error", "").startswith("stopped"):
                break

    def skip(self, name: str, why: str) -> None:
        self.log(f"{name}: skipped ({why})")
        self.skipped.append({"variant": name, "why": why})
        self.save()

    def variant(self, name: str) -> dict:
        from backend import speedups

        cheap, cudnn_attention, mode = self.plan(name)
        speedups.revert(self.models, [n for n in self.applied if n not in cheap])
        speedups.apply(self.models, [n for n in cheap if n not in self.applied])
        self.applied = list(cheap)
        record = {"variant": name, "speedups": cheap + (["sdpa_cudnn"] if cudnn_attention else [])}
        if "fused_qkv" in cheap:
            record["fused_attentions"] = speedups.count_fused(self.models)
        compiled = mode is not False
        if compiled:
            import torch

            torch._dynamo.reset()
            record["compile_mode"] = mode or "default"
            started = time.perf_counter()
            record["compiled"] = speedups.compile_models(self.models, mode=mode, backend=self.compile_backend)
            record["compile_setup_s"] = round(time.perf_counter() - started, 2)
        with sdpa_cudnn_first() if cudnn_attention else nullcontext():
            if not compiled:
                if self.check is None:
                    self.check = StepCheck(self.models, self.settings.size, self.settings.batch)
                record["step"] = self.check()
            for case in CASES:
                figures, frames = run_case(self.models, case, self.settings, self.meter, full_warm=compiled)
                if name == "baseline":
                    self.baseline[case], self.baseline_frames[case] = figures, frames
                elif case in self.baseline:
                    base = self.baseline[case]
                    figures["speedup"] = round(base["seconds"] / figures["seconds"], 3)
                    figures["difference"] = difference(frames, self.baseline_frames[case])
                record[case] = figures
                self.log(f"  {name} {case}: {figures['frames']} frames in {figures['seconds']:.2f} s = "
                         f"{figures['frames_per_s']:.2f} frames/s (warm-up {figures['warm_s']:.1f} s)")
        if compiled and self.compile_s is None:
            self.compile_s = sum(record[c].get("compile_s", 0) for c in CASES)
        base_error = (self.records[0].get("step") or {}).get("step_rel_error") if self.records else None
        if "step" in record and base_error:
            record["step"]["error_vs_baseline"] = round(record["step"]["step_rel_error"] / base_error, 3)
        return record


def targets(record: dict) -> dict:
    frames, video = record.get("frames", {}), record.get("video", {})
    return {"frames_vs_target": round(frames["frames_per_s"] / TARGET_FRAMES_PER_S, 3) if frames else None,
            "video_vs_target": round(TARGET_VIDEO_16_SECONDS / video["seconds"], 3) if video else None}


def print_table(records: list, skipped: list) -> None:
    print(f"\n{'variant':<22}{'frames s':>9}{'fr/s':>7}{'x base':>7}{'/8fps':>7}{'video s':>9}{'x base':>7}"
          f"{'/4s':>7}{'step err':>9}{'err x':>6}{'UNet ms':>8}{'CNs ms':>7}{'VAE ms':>7}{'px max':>7}{'compile s':>10}")
    nan = float("nan")
    for r in records:
        if "error" in r:
            print(f"{r['variant']:<22} FAILED: {r['error'][:110]}")
            continue
        f, v, step, t = r["frames"], r["video"], r.get("step", {}), targets(r)
        px = max(r[c].get("difference", {}).get("max", 0) for c in CASES)
        compiling = sum(r[c].get("compile_s", 0) for c in CASES) if "compile_mode" in r else None
        print(f"{r['variant']:<22}{f['seconds']:>9.2f}{f['frames_per_s']:>7.2f}{f.get('speedup', 1.0):>7.3f}"
              f"{t['frames_vs_target']:>7.3f}{v['seconds']:>9.2f}{v.get('speedup', 1.0):>7.3f}"
              f"{t['video_vs_target']:>7.3f}{step.get('step_rel_error', float('nan')):>9.2e}"
              f"{step.get('error_vs_baseline', 1.0) if step else float('nan'):>6.2f}{step.get('unet_ms', nan):>8.1f}"
              f"{step.get('controlnets_ms', nan):>7.1f}{step.get('vae_decode_ms', nan):>7.1f}{px:>7}"
              f"{'' if compiling is None else f'{compiling:.1f}':>10}")
    for s in skipped:
        print(f"{s['variant']:<22} skipped: {s['why']}")
    print("(x base: speed against the baseline of this run; /8fps, /4s: against the targets, >= 1 meets them;"
          " step err: one step's relative error against fp32, err x: over the baseline's; px max: largest difference from the"
          " baseline's frames, 8-bit levels)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny random model at 64x64 on the CPU")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --tiny")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"in order, from {', '.join(VARIANTS)}")
    parser.add_argument("--budget-s", type=float, default=420.0, help="the whole run's seconds, setup included")
    parser.add_argument("--compile-estimate-s", type=float, default=180.0,
                        help="expected compilation seconds before one is measured (for the budget)")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend (aot_eager: a quick check)")
    parser.add_argument("--frames", type=int, help="frames per timed run of the frames pipeline")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--out-json", type=Path)
    parser.add_argument("--models", type=Path, help="use this model set (posebridge-models.json), write none")
    args = parser.parse_args(argv)
    log = Clock()
    started = time.perf_counter()
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown or not names or names[0] != "baseline":
        parser.error(f"--variants: from {', '.join(VARIANTS)}, baseline first (got {args.variants!r})")

    import tempfile

    import torch

    quiet_libraries()
    if args.tiny:
        torch.set_num_threads(1)
    from backend.models import pick_device

    overrides = {"frames": args.frames, "batch": args.batch, "steps": args.steps}
    settings = replace(TINY if args.tiny else FULL, **{k: v for k, v in overrides.items() if v})
    device = pick_device(args.device or ("cpu" if args.tiny else "cuda"))
    figures = {"mode": "tiny" if args.tiny else "full", "device": device, "settings": asdict(settings),
               "environment": environment(device), "budget_s": args.budget_s, "setup": {}, "variants": [],
               "skipped": []}

    def save() -> None:
        if args.out_json:
            args.out_json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")

    log(f"{figures['mode']} model set on {device}: {json.dumps(figures['environment'])}")
    temporary = None
    if args.models is None:
        temporary = tempfile.TemporaryDirectory(prefix="posebridge_bench_variants_")
        write_models(Path(temporary.name), args.tiny, device, log, figures["setup"])
    models = load(args.models or Path(temporary.name), device, "auto", log, figures["setup"])
    meter = PeakMemory(device)

    def over_budget(*_):
        raise OverBudget

    if hasattr(signal, "SIGALRM"):
        signal.signal(signal.SIGALRM, over_budget)
    runner = Runner(models, settings, meter, log, started + args.budget_s, args.compile_estimate_s,
                    args.compile_backend, save)
    figures["variants"], figures["skipped"] = runner.records, runner.skipped
    runner.run(names)
    for record in runner.records:
        record.update(targets(record) if "error" not in record else {})
    save()
    print_table(runner.records, runner.skipped)
    if temporary is not None:
        temporary.cleanup()
    failed = [r["variant"] for r in runner.records if "error" in r]
    log(f"done in {time.perf_counter() - started:.0f} s{'; FAILED: ' + ', '.join(failed) if failed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
