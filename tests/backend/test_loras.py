"""LoRAs per job on the tiny model (issue 14): random LoRAs written in diffusers' and in
Kohya/A1111's key formats; a LoRA changes the frames, weight 0 equals none, switching between
jobs loads each LoRA once and never the base model, Kohya alphas count per module, AnimateDiff
sees them too, and a file that is not there or does not fit is named."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from posebridge.backend.loras import LoraError  # noqa: E402
from posebridge.backend.pipelines import GenerateParams, generate  # noqa: E402
from frames_of import frames_of  # noqa: E402
from test_pipeline import POSES, stick_figure  # noqa: E402

UNET_MODULES = ("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
                "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k",
                "up_blocks.0.attentions.0.transformer_blocks.0.ff.net.2")
TEXT_MODULES = tuple(f"text_model.encoder.layers.0.self_attn.{p}_proj" for p in ("q", "k", "v", "out"))
RANK = 2


@pytest.fixture(scope="module")
def models(tiny_model):
    """Models of their own: LoRAs stay loaded in the models they were loaded into."""
    from conftest import load_tiny

    return load_tiny(tiny_model, motion_adapter=str(tiny_model.motion_adapter))


def _linear(root, path):
    module = root
    for part in path.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)
    return getattr(module, "base_layer", module)  # a module a LoRA is already in


def _random_pairs(models, seed):
    """{(part, module path): (down [r, in], up [out, r])} for a few UNet and text-encoder layers."""
    generator = torch.Generator().manual_seed(seed)
    pairs = {}
    for part, root, paths in (("unet", models.pose_pipe.unet, UNET_MODULES),
                              ("text_encoder", models.pose_pipe.text_encoder, TEXT_MODULES)):
        for path in paths:
            layer = _linear(root, path.removeprefix("text_model.") if part == "text_encoder" else path)
            down = torch.randn(RANK, layer.in_features, generator=generator) * 0.6
            up = torch.randn(layer.out_features, RANK, generator=generator) * 0.6
            pairs[(part, path)] = (down, up)
    return pairs


def write_diffusers_lora(models, path, seed):
    from diffusers import StableDiffusionPipeline

    layers = {"unet": {}, "text_encoder": {}}
    for (part, module), (down, up) in _random_pairs(models, seed).items():
        layers[part][f"{module}.lora_A.weight"] = down
        layers[part][f"{module}.lora_B.weight"] = up
    StableDiffusionPipeline.save_lora_weights(path.parent, unet_lora_layers=layers["unet"],
                                              text_encoder_lora_layers=layers["text_encoder"], weight_name=path.name)
    return str(path)


def write_kohya_lora(models, path, seed, alphas=None):
    """Kohya/A1111 keys: lora_unet_<path with _>, lora_te_<path with _>; alpha per module."""
    from safetensors.torch import save_file

    state = {}
    for index, ((part, module), (down, up)) in enumerate(_random_pairs(models, seed).items()):
        prefix = ("lora_unet_" if part == "unet" else "lora_te_") + module.replace(".", "_")
        state[f"{prefix}.lora_down.weight"] = down.contiguous()
        state[f"{prefix}.lora_up.weight"] = up.contiguous()
        state[f"{prefix}.alpha"] = torch.tensor(float(alphas[index] if alphas else RANK))
    save_file(state, str(path))
    return str(path)


def run(models, loras=(), pipeline="frames", poses=POSES[:2]):
    params = GenerateParams(prompt="a dancer", seed=3, steps=2, guidance=5.0, pipeline=pipeline,
                            context_length=2, context_stride=1, loras=tuple(loras))
    return np.stack(frames_of(generate(models, poses, None, params)))


def test_a_lora_changes_the_frames_and_weight_zero_equals_none(models, tmp_path):
    lora = write_diffusers_lora(models, tmp_path / "style.safetensors", seed=1)
    plain = run(models)
    styled = run(models, [(lora, 1.0)])
    assert np.abs(styled.astype(int) - plain).mean() > 1.0, "the LoRA shows in the frames"
    np.testing.assert_array_equal(run(models, [(lora, 0.0)]), plain)
    np.testing.assert_array_equal(run(models), plain, "a job without LoRAs runs with them all off")


def test_switching_loads_each_lora_once_and_never_the_base_model(models, tmp_path):
    first = write_diffusers_lora(models, tmp_path / "a.safetensors", seed=2)
    second = write_kohya_lora(models, tmp_path / "b.safetensors", seed=3)
    unet, text_encoder = models.pose_pipe.unet, models.pose_pipe.text_encoder
    loads = models.loras.loads
    a = run(models, [(first, 1.0)])
    b = run(models, [(second, 1.0)])
    both = run(models, [(first, 1.0), (second, 0.5)])
    assert np.abs(a.astype(int) - b).mean() > 1.0 and np.abs(both.astype(int) - a).mean() > 0.5
    np.testing.assert_array_equal(run(models, [(first, 1.0)]), a, "back to the first: the same frames")
    assert models.loras.loads == loads + 2, "each LoRA file read once"
    assert models.pose_pipe.unet is unet and models.pose_pipe.text_encoder is text_encoder


def test_a_lora_file_trained_further_is_loaded_again(models, tmp_path):
    import os

    path = tmp_path / "grown.safetensors"
    write_diffusers_lora(models, path, seed=6)
    first = run(models, [(str(path), 1.0)])
    loads = models.loras.loads
    write_diffusers_lora(models, path, seed=7)  # the same name, new weights
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    second = run(models, [(str(path), 1.0)])
    assert models.loras.loads == loads + 1 and np.abs(second.astype(int) - first).mean() > 1.0
    np.testing.assert_array_equal(run(models), run(models))
    assert len(models.pose_pipe.get_list_adapters()["unet"]) == len(models.loras.loaded), "the old one is gone"


def test_kohya_alphas_count_per_module(models, tmp_path):
    """Different alphas per module (diffusers alone would scale all by the commonest): the file
    reads as the same LoRA with each module's alpha / rank folded into its up matrix."""
    from safetensors.torch import load_file, save_file

    alphas = [1.0, 4.0, 0.5, 2.0, 3.0, 1.0, 2.0]
    mixed = write_kohya_lora(models, tmp_path / "mixed.safetensors", seed=4, alphas=alphas)
    state = load_file(mixed)
    folded = {}
    for key, value in state.items():
        if key.endswith(".alpha"):
            folded[key] = torch.tensor(float(RANK))
        elif key.endswith(".lora_up.weight"):
            folded[key] = value * (float(state[key.replace(".lora_up.weight", ".alpha")]) / RANK)
        else:
            folded[key] = value
    save_file(folded, str(tmp_path / "folded.safetensors"))
    np.testing.assert_array_equal(run(models, [(mixed, 1.0)]), run(models, [(str(tmp_path / "folded.safetensors"), 1.0)]))


