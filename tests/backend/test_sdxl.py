"""The SDXL family on tiny random-weight SDXL models (issue 14): two text encoders and the pooled
embedding, separate pose and depth ControlNets or one ControlNet-Union, the SDXL IP-Adapter,
LoRAs, the family read from the model's files, and `serve` telling clients the family and the
pose maps' line widths."""
import json
import urllib.request

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from posebridge.backend import families  # noqa: E402
from posebridge.backend.models import load_models  # noqa: E402
from posebridge.backend.pipelines import GenerateParams, generate  # noqa: E402
from frames_of import frames_of  # noqa: E402
from test_pipeline import POSES, depth_ramp, mean_diff  # noqa: E402

PARAMS = GenerateParams(prompt="a dancer on a stage", negative="blurry", seed=7, steps=3, guidance=5.0)
DEPTHS = [depth_ramp("x" if i % 2 else "y") for i in range(len(POSES))]


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory):
    from posebridge.backend.model_loading import write_tiny_sdxl_set
    from posebridge.backend.model_set import read_model_set

    folder = tmp_path_factory.mktemp("tiny-sdxl")
    write_tiny_sdxl_set(folder)
    return folder, read_model_set(folder)


def _load(paths, **options):
    return load_models(paths.base, paths.openpose, paths.depth, device="cpu", local_files_only=True, **options)


@pytest.fixture(scope="module")
def sdxl(tiny_sdxl):
    return _load(tiny_sdxl[1], ip_adapter=tiny_sdxl[1].ip_adapter)


@pytest.fixture(scope="module")
def union(tiny_sdxl):
    folder, _ = tiny_sdxl
    return load_models(str(folder / "base"), None, None, union_controlnet=str(folder / "controlnet-union"),
                       device="cpu", local_files_only=True)


def run(models, poses, depths=None, reference=None, **changes):
    params = GenerateParams(**{**PARAMS.__dict__, **changes})
    return frames_of(generate(models, poses, depths, params, reference=reference))


def test_the_family_is_read_from_the_files_and_sets_the_pose_style(sdxl, union, pipe):
    assert sdxl.family == "sdxl" and sdxl.pose_style == "xinsir" and not sdxl.union
    assert type(sdxl.pose_pipe).__name__ == "StableDiffusionXLControlNetPipeline"
    assert type(sdxl.pose_depth_pipe.controlnet).__name__ == "MultiControlNetModel"
    assert sdxl.pipelines == ["frames"], "loaded without a motion adapter: frames only"
    assert union.union and union.has_depth and union.pose_depth_pipe is union.pose_pipe
    assert type(union.pose_pipe).__name__ == "StableDiffusionXLControlNetUnionPipeline"
    assert pipe.family == "sd15" and pipe.pose_style == "controlnet"


@pytest.mark.parametrize("which", ["separate", "union"])
def test_pose_and_depth_each_change_the_frames(sdxl, union, which):
    models = sdxl if which == "separate" else union
    a, b = run(models, POSES[:2])
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert mean_diff(a, b) > 1.0, "another pose, another frame"
    with_depth = run(models, POSES[:1], DEPTHS[:1])[0]
    assert mean_diff(with_depth, a) > 1.0, "the depth map shows"
    other_depth = run(models, POSES[:1], DEPTHS[1:2])[0]
    assert mean_diff(with_depth, other_depth) > 1.0
    np.testing.assert_array_equal(run(models, POSES[:1])[0], a, "the same settings, the same frame")


@pytest.mark.parametrize("which", ["separate", "union"])
def test_a_batch_equals_frames_one_by_one(sdxl, union, which):
    models = sdxl if which == "separate" else union
    single = run(models, POSES[:3], DEPTHS[:3], batch=1)
    batched = run(models, POSES[:3], DEPTHS[:3], batch=2)
    for i, (a, b) in enumerate(zip(single, batched)):
        assert np.abs(a.astype(np.int16) - b.astype(np.int16)).max() <= 2, f"frame {i}"


