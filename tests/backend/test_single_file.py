"""Single-file checkpoints (.safetensors/.ckpt) through diffusers' from_single_file.

A ControlNet saved as one file in diffusers' key layout loads that way (diffusers takes such a
file as already converted), so that path is tested for real on the tiny model. A base model as
one file needs the original Stable Diffusion key layout, which diffusers can read but not write:
ldm_checkpoint.py (test-only) writes the tiny base model in that layout, and the file is loaded
in-process and through the CLI and checked against the folder-loaded model.
"""
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from posebridge.backend.models import ModelNotAvailableError, is_single_file, load_models  # noqa: E402
from posebridge.backend.pipelines import GenerateParams, generate  # noqa: E402
from frames_of import frames_of  # noqa: E402

WEIGHTS = "diffusion_pytorch_model.safetensors"


def test_is_single_file():
    assert is_single_file("/m/model.safetensors") and is_single_file("x.CKPT")
    assert not is_single_file("stable-diffusion-v1-5/stable-diffusion-v1-5")
    assert not is_single_file("/m/folder") and not is_single_file(None)


def test_single_file_controlnet_loads_and_generates_like_its_folder(tiny_model, pipe, tmp_path):
    single = tmp_path / "pose.safetensors"
    shutil.copy(tiny_model.openpose / WEIGHTS, single)
    from_file = load_models(
        str(tiny_model.base),
        str(single),
        None,
        device="cpu",
        local_files_only=True,
        controlnet_config=str(tiny_model.openpose),
    )
    assert not from_file.has_depth
    image = np.zeros((64, 64, 3), np.uint8)
    image[10:50, 20:26] = (255, 0, 0)
    params = GenerateParams(steps=2, seed=3)
    a = frames_of(generate(from_file, [image], None, params))[0]
    b = frames_of(generate(pipe, [image], None, params))[0]
    np.testing.assert_array_equal(a, b)


def test_missing_single_file_is_named(tiny_model, tmp_path):
    missing = tmp_path / "model.safetensors"
    with pytest.raises(ModelNotAvailableError, match="no such checkpoint file") as info:
        load_models(str(missing), str(tiny_model.openpose), None, device="cpu", local_files_only=True)
    assert str(missing) in str(info.value)


def test_missing_config_folder_is_named(tiny_model, tmp_path):
    single = tmp_path / "model.safetensors"
    single.write_bytes(b"")
    with pytest.raises(ModelNotAvailableError, match="configuration folder does not exist"):
        load_models(
            str(single),
            str(tiny_model.openpose),
            None,
            device="cpu",
            local_files_only=True,
            model_config=str(tmp_path / "no-config"),
        )


def test_single_file_without_config_offline_says_what_to_pass(tiny_model, tmp_path):
    single = tmp_path / "pose.safetensors"
    shutil.copy(tiny_model.openpose / WEIGHTS, single)
    with pytest.raises(ModelNotAvailableError, match="--controlnet-config"):
        load_models(
            str(tiny_model.base),
            str(single),
            None,
            device="cpu",
            local_files_only=True,
            cache_dir=tmp_path / "empty-hf-cache",  # not the user's cache, which may hold the config
        )


# --- a base model as one file in the original (LDM) key layout --------------------------------

sys.path.insert(0, str(Path(__file__).resolve().parent))  # ldm_checkpoint.py beside this file
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/backend_process.py
from ldm_checkpoint import save_as_ldm_checkpoint, unet_module_map, vae_module_map, rename_keys  # noqa: E402

SIZE = 64


def _stick_figure(shift: int) -> np.ndarray:
    """Coloured sticks on black, moved right by ``shift`` px (as test_pipeline.py's poses)."""
    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    x = 16 + shift
    img[8:14, x : x + 6] = (255, 0, 0)
    img[14:40, x + 2 : x + 4] = (0, 255, 0)
    img[20:22, x - 10 : x + 16] = (0, 0, 255)
    img[40:60, x - 4 : x - 2] = (255, 255, 0)
    img[40:60, x + 8 : x + 10] = (0, 255, 255)
    return img


