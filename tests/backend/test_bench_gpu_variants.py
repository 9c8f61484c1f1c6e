"""bench/bench_gpu_variants.py: its --tiny run (the GPU variant benchmark's own code path, tiny
model, CPU) times every variant against the baseline and compares their frames, torch.compile
through the quick aot_eager backend; a variant that does not fit the time budget is skipped."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import bench_gpu_variants  # noqa: E402


def test_tiny_run_times_each_variant_against_the_baseline(tmp_path):
    out = tmp_path / "variants.json"
    names = ["baseline", "cudnn_benchmark", "channels_last", "fused_qkv", "sdpa_cudnn", "compile"]
    command = [sys.executable, str(BENCH / "bench_gpu_variants.py"), "--tiny", "--variants", ",".join(names),
               "--compile-backend", "aot_eager", "--out-json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert (figures["mode"], figures["device"], figures["setup"]["dtype"]) == ("tiny", "cpu", "float32")
    records = {r["variant"]: r for r in figures["variants"]}
    assert list(records) == names and not figures["skipped"]
    for name, record in records.items():
        assert "error" not in record, record
        for case, count in (("frames", 8), ("video", 16)):
            figures_ = record[case]
            assert figures_["frames"] == count and figures_["seconds"] > 0
            if name != "baseline":
                assert figures_["speedup"] > 0
                assert figures_["difference"]["max"] <= 1, (name, case)  # rounding only
        assert record["frames_vs_target"] > 0 and record["video_vs_target"] > 0
    # The step check runs on every eager variant: fp32 on the CPU, so no error against fp32 copies.
    for name in names[:-1]:
        step = records[name]["step"]
        assert step["step_rel_error"] < 1e-4 and step["unet_ms"] > 0 and step["controlnets_ms"] > 0
    assert records["fused_qkv"]["fused_attentions"] > 0
    compiled = records["compile"]
    assert compiled["compiled"] == ["UNet2DConditionModel", "UNetMotionModel", "ControlNetModel", "ControlNetModel"]
    for case in ("frames", "video"):  # warmed up on every step: nothing compiles while timed
        assert compiled[case]["warm_steps"] == 2 and compiled[case]["graphs_compiled_while_timed"] == 0
        assert "compile_s" in compiled[case]
    assert "x base" in done.stdout and "compile s" in done.stdout


def test_a_variant_that_does_not_fit_the_budget_is_skipped():
    lines = []
    runner = bench_gpu_variants.Runner(None, bench_gpu_variants.TINY, None, lines.append,
                                       deadline=time.perf_counter() + 60, compile_estimate_s=180,
                                       compile_backend="inductor", save=lambda: None)
    runner.run(["compile"])
    assert runner.records == [] and runner.skipped[0]["variant"] == "compile"
    assert "about 180 s needed" in runner.skipped[0]["why"]
    runner.deadline = time.perf_counter() - 1
    runner.run(["channels_last"])
    assert [s["variant"] for s in runner.skipped] == ["compile", "channels_last"]
