"""backend.speedups: each speed-up leaves the frames as they were (up to rounding) and is taken back
whole; torch.compile is opt-in (load_models(torch_compile=True), serve --compile) and wraps the
UNets and ControlNets, the ControlNets' cached control embedding left eager. CPU, tiny models."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from conftest import load_tiny  # noqa: E402
from frames_of import frames_of  # noqa: E402


def _frames(models, pipeline):
    from posebridge.backend.pipelines import GenerateParams, generate

    rng = np.random.default_rng(3)
    poses = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(4)]
    depths = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(4)]
    params = GenerateParams(pipeline=pipeline, prompt="a dancer", negative="blurry", steps=2, seed=5, batch=2,
                            context_length=4, context_stride=2)
    return np.stack(frames_of(generate(models, poses, depths, params)))


@pytest.fixture
def fresh_models(tiny_model):
    """The tiny set with both adapters, loaded for one test (speed-ups change the models), run on
    one thread: the tiny model's operations are too small to share out, and on a busy machine
    threads waiting on each other make them many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield load_tiny(tiny_model, motion_adapter=str(tiny_model.motion_adapter),
                        ip_adapter=str(tiny_model.ip_adapter))
    finally:
        torch.set_num_threads(threads)


def test_speedups_keep_the_frames_and_are_taken_back(fresh_models):
    from diffusers.models.attention_processor import AttnProcessor2_0, IPAdapterAttnProcessor2_0

    from posebridge.backend import speedups

    models = fresh_models
    before = {pipeline: _frames(models, pipeline) for pipeline in ("frames", "animatediff")}
    processors = {id(m): type(m.processor) for m in speedups._attentions(models)}
    assert speedups.apply(models, ["fused_qkv", "channels_last"]) == ["channels_last", "fused_qkv"]
    # Every plain attention is fused (the motion modules' too); the IP-Adapter's keep theirs.
    fused = speedups.count_fused(models)
    assert fused == sum(kind is AttnProcessor2_0 for kind in processors.values()) > 0
    assert any(kind is IPAdapterAttnProcessor2_0 for kind in processors.values())
    conv = models.pose_pipe.unet.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    for pipeline, frames in before.items():
        changed = np.abs(_frames(models, pipeline).astype(int) - frames)
        assert changed.max() <= 1, pipeline  # rounding only
    speedups.revert(models, ["fused_qkv", "channels_last"])
    assert speedups.count_fused(models) == 0
    assert {id(m): type(m.processor) for m in speedups._attentions(models)} == processors
    assert not any(hasattr(m, "to_qkv") or hasattr(m, "to_kv") for m in speedups._attentions(models))
    assert models.pose_pipe.unet.conv_in.weight.is_contiguous()
    for pipeline, frames in before.items():
        assert np.array_equal(_frames(models, pipeline), frames), pipeline
    with pytest.raises(ValueError, match="unknown speed-up"):
        speedups.apply(models, ["warp_drive"])


def test_torch_compile_is_opt_in_and_wraps_the_denoisers(tiny_model, pipe):
    from posebridge.backend.control_cache import CachedConditioningEmbedding

    assert not pipe.compiled and pipe.pose_pipe.unet._compiled_call_impl is None
    models = load_tiny(tiny_model, motion_adapter=str(tiny_model.motion_adapter), torch_compile=True)
    assert models.compiled
    for model in (models.pose_pipe.unet, models.motion_pipe.unet, *models.controlnets):
        assert model._compiled_call_impl is not None, type(model).__name__
    for net in models.controlnets:
        embedding = net.controlnet_cond_embedding
        assert isinstance(embedding, CachedConditioningEmbedding)
        assert "forward" in vars(embedding)  # the eager (compiler-disabled) wrapper of its own forward
    assert models.pose_pipe.vae._compiled_call_impl is None


def test_serve_compile_flag_and_its_conflict_with_cpu_offload(capsys):
    from posebridge.backend.cli import build_parser, serve

    parser = build_parser()
    assert parser.parse_args(["serve", "--compile"]).compile
    assert not parser.parse_args(["serve"]).compile
    args = parser.parse_args(["serve", "--compile", "--cpu-offload"])
    with pytest.raises(SystemExit):
        serve(args, args.command_parser)
    assert "--compile does not go with --cpu-offload" in capsys.readouterr().err