def test_the_union_embeds_each_control_once_per_call(union):
    embedding = union.pose_pipe.controlnet.controlnet_cond_embedding.embedding
    batches = []
    handle = embedding.register_forward_hook(lambda _m, args, _out: batches.append(args[0].shape[0]))
    try:
        run(union, POSES[:2], DEPTHS[:2], batch=2)
    finally:
        handle.remove()
    assert batches == [2, 2], "pose once and depth once for the call, not at every step"


def test_a_prompt_schedule_and_an_empty_negative(sdxl):
    from posebridge.backend.pipelines import make_request
    from posebridge.backend.pipelines.conditioning import text_embeddings

    params = GenerateParams(**{**PARAMS.__dict__, "prompt": "", "prompts": {0: "a knight", 2: "a cat"},
                               "negative": ""})
    request = make_request(sdxl, POSES[:3], None, params)
    texts = text_embeddings(sdxl.pose_pipe, request, "cpu")
    assert texts.embeds.shape[0] == 3 and texts.pooled.shape == (3, 32)
    assert torch.allclose(texts.pooled[1], (texts.pooled[0] + texts.pooled[2]) / 2, atol=1e-5), "pooled blends too"
    assert not texts.negative.any() and not texts.negative_pooled.any(), "SDXL's empty negative is zeros"
    frames = run(sdxl, POSES[:3], prompt="", prompts={0: "a knight", 2: "a cat"})
    plain = run(sdxl, POSES[:3], prompt="a knight")
    assert np.abs(frames[0].astype(np.int16) - plain[0]).max() <= 2, "a key frame is its prompt"
    assert mean_diff(frames[2], plain[2]) > 1.0


@pytest.fixture(scope="module")
def sdxl_video(tiny_sdxl):
    return _load(tiny_sdxl[1], motion_adapter=tiny_sdxl[1].motion_adapter, ip_adapter=tiny_sdxl[1].ip_adapter)


def test_animatediff_sdxl_over_windows_with_controls_prompt_travel_and_a_reference(sdxl_video, tiny_sdxl):
    """Ten frames in windows of 8 every 4: the SDXL motion UNet gets the pooled text and size ids
    per window, each ControlNet its frames' own, once per frame and step."""
    from posebridge.backend.pipelines import Hooks

    assert sdxl_video.pipelines == ["animatediff", "frames"]
    assert type(sdxl_video.motion_pipe).__name__ == "AnimateDiffSDXLPipeline"
    poses = [POSES[i % len(POSES)] for i in range(10)]
    depths = [DEPTHS[i % len(DEPTHS)] for i in range(10)]
    video = dict(pipeline="animatediff", context_length=8, context_stride=4, steps=2)
    hooks = Hooks()
    frames = np.stack(frames_of(generate(sdxl_video, poses, depths, GenerateParams(**{**PARAMS.__dict__, **video}),
                                         hooks=hooks)))
    assert frames.shape == (10, 64, 64, 3)
    assert hooks.counters["controlnet_frames"] == 2 * 10 * 2, "two ControlNets, each frame once a step"
    np.testing.assert_array_equal(frames, np.stack(run(sdxl_video, poses, depths, **video)), "deterministic")
    assert mean_diff(frames[0], run(sdxl_video, poses, None, **video)[0]) > 1.0, "depth shows"
    travel = run(sdxl_video, poses, depths, **video, prompt="", prompts={0: "a dancer on a stage", 9: "a cat"})
    assert mean_diff(travel[9], frames[9]) > 1.0, "the last frame's prompt is another"
    lora = ((tiny_sdxl[1].preview_lora, 1.0),)  # any LoRA: it reaches the motion UNet too
    assert mean_diff(run(sdxl_video, poses, depths, loras=lora, **video)[0], frames[0]) > 1.0
    assert "unet" in sdxl_video.motion_pipe.get_list_adapters()
    reference = np.full((64, 64, 3), (200, 30, 30), np.uint8)
    assert mean_diff(run(sdxl_video, poses, depths, reference=reference, identity_scale=1.0, **video)[0],
                     frames[0]) > 1.0


