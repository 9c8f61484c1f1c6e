"""bench/bench_gpu.py: its --tiny run (the GPU benchmark's own code path, tiny model, CPU) gives
sane figures, Wan 2.1 VACE's among them (bench/bench_gpu_wan.py, and a job's whole path in
bench/bench_gpu_wan_pipeline.py), and the full-size
configurations it builds from (bench/sd15_configs.py, bench/wan_configs.py) are the published
architectures: their parameter counts, counted on the meta device."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import bench_gpu_wan  # noqa: E402
import full_size_model  # noqa: E402
import sd15_configs  # noqa: E402
import wan_configs  # noqa: E402


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
    # Wan 2.1 VACE ran first, on the tiny configurations: one CFG step is two forwards, a segment
    # the pipeline's 50 steps and one decode of 9 frames (3 latent frames of 8x8).
    wan = figures["wan"]
    cases = {case["case"]: case for case in wan["cases"]}
    assert set(cases) == {"wan vace transformer", "wan vae decode fp32", "wan vae decode bf16"}
    assert not any("error" in case for case in cases.values())
    transformer = cases["wan vace transformer"]
    assert transformer["latents"] == [1, 16, 3, 8, 8] and transformer["control"] == [1, 96, 3, 8, 8]
    assert transformer["seconds_per_step"] == pytest.approx(2 * transformer["seconds_per_forward"], abs=1e-3)
    assert transformer["seconds_per_segment"] == pytest.approx(50 * transformer["seconds_per_step"], rel=0.01)
    for dtype in ("fp32", "bf16"):
        decode = cases[f"wan vae decode {dtype}"]
        assert decode["frames"] == 9 and decode["seconds"] > 0 and decode["peak_mib"] > 0
    assert wan["segment"]["seconds"] == pytest.approx(
        transformer["seconds_per_segment"] + cases["wan vae decode fp32"]["seconds"], abs=0.02)
    assert "Wan 2.1 VACE 1.3B" in done.stdout
    # SDXL ran after Wan, on the tiny SDXL set: the full settings and the preview, both timed.
    sdxl = {case["case"]: case for case in figures["sdxl"]["cases"]}
    assert set(sdxl) == {"sdxl frames 128 batch 2", "sdxl preview 64 batch 4"}
    assert not any("error" in case for case in sdxl.values())
    assert sdxl["sdxl preview 64 batch 4"]["counters"]["unet_calls"] == 1, "4 frames in one batch of 4"
    assert figures["sdxl"]["target"]["pass"] is None and figures["sdxl"]["preview_ratio"] > 0
    assert "preview >= 5x" in done.stdout


def test_wan_pipeline_bench_runs_a_jobs_path_on_the_tiny_model(tmp_path):
    """bench_gpu_wan_pipeline.py --tiny: segments through backend.pipelines, the step time and
    the fixed cost per segment split from two step counts, the lead-frame segment makes the rest."""
    out = tmp_path / "wan.json"
    command = [sys.executable, str(BENCH / "bench_gpu_wan_pipeline.py"), "--tiny", "--steps", "1,3",
               "--out-json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    low, high, lead = figures["cases"]
    assert (low["steps"], high["steps"], low["frames_made"], lead["frames_made"]) == (1, 3, 9, 4)
    assert low["frame_shape"] == [48, 64, 3] and figures["load_s"] > 0
    assert figures["seconds_per_step"] == pytest.approx((high["seconds"] - low["seconds"]) / 2, abs=1e-3)
    assert figures["segment_50_steps_s"] == pytest.approx(
        figures["fixed_seconds"] + 50 * figures["seconds_per_step"], abs=0.02)
    assert "50-step segment" in done.stdout


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


def test_wan_vace_config_has_the_published_parameter_counts():
    from diffusers import AutoencoderKLWan

    model = bench_gpu_wan.build_transformer(wan_configs.VACE_1_3B, "meta", torch.bfloat16)
    vace = sum(p.numel() for name, p in model.named_parameters() if name.startswith("vace_"))
    t2v = sum(p.numel() for p in model.parameters()) - vace
    assert len(model.vace_blocks) == 15 and len(model.blocks) == 30
    for name, count in (("t2v_part", t2v), ("vace_part", vace)):
        low, high = wan_configs.PARAMETERS[name]
        assert low <= count <= high, f"{name}: {count / 1e6:.2f}M parameters"
    # bf16 as from_pretrained leaves it: the modules it keeps in fp32 (time embedder, norms) stay so.
    dtypes = {name: p.dtype for name, p in model.named_parameters()}
    assert dtypes["blocks.0.attn1.to_q.weight"] == torch.bfloat16
    assert dtypes["condition_embedder.time_embedder.linear_1.weight"] == torch.float32
    with torch.device("meta"):
        vae = AutoencoderKLWan.from_config(wan_configs.VAE)
    low, high = wan_configs.PARAMETERS["vae"]
    assert low <= sum(p.numel() for p in vae.parameters()) <= high


def test_wan_flop_count_agrees_with_torchs_counter():
    """The counted FLOPs behind the TFLOP/s figure, against torch's FlopCounterMode on a small
    model (the counter does not see the CPU's attention kernel: those terms are left out)."""
    from torch.utils.flop_counter import FlopCounterMode

    config = {**wan_configs.TINY_VACE, "attention_head_dim": 32, "ffn_dim": 96, "rope_max_seq_len": 1024}
    model = bench_gpu_wan.build_transformer(config, "cpu", torch.float32)
    settings = bench_gpu_wan.WanSettings(height=128, width=96, frames=17, text_tokens=20, timed_steps=1)
    latents = torch.randn(settings.latent_shape(16))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(hidden_states=latents, timestep=torch.tensor([999.0]), encoder_hidden_states=torch.randn(1, 20, 32),
              control_hidden_states=torch.randn(settings.latent_shape(96)))
    tokens, width, blocks = 5 * 8 * 6, 64, 3 + 2
    attention = blocks * (4 * tokens * tokens * width + 4 * tokens * 20 * width)
    ours = bench_gpu_wan.transformer_flops(config, settings.latent_shape(16), 20) - attention
    assert ours == pytest.approx(counter.get_total_flops(), rel=0.005)


def test_the_full_size_sdxl_writer_builds_a_set_the_backend_loads(tmp_path, monkeypatch):
    """bench_gpu_sdxl.write_full_size is what an accelerator run does first: here with the
    published configurations shrunk to the tiny SDXL's sizes (same keys and classes), on the CPU,
    then loaded by load_models and run, as on the GPU."""
    import bench_gpu_sdxl
    from backend import published_configs as published
    from backend.models import load_models
    from backend.model_set import read_model_set
    from backend.pipelines import GenerateParams, generate
    from backend.tiny_sdxl import UNET_KWARGS
    from measure import Clock

    unet = {**published.SDXL_UNET, **{k: list(v) if isinstance(v, tuple) else v for k, v in UNET_KWARGS.items()}}
    text = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)
    monkeypatch.setattr(published, "SDXL_UNET", unet)
    monkeypatch.setattr(published, "SDXL_VAE", {**published.SDXL_VAE, "block_out_channels": [8, 8, 16, 16],
                                                "norm_num_groups": 4, "layers_per_block": 1})
    monkeypatch.setattr(published, "SDXL_TEXT_ENCODER", {**published.SDXL_TEXT_ENCODER, **text})
    monkeypatch.setattr(published, "SDXL_TEXT_ENCODER_2", {**published.SDXL_TEXT_ENCODER_2, **text,
                                                           "hidden_size": 48, "projection_dim": 32})
    monkeypatch.setattr(published, "SDXL_CONTROLNET", {
        **{k: v for k, v in unet.items() if k not in ("out_channels", "sample_size", "up_block_types",
                                                      "mid_block_type", "center_input_sample")},
        "conditioning_embedding_out_channels": [8, 8, 16, 16]})
    written = bench_gpu_sdxl.write_full_size(tmp_path, "cpu", Clock(), rank=4)
    model_set = read_model_set(written.parent)
    models = load_models(model_set.base, model_set.openpose, model_set.depth, device="cpu", dtype="fp32",
                         local_files_only=True, preview_lora=model_set.preview_lora)
    assert models.family == "sdxl" and models.preview is not None
    pose = np.zeros((64, 64, 3), np.uint8)
    frames = list(generate(models, [pose], [pose], GenerateParams(steps=1, preview=True)))
    assert len(frames) == 1 and frames[0][1].shape == (64, 64, 3)
