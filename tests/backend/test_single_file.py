"""Single-file checkpoints (.safetensors/.ckpt) through diffusers' from_single_file.

A ControlNet saved as one file in diffusers' key layout loads that way (diffusers takes such a
file as already converted), so that path is tested for real on the tiny model. A base model as
one file needs the original Stable Diffusion key layout, which diffusers can read but not write,
so for it only the errors are tested.
"""
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from backend.pipeline import (  # noqa: E402
    GenerateParams,
    ModelNotAvailableError,
    generate,
    is_single_file,
    load_pipeline,
)

WEIGHTS = "diffusion_pytorch_model.safetensors"


def test_is_single_file():
    assert is_single_file("/m/model.safetensors") and is_single_file("x.CKPT")
    assert not is_single_file("stable-diffusion-v1-5/stable-diffusion-v1-5")
    assert not is_single_file("/m/folder") and not is_single_file(None)


def test_single_file_controlnet_loads_and_generates_like_its_folder(tiny_model, pipe, tmp_path):
    single = tmp_path / "pose.safetensors"
    shutil.copy(tiny_model.openpose / WEIGHTS, single)
    from_file = load_pipeline(
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
    a = list(generate(from_file, [image], None, params))[0]
    b = list(generate(pipe, [image], None, params))[0]
    np.testing.assert_array_equal(a, b)


def test_missing_single_file_is_named(tiny_model, tmp_path):
    missing = tmp_path / "model.safetensors"
    with pytest.raises(ModelNotAvailableError, match="no such checkpoint file") as info:
        load_pipeline(str(missing), str(tiny_model.openpose), None, device="cpu", local_files_only=True)
    assert str(missing) in str(info.value)


def test_missing_config_folder_is_named(tiny_model, tmp_path):
    single = tmp_path / "model.safetensors"
    single.write_bytes(b"")
    with pytest.raises(ModelNotAvailableError, match="configuration folder does not exist"):
        load_pipeline(
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
        load_pipeline(
            str(tiny_model.base),
            str(single),
            None,
            device="cpu",
            local_files_only=True,
            cache_dir=tmp_path / "empty-hf-cache",  # not the user's cache, which may hold the config
        )