def test_the_sdxl_ip_adapter_takes_a_reference(sdxl):
    reference = np.zeros((64, 64, 3), np.uint8)
    reference[:, :32] = (200, 30, 30)
    plain = run(sdxl, POSES[:1])[0]
    with_reference = run(sdxl, POSES[:1], reference=reference, identity_scale=1.0)[0]
    assert mean_diff(plain, with_reference) > 1.0


def test_a_kohya_lora_reaches_the_unet_and_both_text_encoders(tiny_sdxl, tmp_path):
    from safetensors.torch import save_file

    models = _load(tiny_sdxl[1])
    generator = torch.Generator().manual_seed(5)
    state = {}
    # Kohya trains every attention projection of the text encoders (diffusers cannot tell the
    # key format of a text-encoder LoRA without out_proj).
    attention = [f"encoder.layers.{n}.self_attn.{p}_proj" for n in (0, 1) for p in ("q", "k", "v", "out")]
    modules = [("lora_unet_", models.pose_pipe.unet, "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k")]
    modules += [("lora_te1_", models.pose_pipe.text_encoder, path) for path in attention]
    modules += [("lora_te2_", models.pose_pipe.text_encoder_2, path) for path in attention]
    for prefix, root, path in modules:
        # transformers 5's CLIPTextModel has no text_model level in its tree; ...WithProjection has
        layer = root.get_submodule(("text_model." if hasattr(root, "text_model") else "") + path)
        name = prefix + ("text_model." + path if prefix != "lora_unet_" else path).replace(".", "_")
        state[f"{name}.lora_down.weight"] = torch.randn(2, layer.in_features, generator=generator) * 0.8
        state[f"{name}.lora_up.weight"] = torch.randn(layer.out_features, 2, generator=generator) * 0.8
        state[f"{name}.alpha"] = torch.tensor(2.0)
    save_file(state, str(tmp_path / "character.safetensors"))
    lora = str(tmp_path / "character.safetensors")
    plain = run(models, POSES[:1])[0]
    assert mean_diff(run(models, POSES[:1], loras=((lora, 1.0),))[0], plain) > 1.0
    np.testing.assert_array_equal(run(models, POSES[:1], loras=((lora, 0.0),))[0], plain)
    adapters = models.pose_pipe.get_list_adapters()
    assert {"unet", "text_encoder", "text_encoder_2"} <= set(adapters)


def test_controlnets_of_another_family_are_refused_naming_both(tiny_sdxl, tiny_model):
    folder, paths = tiny_sdxl
    with pytest.raises(ValueError, match="sd15 ControlNet, but the base model is sdxl"):
        load_models(paths.base, str(tiny_model.openpose), None, device="cpu", local_files_only=True)
    with pytest.raises(ValueError, match="sdxl ControlNet, but the base model is sd15"):
        load_models(str(tiny_model.base), paths.openpose, None, device="cpu", local_files_only=True)
    with pytest.raises(ValueError, match="is a ControlNet-Union: give it as --union-controlnet"):
        load_models(paths.base, str(folder / "controlnet-union"), None, device="cpu", local_files_only=True)
    with pytest.raises(ValueError, match="is not a ControlNet-Union"):
        load_models(paths.base, None, None, union_controlnet=paths.openpose, device="cpu", local_files_only=True)
    with pytest.raises(ValueError, match="is an sdxl model, but it was loaded as sd15"):
        load_models(paths.base, str(tiny_model.openpose), None, family="sd15", device="cpu", local_files_only=True)