def _depth_ramp() -> np.ndarray:
    ramp = np.tile(np.linspace(0, 255, SIZE).round().astype(np.uint8), (SIZE, 1))
    return np.repeat(ramp[:, :, None], 3, axis=2)


@pytest.fixture(scope="module")
def ldm_file(tiny_model, tmp_path_factory):
    """(the tiny base model as tiny-sd.safetensors in the original key layout, the mapping)."""
    out = tmp_path_factory.mktemp("ldm") / "tiny-sd.safetensors"
    mapping = save_as_ldm_checkpoint(tiny_model.base, out)
    return out, mapping


def _folder_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    (weights,) = folder.glob("*.safetensors")
    return load_file(str(weights))


def test_ldm_checkpoint_round_trips_every_tensor(tiny_model, ldm_file):
    """Every diffusers weight is in the file under one original name, the file holds nothing
    else, and diffusers' own original->diffusers conversion gives back exactly the diffusers
    weights (same names, same values)."""
    import json

    import torch
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
        infer_diffusers_model_type,
    )
    from safetensors.torch import load_file

    path, mapping = ldm_file
    checkpoint = load_file(str(path))
    written = [name for names in mapping.values() for name in names.values()]
    assert len(written) == len(set(written)) == len(checkpoint)
    assert set(written) == set(checkpoint)
    assert all(k.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer."))
               for k in checkpoint)
    assert infer_diffusers_model_type(checkpoint) == "v1"

    def config(sub):
        return json.loads((tiny_model.base / sub / "config.json").read_text())

    back = {
        "unet": convert_ldm_unet_checkpoint(checkpoint, config("unet")),
        "vae": convert_ldm_vae_checkpoint(checkpoint, config("vae")),
        # transformers >= 5.6 saves CLIPTextModel without its "text_model." level.
        "text_encoder": {
            k.removeprefix("text_model."): v for k, v in convert_ldm_clip_checkpoint(checkpoint).items()
        },
    }
    for component, converted in back.items():
        original = _folder_weights(tiny_model.base / component)
        assert set(converted) == set(original), component
        for key, tensor in original.items():
            assert torch.equal(converted[key], tensor), f"{component}: {key}"


