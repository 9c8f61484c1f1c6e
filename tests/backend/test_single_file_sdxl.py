"""Single-file SDXL checkpoints (issue 14): the tiny SDXL set written as one file in the original
key layout (sgm_checkpoint.py), its family read from the tensor names, loaded with its
configuration from a named folder, from the user's Hugging Face cache, or PoseBridge's bundled
published configuration, never from the network."""
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from posebridge.backend import single_file_config  # noqa: E402
from posebridge.backend.families import checkpoint_family  # noqa: E402
from posebridge.backend.models import ModelNotAvailableError, load_models  # noqa: E402
from posebridge.backend.pipelines import GenerateParams, generate  # noqa: E402
from frames_of import frames_of  # noqa: E402
from sgm_checkpoint import save_as_sgm_checkpoint  # noqa: E402
from test_pipeline import POSES, depth_ramp  # noqa: E402

SDXL_REPO = "stabilityai/stable-diffusion-xl-base-1.0"
PARAMS = GenerateParams(prompt="a knight", negative="blurry", seed=2, steps=2, guidance=5.0)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from posebridge.backend.tiny_sdxl import make_tiny_sdxl

    return make_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl"))


@pytest.fixture(scope="module")
def sgm_file(tiny_set, tmp_path_factory):
    path = tmp_path_factory.mktemp("sgm") / "tiny-sdxl.safetensors"
    save_as_sgm_checkpoint(tiny_set.base, path)
    return path


@pytest.fixture(scope="module")
def folder_models(tiny_set):
    return load_models(str(tiny_set.base), str(tiny_set.openpose), str(tiny_set.depth), device="cpu",
                       local_files_only=True)


@pytest.fixture(autouse=True)
def own_posebridge_cache(tmp_path, monkeypatch):
    """Bundled configurations are written into a cache of the test's own."""
    monkeypatch.setenv("POSEBRIDGE_CACHE", str(tmp_path / "posebridge-cache"))


def _load(path, tiny_set, **options):
    return load_models(str(path), str(tiny_set.openpose), str(tiny_set.depth), device="cpu", local_files_only=True,
                       **options)


def _same_weights_and_frames(a, b):
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        left, right = getattr(a.pose_pipe, name).state_dict(), getattr(b.pose_pipe, name).state_dict()
        assert set(left) == set(right), name
        assert all(torch.equal(left[k], right[k]) for k in left), name
    depths = [depth_ramp("x")] * 2
    one = np.stack(frames_of(generate(a, POSES[:2], depths, PARAMS)))
    two = np.stack(frames_of(generate(b, POSES[:2], depths, PARAMS)))
    assert np.abs(one.astype(np.int16) - two).max() <= 1


def test_the_file_reads_as_sdxl_and_loads_like_its_folder(tiny_set, sgm_file, folder_models):
    assert checkpoint_family(sgm_file) == "sdxl"
    from_file = _load(sgm_file, tiny_set, model_config=str(tiny_set.base))
    assert from_file.family == "sdxl" and type(from_file.pose_pipe).__name__ == "StableDiffusionXLControlNetPipeline"
    _same_weights_and_frames(from_file, folder_models)


def _fake_hub_cache(root: Path, repo: str, files_from: Path) -> Path:
    """A Hugging Face cache holding ``repo``'s configuration files (as `hf download` leaves them)."""
    commit = "0" * 40
    entry = root / f"models--{repo.replace('/', '--')}"
    snapshot = entry / "snapshots" / commit
    for source in files_from.rglob("*"):
        if source.is_file() and source.suffix in (".json", ".txt"):
            target = snapshot / source.relative_to(files_from)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(commit)
    return root


def test_without_a_config_it_comes_from_the_hugging_face_cache(tiny_set, sgm_file, folder_models, tmp_path):
    cache = _fake_hub_cache(tmp_path / "hf-cache", SDXL_REPO, tiny_set.base)
    from_file = _load(sgm_file, tiny_set, cache_dir=cache)
    assert from_file.family == "sdxl"
    _same_weights_and_frames(from_file, folder_models)