def test_animatediff_sees_the_loras_too(models, tmp_path):
    lora = write_kohya_lora(models, tmp_path / "video.safetensors", seed=5)
    poses = [stick_figure(s) for s in (0, 4, 8)]
    plain = run(models, pipeline="animatediff", poses=poses)
    styled = run(models, [(lora, 1.0)], pipeline="animatediff", poses=poses)
    assert np.abs(styled.astype(int) - plain).mean() > 1.0
    np.testing.assert_array_equal(run(models, [(lora, 0.0)], pipeline="animatediff", poses=poses), plain)


def test_a_missing_or_unfitting_lora_is_named(models, tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(LoraError, match="no such file"):
        run(models, [(str(tmp_path / "gone.safetensors"), 1.0)])
    save_file({"unet.no_such_block.lora_A.weight": torch.zeros(2, 4),
               "unet.no_such_block.lora_B.weight": torch.zeros(4, 2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(LoraError, match="other.safetensors"):
        run(models, [(str(tmp_path / "other.safetensors"), 1.0)])
    np.testing.assert_array_equal(run(models), run(models), "the models still run after a refused LoRA")
    with pytest.raises(ValueError, match="weight"):
        GenerateParams(loras=(("x.safetensors", 9.0),)).validate()
    with pytest.raises(ValueError, match="wan-vace"):
        GenerateParams(pipeline="wan-vace", loras=(("x.safetensors", 1.0),)).validate()