def test_ldm_names_match_sd15_at_full_size():
    """At Stable Diffusion 1.5's real sizes (built on the meta device, no weights) the mapping
    covers every key, gives the names SD1.5 checkpoints have, and diffusers maps them back."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (
        CHECKPOINT_KEY_NAMES,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )

    with torch.device("meta"):
        unet = UNet2DConditionModel(
            block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=768,
            attention_head_dim=8,
        )
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=2,
            latent_channels=4,
        )
    checkpoint = {}
    for model, module_map, prefix in (
        (unet, unet_module_map, "model.diffusion_model."),
        (vae, vae_module_map, "first_stage_model."),
    ):
        state = model.state_dict()
        names = rename_keys(state, module_map(dict(model.config)), prefix)
        checkpoint.update({names[k]: state[k] for k in state})
    for name in (
        CHECKPOINT_KEY_NAMES["v1"],  # diffusers' SD1.x marker
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
        "model.diffusion_model.input_blocks.3.0.op.weight",
        "model.diffusion_model.input_blocks.11.0.in_layers.2.weight",
        "model.diffusion_model.middle_block.1.proj_in.weight",
        "model.diffusion_model.output_blocks.2.1.conv.weight",
        "model.diffusion_model.output_blocks.5.2.conv.weight",
        "model.diffusion_model.output_blocks.11.1.proj_out.weight",
        "model.diffusion_model.time_embed.2.weight",
        "model.diffusion_model.out.2.weight",
        "first_stage_model.encoder.down.0.downsample.conv.weight",
        "first_stage_model.encoder.down.1.block.0.nin_shortcut.weight",
        "first_stage_model.encoder.mid.attn_1.q.weight",
        "first_stage_model.decoder.up.3.upsample.conv.weight",
        "first_stage_model.decoder.up.0.block.2.conv2.weight",
        "first_stage_model.decoder.norm_out.weight",
    ):
        assert name in checkpoint, name
    for absent in ("first_stage_model.decoder.up.0.upsample.conv.weight",
                   "first_stage_model.encoder.down.3.downsample.conv.weight"):
        assert absent not in checkpoint
    # Linear in diffusers, 1x1 conv in the original: the converter reshapes; here only names.
    assert set(convert_ldm_unet_checkpoint(checkpoint, dict(unet.config))) == set(unet.state_dict())
    assert set(convert_ldm_vae_checkpoint(checkpoint, dict(vae.config))) == set(vae.state_dict())


def test_single_file_base_model_loads_and_generates_like_its_folder(tiny_model, pipe, ldm_file):
    import torch

    path, _ = ldm_file
    from_file = load_models(
        str(path),
        str(tiny_model.openpose),
        str(tiny_model.depth),
        device="cpu",
        local_files_only=True,
        model_config=str(tiny_model.base),
    )
    assert from_file.has_depth and from_file.models["model"] == str(path)
    for name in ("unet", "vae", "text_encoder"):
        a = getattr(from_file.pose_pipe, name).state_dict()
        b = getattr(pipe.pose_pipe, name).state_dict()
        assert set(a) == set(b), name
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert from_file.pose_pipe.scheduler.config == pipe.pose_pipe.scheduler.config

    poses = [_stick_figure(s) for s in (0, 10, 20)]
    depths = [_depth_ramp()] * len(poses)
    params = GenerateParams(prompt="a dancer", negative="blurry", seed=5, steps=2, guidance=5.0, batch=2)
    for depth in (None, depths):
        a = np.stack(frames_of(generate(from_file, poses, depth, params)))
        b = np.stack(frames_of(generate(pipe, poses, depth, params)))
        assert a.shape == (3, SIZE, SIZE, 3)
        assert np.abs(a.astype(np.int16) - b.astype(np.int16)).max() <= 1
        assert len({f.tobytes() for f in a}) == len(a)  # the poses matter: not one frame thrice


def test_cli_serves_a_single_file_base_model(tiny_model, ldm_file, tmp_path):
    import json
    import urllib.request

    import backend_process

    if backend_process.backend_python() is None:
        pytest.skip("no backend Python")
    path, _ = ldm_file
    extra = (
        "--model-config", tiny_model.base,
        "--pose-controlnet", tiny_model.openpose,
        "--depth-controlnet", tiny_model.depth,
        # The tiny adapters fit the single-file base model's architecture.
        "--motion-adapter", tiny_model.motion_adapter,
        "--ip-adapter", tiny_model.ip_adapter,
    )
    with backend_process.start_backend(tmp_path, model_dir=path, extra_args=extra) as server:
        with urllib.request.urlopen(server.url + "/health", timeout=10) as response:
            health = json.loads(response.read())
    assert health["status"] == "ready" and health["has_depth"] is True
    assert health["models"] == {
        "model": str(path),
        "pose_controlnet": str(tiny_model.openpose),
        "depth_controlnet": str(tiny_model.depth),
        "motion_adapter": str(tiny_model.motion_adapter),
        "ip_adapter": str(tiny_model.ip_adapter),
        # Wan VACE's default hub id, offline and not cached: named, left out, and why.
        "wan_model": "Wan-AI/Wan2.1-VACE-1.3B-diffusers",
        "wan_unavailable": "Wan-AI/Wan2.1-VACE-1.3B-diffusers is not in the Hugging Face cache and the backend"
        " is offline (`hf download Wan-AI/Wan2.1-VACE-1.3B-diffusers` once)",
    }
    assert "wan-vace" not in health["pipelines"]
