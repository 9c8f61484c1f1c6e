"""The animatediff pipeline on real (tiny, random) weights: one window equals diffusers' own
AnimateDiffControlNetPipeline, long shots run in context windows with ControlNets per window,
determinism, identity reference, prompt travel, lead frames, progress and cancel."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from posebridge.backend.pipelines import GenerateParams, GenerationCancelled, Hooks, generate  # noqa: E402
from posebridge.backend.pipelines.animatediff import initial_latents  # noqa: E402
from posebridge.backend.pipelines.windows import context_windows  # noqa: E402
from frames_of import frames_of  # noqa: E402
from test_pipeline import depth_ramp, mean_diff, stick_figure  # noqa: E402

SIZE = 64
VIDEO = dict(prompt="a dancer on a stage", negative="blurry", seed=7, steps=3, guidance=5.0, pipeline="animatediff")


def poses(count: int, start: int = 0) -> list[np.ndarray]:
    return [stick_figure((start + i) % 24) for i in range(count)]


def depths(count: int) -> list[np.ndarray]:
    return [np.roll(depth_ramp("x"), 2 * i, axis=1) for i in range(count)]


def video(models, count=8, depth=False, hooks=None, **changes):
    params = GenerateParams(**{**VIDEO, **changes})
    return np.stack(frames_of(generate(models, poses(count), depths(count) if depth else None, params, hooks=hooks)))


def test_one_window_equals_diffusers_animatediff_controlnet_pipeline(video_models):
    """Same latents, prompts, controls and schedule: our loop gives diffusers' own frames."""
    from diffusers import AnimateDiffControlNetPipeline
    from PIL import Image

    count = 12
    ours = video(video_models, count, depth=True, steps=4, context_length=16, depth_scale=0.7, depth_end=0.6)
    reference_pipe = AnimateDiffControlNetPipeline.from_pipe(video_models.motion_pipe, controlnet=video_models.controlnets)
    reference_pipe.set_ip_adapter_scale(0.0)
    zeros = torch.zeros((2, 1, video_models.motion_pipe.image_encoder.config.projection_dim))
    out = reference_pipe(
        prompt=VIDEO["prompt"], negative_prompt=VIDEO["negative"], num_frames=count, height=SIZE, width=SIZE,
        conditioning_frames=[[Image.fromarray(p) for p in poses(count)], [Image.fromarray(d) for d in depths(count)]],
        num_inference_steps=4, guidance_scale=VIDEO["guidance"], ip_adapter_image_embeds=[zeros],
        latents=initial_latents(VIDEO["seed"], count, 16, 4, (4, SIZE // 8, SIZE // 8)), output_type="np",
        controlnet_conditioning_scale=[1.0, 0.7], control_guidance_start=[0.0, 0.0], control_guidance_end=[1.0, 0.6],
    ).frames[0]
    theirs = (np.clip(out, 0, 1) * 255).round().astype(np.uint8)
    assert ours.shape == theirs.shape == (count, SIZE, SIZE, 3)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


def test_a_long_shot_runs_in_windows_with_controlnets_per_window(video_models):
    hooks = Hooks()
    frames = video(video_models, 40, depth=True, hooks=hooks, context_length=16, context_stride=4)
    assert frames.shape == (40, SIZE, SIZE, 3)
    windows = context_windows(40, 16, 4)
    assert len(windows) == 7
    steps = VIDEO["steps"]
    assert hooks.counters["unet_calls"] == len(windows) * steps
    # Each ControlNet sees every frame once a step, never more than one window's frames at once
    # (diffusers' pipeline would give it all 40 in one call).
    assert hooks.counters["controlnet_frames"] == 2 * 40 * steps
    assert hooks.counters["controlnet_most_frames"] == 16
    assert hooks.counters["controlnet_calls"] == 2 * len(windows) * steps


def test_same_inputs_same_frames_other_seed_other_frames(video_models):
    a, b = video(video_models, 10, context_length=8, context_stride=2), video(video_models, 10, context_length=8, context_stride=2)
    assert np.array_equal(a, b)
    assert mean_diff(a, video(video_models, 10, context_length=8, context_stride=2, seed=8)) > 2.0


def test_frames_and_animatediff_pipelines_give_different_frames(video_models):
    assert mean_diff(video(video_models, 6), video(video_models, 6, pipeline="frames")) > 2.0


def test_windowed_and_one_window_agree_when_the_shot_fits_one_window(video_models):
    assert np.array_equal(video(video_models, 12, context_length=12, context_stride=4),
                          video(video_models, 12, context_length=32, context_stride=8))


def test_windows_blend_without_a_seam(video_models):
    """Frames where two windows meet change from their neighbours no more than frames inside a
    window do (a hard cut between windows would show as a jump there)."""
    frames = video(video_models, 24, context_length=8, context_stride=4).astype(np.int16)
    steps = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    joins = [w.start - 1 for w in context_windows(24, 8, 4)[1:]]  # change from frame start-1 to start
    assert steps[joins].max() <= 1.5 * np.median(steps)


def test_memory_light_state_latents_follow_freenoise(video_models):
    latents = initial_latents(3, 20, 8, 4, (4, 8, 8))
    first = latents[0, :, :8]
    # Every window's noise is a reordering of the first window's: the same make-up everywhere.
    for window in context_windows(20, 8, 4):
        frames = latents[0, :, window.start : window.stop]
        assert sorted(float(f.sum()) for f in frames.unbind(1)) == sorted(float(f.sum()) for f in first.unbind(1))


@pytest.mark.parametrize("pipeline", ["frames", "animatediff"])
def test_reference_changes_frames_and_identity_scale_zero_is_no_reference(video_models, pipeline):
    reference = np.random.default_rng(5).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    params = GenerateParams(**{**VIDEO, "pipeline": pipeline})
    plain = np.stack(frames_of(generate(video_models, poses(4), None, params)))
    with_ref = np.stack(frames_of(generate(video_models, poses(4), None, params, reference=reference)))
    assert mean_diff(plain, with_ref) > 1.0
    off = GenerateParams(**{**VIDEO, "pipeline": pipeline, "identity_scale": 0.0})
    assert np.array_equal(plain, np.stack(frames_of(generate(video_models, poses(4), None, off, reference=reference))))


def test_reference_embedding_is_computed_once_per_job(video_models, monkeypatch):
    encoder = video_models.motion_pipe.image_encoder
    calls = []
    original = encoder.forward
    monkeypatch.setattr(encoder, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    reference = np.full((32, 32, 3), 90, np.uint8)
    frames_of(generate(video_models, poses(20), None, GenerateParams(**{**VIDEO, "context_length": 8}), reference=reference))
    assert len(calls) == 1  # 20 frames, 4 windows, 3 steps: one encoding


def test_prompt_travel_blends_between_keys(video_models):
    """Per-frame pipeline, so each frame depends on its own prompt alone: before the first key a
    frame is the first prompt's, from the last key on the last prompt's, between them neither."""
    numbers = list(range(10, 17))

    def run(prompt):
        params = GenerateParams(**{**VIDEO, "pipeline": "frames", "prompt": prompt})
        return frames_of(generate(video_models, poses(7), None, params, frame_numbers=numbers))

    travel = run("11: a knight | 15: a robot")
    knight, robot = run("a knight"), run("a robot")
    assert np.array_equal(travel[0], knight[0]) and np.array_equal(travel[1], knight[1])
    assert np.array_equal(travel[5], robot[5]) and np.array_equal(travel[6], robot[6])
    assert not np.array_equal(travel[3], knight[3]) and not np.array_equal(travel[3], robot[3])


def test_prompt_map_in_params_wins_over_prompt(video_models):
    params = GenerateParams(**{**VIDEO, "prompt": "ignored", "prompts": {"0": "a knight", 5: "a robot"}})
    schedule = GenerateParams(**{**VIDEO, "prompt": "0: a knight | 5: a robot"})
    a = frames_of(generate(video_models, poses(6), None, params))
    b = frames_of(generate(video_models, poses(6), None, schedule))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_lead_frames_condition_the_video_and_are_not_yielded(video_models):
    params = GenerateParams(**{**VIDEO, "context_length": 8, "context_stride": 4})
    shot = poses(10)
    grey = np.full((SIZE, SIZE, 3), 128, np.uint8)
    noise = np.random.default_rng(1).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    a = list(generate(video_models, shot, None, params, known={0: grey, 1: grey}))
    b = list(generate(video_models, shot, None, params, known={0: noise, 1: noise}))
    assert [i for i, _ in a] == list(range(2, 10))
    # Everything else is equal and the run is deterministic: any change comes from the lead
    # images, through the motion module (weak in the tiny random model, strong in a trained one).
    assert mean_diff(np.stack([f for _, f in a]), np.stack([f for _, f in b])) > 0.02


def test_progress_counts_window_steps_and_cancel_stops_within_one(video_models):
    seen = []
    frames_of(generate(video_models, poses(12), None, GenerateParams(**{**VIDEO, "context_length": 8}),
                       on_progress=lambda done, total: seen.append((done, total))))
    windows = len(context_windows(12, 8, 4))
    assert seen == [(i, windows * VIDEO["steps"]) for i in range(1, windows * VIDEO["steps"] + 1)]

    hooks = Hooks(should_stop=lambda: True)
    with pytest.raises(GenerationCancelled):
        frames_of(generate(video_models, poses(12), None, GenerateParams(**{**VIDEO, "context_length": 8}), hooks=hooks))
    assert hooks.counters["unet_calls"] == 1


def test_bad_requests_are_refused_before_anything_runs(video_models, pipe):
    with pytest.raises(ValueError, match="context_stride"):
        generate(video_models, poses(4), None, GenerateParams(**{**VIDEO, "context_length": 4, "context_stride": 6}))
    with pytest.raises(ValueError, match="longer than the motion module sees"):
        generate(video_models, poses(4), None, GenerateParams(**{**VIDEO, "context_length": 48}))
    with pytest.raises(ValueError, match="motion adapter"):
        generate(pipe, poses(4), None, GenerateParams(**VIDEO))  # loaded without one
    with pytest.raises(ValueError, match="IP-Adapter"):
        generate(pipe, poses(1), None, GenerateParams(), reference=poses(1)[0])
    with pytest.raises(ValueError, match="temporal pipeline"):
        generate(video_models, poses(3), None, GenerateParams(), known={0: poses(1)[0]})
    with pytest.raises(ValueError, match="FRAME:"):
        generate(video_models, poses(2), None, GenerateParams(prompt="0: a | b"))


def test_models_share_weights_and_take_the_motion_schedule(video_models):
    motion_unet, unet = video_models.motion_pipe.unet, video_models.pose_pipe.unet
    spatial = dict(unet.named_parameters())
    shared = [n for n, p in motion_unet.named_parameters() if spatial.get(n) is p]
    assert len(shared) == len(spatial) - sum(1 for n in spatial if "to_k_ip" in n or "to_v_ip" in n or "encoder_hid_proj" in n)
    assert all("motion_modules" in n or "to_k_ip" in n or "to_v_ip" in n or "encoder_hid_proj" in n
               for n, p in motion_unet.named_parameters() if spatial.get(n) is not p)
    config = video_models.motion_pipe.scheduler.config
    base = video_models.pose_pipe.scheduler.config
    assert config.beta_schedule == "linear" and config.clip_sample is False
    assert config.num_train_timesteps == base.num_train_timesteps and config.beta_start == base.beta_start
    assert video_models.pipelines == ["animatediff", "frames"] and video_models.max_context_length == 32


def test_a_ten_second_shot_works(video_models):
    """240 frames (10 s at 24 fps), the default 16/4 windows: every frame, ControlNets never on
    more than one window's frames."""
    hooks = Hooks()
    params = GenerateParams(**{**VIDEO, "steps": 1, "guidance": 1.0})
    frames = frames_of(generate(video_models, poses(240), None, params, hooks=hooks))
    assert len(frames) == 240 and frames[-1].shape == (SIZE, SIZE, 3)
    assert hooks.counters["controlnet_most_frames"] == 16 and hooks.counters["controlnet_frames"] == 240
    assert hooks.counters["unet_calls"] == len(context_windows(240, 16, 4)) == 57


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_half_precision_loads_every_shared_module_in_that_precision(tiny_model, dtype):
    """from_pipe would cast the shared VAE and text encoder (and the motion modules) to float32."""
    from posebridge.backend.models import load_models

    models = load_models(
        str(tiny_model.base), str(tiny_model.openpose), str(tiny_model.depth), device="cpu", dtype=dtype,
        local_files_only=True, motion_adapter=str(tiny_model.motion_adapter), ip_adapter=str(tiny_model.ip_adapter),
    )
    expected = models.dtype
    for pipe in models.diffusers_pipes():
        for name in ("unet", "vae", "text_encoder", "controlnet", "image_encoder"):
            module = getattr(pipe, name, None)
            if module is not None:
                assert {p.dtype for p in module.parameters()} == {expected}, (type(pipe).__name__, name)
    for pipeline in ("frames", "animatediff"):
        params = GenerateParams(**{**VIDEO, "pipeline": pipeline, "steps": 1})
        assert len(frames_of(generate(models, poses(2), depths(2), params))) == 2


def test_frames_held_as_pngs_give_the_same_video(video_models):
    """A temporal job keeps its controls as the PNGs it received and decodes them as they are read."""
    import io

    from PIL import Image

    from posebridge.backend.pipelines import EncodedFrames

    def png(array):
        out = io.BytesIO()
        Image.fromarray(array).save(out, format="PNG")
        return out.getvalue()

    decoded = []

    def decode(data):
        decoded.append(1)
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")

    shot = poses(12)
    encoded = EncodedFrames([png(p) for p in shot], decode, (SIZE, SIZE))
    params = GenerateParams(**{**VIDEO, "context_length": 8, "context_stride": 4})
    assert np.array_equal(np.stack(frames_of(generate(video_models, encoded, None, params))),
                          np.stack(frames_of(generate(video_models, shot, None, params))))
    assert len(decoded) == 12 * VIDEO["steps"]  # each frame once a step, when its first window needs it