def test_family_of_folders_and_checkpoint_keys(tiny_sdxl, tiny_model, tmp_path):
    from safetensors.torch import save_file

    assert families.folder_family(tiny_sdxl[1].base) == "sdxl"
    assert families.folder_family(tiny_model.base) == "sd15"
    assert families.folder_family(tmp_path) is None
    assert families.controlnet_kind(tiny_sdxl[0] / "controlnet-union") == ("sdxl", True)
    assert families.controlnet_kind(tiny_model.openpose) == ("sd15", False)
    import json

    xinsir = json.loads((tiny_sdxl[0] / "controlnet-union" / "config.json").read_text())
    (tmp_path / "xinsir").mkdir()
    (tmp_path / "xinsir" / "config.json").write_text(json.dumps({**xinsir, "_class_name": "ControlNetModel"}))
    assert families.controlnet_kind(tmp_path / "xinsir") == ("sdxl", True), "told by its control types"
    layouts = {
        "sdxl": ["conditioner.embedders.0.transformer.text_model.embeddings.position_ids",
                 "conditioner.embedders.1.model.ln_final.weight", "model.diffusion_model.label_emb.0.0.weight"],
        "sd15": ["cond_stage_model.transformer.text_model.embeddings.position_ids",
                 "model.diffusion_model.input_blocks.0.0.weight"],
        None: ["something.else.weight"],
    }
    for family, keys in layouts.items():
        path = tmp_path / f"{family}.safetensors"
        save_file({k: torch.zeros(1) for k in keys}, str(path))
        assert families.checkpoint_family(path) == family
    (tmp_path / "broken.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(families.UnreadableCheckpointError, match="broken.safetensors is not a readable checkpoint"):
        families.checkpoint_family(tmp_path / "broken.safetensors")
    assert families.model_family("no-such-owner/no-such-model") is None, "not cached: unknown, never downloaded"


def test_the_tiny_fallback_follows_the_family_asked_for(tmp_path):
    from posebridge.backend.model_loading import load_tiny_fallback

    models = load_tiny_fallback(str(tmp_path / "tiny"), dict(device="cpu"), "sdxl")
    assert models.family == "sdxl" and models.models["fallback"] == "tiny"
    assert (tmp_path / "tiny" / "sdxl" / "posebridge-models.json").is_file()


def test_serve_resolves_the_family_and_refuses_what_does_not_fit(tiny_sdxl, tiny_model):
    from posebridge.backend.cli import build_parser
    from posebridge.backend.model_choice import resolve_models

    folder, paths = tiny_sdxl
    parser = build_parser()

    def resolve(*argv):
        return resolve_models(parser.parse_args(["serve", *argv]), parser)

    chosen = resolve("--model", str(folder))
    assert chosen["family"] == "sdxl" and chosen["motion_adapter"] == paths.motion_adapter
    assert chosen["pose_controlnet"] == paths.openpose and chosen["ip_adapter"] == paths.ip_adapter
    defaults = resolve("--family", "sdxl")
    assert defaults["model"] == "stabilityai/stable-diffusion-xl-base-1.0"
    assert defaults["pose_controlnet"] == "xinsir/controlnet-openpose-sdxl-1.0"
    assert defaults["depth_controlnet"] == "diffusers/controlnet-depth-sdxl-1.0"
    assert defaults["motion_adapter"] == "guoyww/animatediff-motion-adapter-sdxl-beta"
    union = resolve("--model", str(folder), "--union-controlnet", str(folder / "controlnet-union"))
    assert union["union_controlnet"] == str(folder / "controlnet-union") and union["pose_controlnet"] is None
    assert union["motion_adapter"] is None, "a union serves frames: the set's motion adapter is left out"
    assert resolve("--model", str(tiny_model.base))["family"] == "sd15"
    for argv, message in (
        (("--model", str(folder), "--family", "sd15"), "is an sdxl model"),
        (("--family", "sdxl", "--union-controlnet", "x/y", "--pose-controlnet", "a/b"), "leave out --pose-controlnet"),
        (("--model", str(tiny_model.base), "--union-controlnet", "x/y"), "base model is sd15"),
        (("--family", "sdxl", "--union-controlnet", "x/y", "--motion-adapter", "a/b"), "not a ControlNet-Union"),
    ):
        with pytest.raises(SystemExit):
            resolve(*argv)


def test_serve_tells_clients_the_family_and_makes_sdxl_frames_over_http(tiny_sdxl, tmp_path):
    import backend_process
    from test_server import job_body

    if backend_process.backend_python() is None:
        pytest.skip("no backend Python")
    folder, _ = tiny_sdxl
    with backend_process.start_backend(tmp_path, model_dir=folder) as server:
        with urllib.request.urlopen(server.url + "/health", timeout=10) as response:
            health = json.loads(response.read())
        from test_server import run_job

        status, frames = run_job(server, job_body([0, 1], with_depth=True, steps=2))
    assert health["family"] == "sdxl" and health["pose_style"] == "xinsir" and health["loras"] == []
    assert health["pipelines"] == ["animatediff", "frames"] and health["has_depth"] is True
    assert status["state"] == "done" and len(frames) == 2 and frames[0].shape == (64, 64, 3)


def test_a_kohya_sdxl_lora_in_the_original_unet_names_reaches_the_right_modules(tiny_sdxl, tmp_path):
    """Kohya's SDXL LoRAs name UNet modules as the original (SGM) UNet does: input_blocks.3.1 is
    the first attention of the second down block here (conv_in, resnet, downsample, resnet,
    attention), output_blocks.1.1 the second of the first up block."""
    from peft.tuners.lora import LoraLayer
    from safetensors.torch import save_file

    models = _load(tiny_sdxl[1])
    unet = models.pose_pipe.unet
    targets = {
        "input_blocks_3_1_transformer_blocks_0_attn2_to_k": "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k",
        "output_blocks_1_1_transformer_blocks_0_attn1_to_q": "up_blocks.0.attentions.1.transformer_blocks.0.attn1.to_q",
    }
    generator = torch.Generator().manual_seed(1)
    state = {}
    for original, module in targets.items():
        layer = unet.get_submodule(module)
        state[f"lora_unet_{original}.lora_down.weight"] = torch.randn(2, layer.in_features, generator=generator)
        state[f"lora_unet_{original}.lora_up.weight"] = torch.randn(layer.out_features, 2, generator=generator)
        state[f"lora_unet_{original}.alpha"] = torch.tensor(2.0)
    save_file(state, str(tmp_path / "sgm.safetensors"))
    plain = run(models, POSES[:1])[0]
    styled = run(models, POSES[:1], loras=((str(tmp_path / "sgm.safetensors"), 1.0),))[0]
    assert mean_diff(styled, plain) > 1.0
    assert {name for name, module in unet.named_modules() if isinstance(module, LoraLayer)} == set(targets.values())


def test_animatediff_sdxl_in_fp16_decodes_with_the_vae_in_fp32(tiny_sdxl):
    """SDXL's VAE overflows in fp16 (force_upcast): the windowed loop decodes, and encodes lead
    frames, in fp32 as diffusers' SDXL pipelines do, and leaves the shared VAE in fp16."""
    models = _load(tiny_sdxl[1], motion_adapter=tiny_sdxl[1].motion_adapter, dtype="fp16")
    vae = models.pose_pipe.vae
    assert vae.dtype == torch.float16 and vae.config.force_upcast
    seen = []
    hooks = [vae.decoder.register_forward_pre_hook(lambda _m, args: seen.append(("decode", args[0].dtype))),
             vae.encoder.register_forward_pre_hook(lambda _m, args: seen.append(("encode", args[0].dtype)))]
    params = GenerateParams(steps=2, pipeline="animatediff", context_length=3, context_stride=1)
    try:
        frames = frames_of(generate(models, POSES[:3], None, params, known={0: POSES[4]}))
    finally:
        for hook in hooks:
            hook.remove()
    assert seen == [("encode", torch.float32), ("decode", torch.float32)]
    assert vae.dtype == torch.float16 and len(frames) == 2
