"""bench/bench_gpu.py: its --tiny run (the GPU benchmark's own code path, tiny model, CPU) gives
sane figures, and the full-size configurations it builds from (bench/sd15_configs.py) are the
published architectures: their parameter counts, counted on the meta device."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import full_size_model  # noqa: E402
import sd15_configs  # noqa: E402


def test_tiny_run_writes_sane_figures(tmp_path):
    out = tmp_path / "figures.json"
    command = [sys.executable, str(BENCH / "bench_gpu.py"), "--tiny", "--frames", "4", "--batches", "2", "4",
               "--video-frames", "16", "24", "--out-json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert {"mode", "device", "settings", "environment", "setup", "cases", "targets", "memory_kind"} <= set(figures)
    assert (figures["mode"], figures["device"], figures["setup"]["dtype"]) == ("tiny", "cpu", "float32")
    assert figures["setup"]["write_s"] > 0 and figures["setup"]["load_s"] > 0
    cases = {case["case"]: case for case in figures["cases"]}
    expected = {"frames batch 2": 4, "frames batch 4": 4, "animatediff 16": 16, "animatediff 24": 24,
                "animatediff 16 + reference": 16}
    assert {name: case["frames"] for name, case in cases.items()} == expected
    for case in cases.values():
        assert case["seconds"] > 0 and case["frames_per_s"] > 0
        assert case["frames_per_s"] == pytest.approx(case["frames"] / case["seconds"], rel=1e-3)
        assert 0 < case["resident_mib"] <= case["peak_mib"]
    # 24 frames at context 16, stride 4: three windows, each through the motion UNet per step.
    assert cases["animatediff 24"]["counters"]["unet_calls"] == 3 * figures["settings"]["steps"]
    # The tiny run is a check of the path: its figures are not judged against the GPU targets.
    assert len(figures["targets"]) == 4 and all(t["pass"] is None for t in figures["targets"])
    assert "frames/s" in done.stdout and "targets" in done.stdout


@pytest.mark.parametrize("name", full_size_model.MODEL_NAMES)
def test_full_size_configs_have_the_published_parameter_counts(name):
    model = full_size_model.build(name, "meta")
    count = sum(p.numel() for p in model.parameters())
    low, high = sd15_configs.PARAMETERS[name]
    assert low <= count <= high, f"{name}: {count / 1e6:.2f}M parameters, published {low / 1e6:.1f}-{high / 1e6:.1f}M"


def test_ip_adapter_weights_have_the_published_size_and_the_tiny_sets_layout(tiny_model):
    from diffusers import UNet2DConditionModel
    from safetensors import safe_open

    weights = full_size_model.ip_adapter_weights(full_size_model.build("unet", "meta"))
    count = sum(w.numel() for w in weights.values())
    low, high = sd15_configs.PARAMETERS["ip_adapter"]
    assert low <= count <= high
    assert len(weights) == 4 + 2 * 16  # image_proj, and key/value for SD1.5's 16 cross-attentions
    # For the tiny UNet, the same function names and shapes the keys as make_tiny_model does.
    unet = UNet2DConditionModel.from_pretrained(tiny_model.base / "unet")
    ours = full_size_model.ip_adapter_weights(unet)
    with safe_open(str(tiny_model.ip_adapter / "models" / "ip-adapter_sd15.safetensors"), "pt") as f:
        theirs = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    assert set(ours) == set(theirs)
    assert {k: tuple(v.shape) for k, v in ours.items() if k.startswith("ip_adapter.")} == {
        k: v for k, v in theirs.items() if k.startswith("ip_adapter.")
    }


def test_tokenizer_has_clips_vocabulary_size_and_special_ids():
    tokenizer = full_size_model.build_tokenizer()
    assert len(tokenizer) == sd15_configs.SD15_TEXT_ENCODER["vocab_size"] == 49408
    ids = tokenizer("a knight dancing", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and ids[0] == 49406 and ids[-1] == 49407
