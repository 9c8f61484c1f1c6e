"""The generation pipeline on real (tiny, random) weights: determinism, control, batching, errors."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from posebridge.backend.models import ModelNotAvailableError, load_models  # noqa: E402
from posebridge.backend.pipelines import GenerateParams, generate  # noqa: E402
from frames_of import frames_of  # noqa: E402

SIZE = 64  # the tiny model's native size (latents 8x8)


def stick_figure(shift: int, size: int = SIZE) -> np.ndarray:
    """A pose-map-like control image: coloured sticks on black, moved right by ``shift`` px."""
    img = np.zeros((size, size, 3), np.uint8)
    x = 16 + shift
    img[8:14, x : x + 6] = (255, 0, 0)  # head
    img[14:40, x + 2 : x + 4] = (0, 255, 0)  # body
    img[20:22, x - 10 : x + 16] = (0, 0, 255)  # arms
    img[40:60, x - 4 : x - 2] = (255, 255, 0)  # left leg
    img[40:60, x + 8 : x + 10] = (0, 255, 255)  # right leg
    return img


def depth_ramp(direction: str, size: int = SIZE) -> np.ndarray:
    """A depth-map-like control image: a grey ramp, left-to-right or top-to-bottom."""
    ramp = np.linspace(0, 255, size).round().astype(np.uint8)
    grey = np.tile(ramp, (size, 1)) if direction == "x" else np.tile(ramp[:, None], (1, size))
    return np.repeat(grey[:, :, None], 3, axis=2)


POSES = [stick_figure(s) for s in (0, 6, 12, 18, 24)]
PARAMS = GenerateParams(prompt="a dancer on a stage", negative="blurry", seed=7, steps=4, guidance=5.0)


def run(pipe, poses, depths=None, **changes):
    params = GenerateParams(**{**PARAMS.__dict__, **changes})
    return frames_of(generate(pipe, poses, depths, params))


def mean_diff(a, b) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_tiny_model_is_a_diffusers_model_set(tiny_model):
    index = json.loads((tiny_model.base / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert index["vae"] == ["diffusers", "AutoencoderKL"]
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    assert index["safety_checker"] == [None, None]
    for name in ("vocab.json", "merges.txt"):
        assert (tiny_model.base / "tokenizer" / name).is_file()
    for folder in (tiny_model.openpose, tiny_model.depth):
        assert json.loads((folder / "config.json").read_text())["_class_name"] == "ControlNetModel"
    size = sum(f.stat().st_size for f in tiny_model.root.rglob("*") if f.is_file())
    assert size < 5 * 2**20, f"the tiny model set takes {size} bytes"


def test_tiny_model_is_reproducible(tiny_model, tmp_path):
    from posebridge.backend.tiny_model import make_tiny_model

    again = make_tiny_model(tmp_path / "again")
    weights = "diffusion_pytorch_model.safetensors"
    for rel in (f"controlnet-openpose/{weights}", f"base/unet/{weights}"):
        assert (tiny_model.root / rel).read_bytes() == (again.root / rel).read_bytes()


def test_loads_from_local_folders(pipe):
    from diffusers import ControlNetModel, MultiControlNetModel
    from diffusers.models.attention_processor import AttnProcessor2_0

    assert pipe.device == "cpu" and pipe.dtype == torch.float32
    assert pipe.has_depth
    assert isinstance(pipe.pose_pipe.controlnet, ControlNetModel)
    assert isinstance(pipe.pose_depth_pipe.controlnet, MultiControlNetModel)
    assert pipe.pose_depth_pipe.unet is pipe.pose_pipe.unet  # weights in memory once
    assert pipe.vae_scale_factor == 8
    assert all(isinstance(p, AttnProcessor2_0) for p in pipe.pose_pipe.unet.attn_processors.values())


def test_same_seed_and_poses_give_identical_frames(pipe):
    first = run(pipe, POSES[:3])
    second = run(pipe, POSES[:3])
    assert len(first) == 3
    for a, b in zip(first, second):
        assert a.shape == (SIZE, SIZE, 3) and a.dtype == np.uint8
        assert np.array_equal(a, b)
    assert first[0].std() > 5, "the output is flat: the tiny model produces no image"


def test_other_poses_give_other_frames(pipe):
    a = run(pipe, [POSES[0], POSES[0], POSES[4]])
    assert np.array_equal(a[0], a[1])  # same pose in one run: same frame (same initial noise)
    assert mean_diff(a[0], a[2]) > 1.0, "the pose image does not change the output"
    # pose_scale 0 turns the control off: the pose no longer matters
    off = run(pipe, [POSES[0], POSES[4]], pose_scale=0.0)
    assert mean_diff(off[0], off[1]) < 0.05


def test_seed_changes_frames(pipe):
    assert mean_diff(run(pipe, POSES[:1])[0], run(pipe, POSES[:1], seed=8)[0]) > 1.0


def test_depth_changes_frames(pipe):
    pose_only = run(pipe, POSES[:2])
    with_x = run(pipe, POSES[:2], [depth_ramp("x")] * 2)
    with_y = run(pipe, POSES[:2], [depth_ramp("y")] * 2)
    assert mean_diff(pose_only[0], with_x[0]) > 1.0
    assert mean_diff(with_x[0], with_y[0]) > 1.0, "the depth image does not change the output"
    assert mean_diff(with_x[0], with_x[1]) > 1.0, "with depth, the pose no longer changes the output"
    assert np.array_equal(with_x[0], run(pipe, POSES[:1], [depth_ramp("x")])[0])


@pytest.mark.parametrize("depth", [False, True], ids=["pose", "pose+depth"])
def test_batch_of_4_equals_batch_of_1(pipe, depth):
    depths = [depth_ramp("x" if i % 2 else "y") for i in range(len(POSES))] if depth else None
    single = run(pipe, POSES, depths, batch=1)
    batched = run(pipe, POSES, depths, batch=4)  # 5 frames: a batch of 4 and a batch of 1
    assert len(batched) == len(single) == 5
    for i, (a, b) in enumerate(zip(single, batched)):
        assert np.abs(a.astype(np.int16) - b.astype(np.int16)).max() <= 2, f"frame {i}"


def test_indices_and_pil_input(pipe):
    from PIL import Image

    params = GenerateParams(**{**PARAMS.__dict__, "batch": 2})
    pil_poses = [Image.fromarray(p) for p in POSES[:3]]
    seen = list(generate(pipe, pil_poses, None, params))
    assert [i for i, _ in seen] == [0, 1, 2]
    for (_, g), h in zip(seen, run(pipe, POSES[:3], batch=2)):
        assert np.array_equal(g, h)


def test_width_and_height_resize_the_controls(pipe):
    (frame,) = run(pipe, POSES[:1], width=96, height=64)
    assert frame.shape == (64, 96, 3)


@pytest.mark.parametrize(
    "poses, depths, changes, message",
    [
        (POSES[:1], None, {"steps": 0}, "steps"),
        (POSES[:1], None, {"batch": 0}, "batch"),
        (POSES[:1], None, {"control_start": 0.8, "control_end": 0.2}, "control_start"),
        (POSES[:1], None, {"width": 100}, "width"),
        ([], None, {}, "no pose frames"),
        (POSES[:1], [], {}, "no depth frames"),
        (POSES[:2], [depth_ramp("x", 32)] * 2, {}, "pose/depth size mismatch"),
        (POSES[:2], [depth_ramp("x")], {}, "pose/depth frame count mismatch"),
        ([POSES[0], stick_figure(0, 32)], None, {}, "pose frames differ in size"),
        (["not an image"], None, {}, "pose frame 0 is not an image"),
        ([POSES[0].astype(np.float32)], None, {}, "pose frame 0 must be uint8"),
        ([np.zeros((64, 64, 2), np.uint8)], None, {}, r"pose frame 0 must have shape \(H, W, 3\)"),
        ([stick_figure(0)[:60]], None, {}, "multiple of 8"),
    ],
)
def test_bad_input_raises_value_error_naming_the_problem(pipe, poses, depths, changes, message):
    params = GenerateParams(**{**PARAMS.__dict__, **changes})
    with pytest.raises(ValueError, match=message):
        generate(pipe, poses, depths, params)  # raised by the call, before any frame is made


def test_depth_frames_need_a_depth_controlnet(tiny_model):
    pose_only = load_models(str(tiny_model.base), str(tiny_model.openpose), None, device="cpu")
    assert not pose_only.has_depth
    assert len(frames_of(generate(pose_only, POSES[:1], None, PARAMS))) == 1
    with pytest.raises(ValueError, match="without a depth ControlNet"):
        generate(pose_only, POSES[:1], [depth_ramp("x")], PARAMS)


def test_unavailable_hub_model_offline_is_a_clear_error(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = "posebridge-tests/no-such-model"
    with pytest.raises(ModelNotAvailableError, match="no-such-model") as info:
        load_models(missing, str(tiny_model.openpose), str(tiny_model.depth), device="cpu",
                      cache_dir=tmp_path / "empty-cache")
    assert isinstance(info.value, ValueError)
    assert info.value.model == missing
    assert "offline" in str(info.value)
    with pytest.raises(ModelNotAvailableError, match="no-such-controlnet"):
        load_models(str(tiny_model.base), "posebridge-tests/no-such-controlnet", None, device="cpu",
                      cache_dir=tmp_path / "empty-cache")


def test_missing_local_folder_is_a_clear_error(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(ModelNotAvailableError, match="no such folder"):
        load_models(missing, missing, None, device="cpu", local_files_only=True)


@pytest.mark.parametrize("kwargs, message", [({"device": "tpu"}, "device"), ({"dtype": "fp8"}, "dtype")])
def test_bad_device_or_dtype(tiny_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_models(str(tiny_model.base), str(tiny_model.openpose), None, **kwargs)


def test_noise_adding_scheduler_stays_deterministic_and_batch_independent(tiny_model):
    from diffusers import EulerAncestralDiscreteScheduler

    own = load_models(str(tiny_model.base), str(tiny_model.openpose), None, device="cpu")
    own.pose_pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(own.pose_pipe.scheduler.config)
    single = run(own, POSES[:3], batch=1)
    batched = run(own, POSES[:3], batch=3)
    for a, b in zip(single, batched):
        assert np.abs(a.astype(np.int16) - b.astype(np.int16)).max() <= 2
    assert all(np.array_equal(a, b) for a, b in zip(batched, run(own, POSES[:3], batch=3)))


def test_depth_controlnet_has_a_window_of_its_own(pipe):
    """Per-control start/end: the depth ControlNet acting only in the second half of the steps
    changes the frames; the pose-only pipeline has no depth window to honour."""
    depths = [depth_ramp("x") for _ in POSES[:2]]
    shared = run(pipe, POSES[:2], depths)
    late_depth = run(pipe, POSES[:2], depths, depth_start=0.5)
    assert all(mean_diff(a, b) > 0.1 for a, b in zip(shared, late_depth))
    for a, b in zip(run(pipe, POSES[:2]), run(pipe, POSES[:2], depth_start=0.5)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="depth_start and depth_end"):
        run(pipe, POSES[:1], depths[:1], depth_start=0.6, depth_end=0.4)