def test_offline_with_nothing_cached_the_bundled_config_is_used_and_a_misfit_is_named(tiny_set, sgm_file, tmp_path):
    with pytest.raises(ModelNotAvailableError, match="do not fit sdxl's published configuration") as info:
        _load(sgm_file, tiny_set, cache_dir=tmp_path / "empty-hf-cache")
    assert "--model-config" in str(info.value) and str(sgm_file) in str(info.value)
    bundled = tmp_path / "posebridge-cache" / "single-file-configs" / "sdxl-pipeline"
    assert (bundled / "model_index.json").is_file(), "the published configuration was written, not fetched"


@pytest.mark.parametrize("family, parts", [
    ("sd15", {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}),
    ("sdxl", {"unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480, "text_encoder_2": 694_659_840}),
])
def test_the_bundled_configs_are_the_published_architectures(family, parts):
    """Built on the meta device: the parameter counts of the published models (SD1.5's UNet
    859.52M, SDXL's 2.567B, OpenCLIP bigG's text tower 694.66M), and CLIP's own token ids."""
    import diffusers
    import transformers

    folder, where = single_file_config.pipeline_config(family, cache_dir="/nonexistent-hf-cache")
    assert where == "bundled"
    index = diffusers.DiffusionPipeline.load_config(str(folder))
    for name, count in parts.items():
        library, class_name = index[name]
        cls = getattr(diffusers if library == "diffusers" else transformers, class_name)
        with torch.device("meta"):
            if library == "diffusers":
                model = cls.from_config(cls.load_config(str(folder / name)))
            else:
                model = cls(transformers.AutoConfig.from_pretrained(str(folder / name)))
        assert sum(p.numel() for p in model.parameters()) == count, name
    tokenizer = transformers.CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    controlnet, _ = single_file_config.controlnet_config(family, cache_dir="/nonexistent-hf-cache")
    assert diffusers.ControlNetModel.load_config(str(controlnet))["cross_attention_dim"] == (
        2048 if family == "sdxl" else 768)


def test_serve_reads_the_family_of_a_single_file(sgm_file):
    from posebridge.backend.cli import build_parser
    from posebridge.backend.model_choice import resolve_models

    parser = build_parser()
    chosen = resolve_models(parser.parse_args(["serve", "--model", str(sgm_file)]), parser)
    assert chosen["family"] == "sdxl" and chosen["pose_controlnet"] == "xinsir/controlnet-openpose-sdxl-1.0"
    broken = sgm_file.with_name("broken.safetensors")
    broken.write_bytes(b"{}")
    with pytest.raises(SystemExit):
        resolve_models(parser.parse_args(["serve", "--model", str(broken)]), parser)


def test_an_sdxl_controlnet_as_one_file(tiny_set, folder_models, tmp_path):
    """A single-file SDXL ControlNet (diffusers' key layout, as xinsir ships them): with its
    configuration named it loads like its folder; offline with nothing cached, the bundled SDXL
    ControlNet configuration is tried and the misfit (a tiny file) says which flag to pass."""
    single = tmp_path / "openpose-sdxl.safetensors"
    shutil.copy(tiny_set.openpose / "diffusion_pytorch_model.safetensors", single)
    models = load_models(str(tiny_set.base), str(single), str(tiny_set.depth), device="cpu", local_files_only=True,
                         controlnet_config=str(tiny_set.openpose))
    _same_weights_and_frames(models, folder_models)
    with pytest.raises(ModelNotAvailableError, match="sdxl's published configuration.*--controlnet-config"):
        load_models(str(tiny_set.base), str(single), None, device="cpu", local_files_only=True,
                    cache_dir=tmp_path / "empty-hf-cache")


def test_processes_writing_the_bundle_at_once_share_the_first(tmp_path, monkeypatch):
    """Replicas of a scaled-out backend may all find no bundle and write one: the first rename
    wins, the others use its folder."""
    import os

    real_replace = os.replace

    def lose_the_race(source, target):
        shutil.copytree(source, target)  # another process renamed its copy in just before
        raise OSError(39, "Directory not empty")

    monkeypatch.setattr(single_file_config.os, "replace", lose_the_race)
    folder, where = single_file_config.controlnet_config("sdxl", cache_dir="/nonexistent-hf-cache")
    assert where == "bundled" and (folder / "config.json").is_file()
    assert not list(folder.parent.glob("*.partial-*")), "this process's copy is removed"
    monkeypatch.setattr(single_file_config.os, "replace", real_replace)
    assert single_file_config.controlnet_config("sdxl", cache_dir="/nonexistent-hf-cache")[0] == folder
