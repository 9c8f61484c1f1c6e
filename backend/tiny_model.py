"""A tiny random-weight SD1.5-architecture model set, in diffusers format, made locally.

``make_tiny_model(dir)`` writes::

    dir/base/                  a StableDiffusionPipeline (UNet2DConditionModel, AutoencoderKL,
                               CLIPTextModel, CLIPTokenizer, DDIMScheduler; no safety checker)
    dir/controlnet-openpose/   a ControlNetModel for that UNet
    dir/controlnet-depth/      another one, with other weights
    dir/motion-adapter/        an AnimateDiff MotionAdapter for that UNet
    dir/ip-adapter/models/     an IP-Adapter laid out as h94/IP-Adapter: ip-adapter_sd15.safetensors
                               (image projection + per-cross-attention key/value weights, in the
                               original format) and image_encoder/ (CLIPVisionModelWithProjection)

Same classes and wiring as Stable Diffusion 1.5 (VAE scale factor 8, latent channels 4, CLIP
text encoder, 77-token prompts), only with a handful of channels, so a frame takes milliseconds
on a CPU. Nothing is downloaded: the CLIP tokenizer's byte-level vocabulary is built here.

The weights are random and seeded: the same call writes the same model. The ControlNets' control
paths (the conditioning embedding's last conv and the zero convs), which diffusers initialises
to zero so that a fresh ControlNet does nothing, get small random weights instead, so that the
control image changes the output, as it does with a trained model. Likewise the motion
modules' output projections (zero in a fresh MotionAdapter) and the IP-Adapter are random, so
the motion module mixes frames and the reference image changes them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

# The tiny architecture, in one place. Channel counts are the only thing shrunk.
TEXT_HIDDEN = 32
UNET_BLOCKS = (16, 32)
LAYERS_PER_BLOCK = 1
VAE_BLOCKS = (8, 8, 16, 16)  # four blocks: 3 downsamples, vae_scale_factor 8 as in SD1.5
COND_EMBED_CHANNELS = (8, 8, 16, 16)  # three downsamples: pixel size -> latent size, as in SD1.5
SAMPLE_SIZE = 8  # latent size: the default image size is 64x64
MAX_TOKENS = 77
CONTROL_GAIN = 1.0  # variance gain of the ControlNets' zero convs (He init: 2.0)
EMBED_STD = 1.0  # std of the conditioning embedding's output on a noise image

# The UNet's blocks, shared by the tiny SD1.5 and SDXL sets (backend/tiny_sdxl.py).
UNET_LAYOUT = dict(
    sample_size=SAMPLE_SIZE,
    in_channels=4,
    out_channels=4,
    block_out_channels=UNET_BLOCKS,
    layers_per_block=LAYERS_PER_BLOCK,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=8,
)

START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"


@dataclass(frozen=True)
class TinyModelPaths:
    """Where make_tiny_model wrote the three models (all folders load with from_pretrained)."""

    root: Path
    base: Path
    openpose: Path
    depth: Path
    motion_adapter: Path
    ip_adapter: Path


def bytes_to_unicode() -> list[str]:
    """The byte -> printable character table of byte-level BPE (GPT-2, CLIP), in byte order."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\xa1"), ord("\xac") + 1))
        + list(range(ord("\xae"), ord("\xff") + 1))
    )
    table = {}
    extra = 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def _tokenizer_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level CLIP vocabulary (every byte, alone and word-final, a few merges, the two
    special tokens) and its merges: what vocab.json and merges.txt hold."""
    chars = bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars]
    # A few merges so common words are not all single characters (not needed, but realistic).
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("an", "d</w>"), ("i", "n"), ("o", "n</w>")]
    tokens += [a + b for a, b in merges]
    tokens += [START_TOKEN, END_TOKEN]
    return {tok: i for i, tok in enumerate(tokens)}, merges


def write_vocab_files(folder: Path) -> None:
    """vocab.json and merges.txt beside tokenizer.json, as SD1.5's tokenizer folder has them
    (for loaders that build the tokenizer from these two files)."""
    vocab, merges = _tokenizer_vocab()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def build_tokenizer():
    """A CLIPTokenizer over the local vocabulary; save_pretrained writes vocab.json, merges.txt."""
    from transformers import CLIPTokenizer

    vocab, merges = _tokenizer_vocab()
    return CLIPTokenizer(
        vocab=vocab,
        merges=merges,
        bos_token=START_TOKEN,
        eos_token=END_TOKEN,
        pad_token=END_TOKEN,
        unk_token=END_TOKEN,
        model_max_length=MAX_TOKENS,
    )


def _controlnet(unet, seed: int):
    """A ControlNetModel for ``unet`` whose control path is live (not zero-initialised)."""
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    controlnet = ControlNetModel.from_unet(
        unet, conditioning_embedding_out_channels=COND_EMBED_CHANNELS, load_weights_from_unet=True
    )
    make_control_path_live(controlnet, seed + 1)
    return controlnet


def make_control_path_live(controlnet, seed: int) -> None:
    """Give a fresh ControlNet's control path (the conditioning embedding and the zero convs)
    random weights, so the control image changes the output as it does with a trained model."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    # He-initialised conditioning embedding (variance-preserving through its SiLUs, so the
    # control image's detail survives its eight convs), then live "zero" convs.
    embedding_convs = [controlnet.controlnet_cond_embedding.conv_in]
    embedding_convs += list(controlnet.controlnet_cond_embedding.blocks)
    embedding_convs += [controlnet.controlnet_cond_embedding.conv_out]
    zero_convs = [controlnet.controlnet_mid_block, *controlnet.controlnet_down_blocks]
    with torch.no_grad():
        for conv, gain in [(c, 2.0) for c in embedding_convs] + [(c, CONTROL_GAIN) for c in zero_convs]:
            fan_in = conv.weight[0].numel()
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * (gain / fan_in) ** 0.5)
            conv.bias.zero_()
        # Calibrate the embedding's scale on a noise image (data-dependent init, as in LSUV): its
        # output then has about the magnitude of the latent features it is added to, instead of
        # vanishing after eight random convs.
        size = SAMPLE_SIZE * 2 ** (len(COND_EMBED_CHANNELS) - 1)
        probe = torch.rand((1, 3, size, size), generator=generator)
        std = controlnet.controlnet_cond_embedding(probe).std()
        controlnet.controlnet_cond_embedding.conv_out.weight.mul_(EMBED_STD / std)


def text_config(tokenizer, hidden_size: int = TEXT_HIDDEN, **extra):
    """The tiny CLIP text encoder's configuration (2 layers, 32 wide) for ``tokenizer``."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        layer_norm_eps=1e-5,
        hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def tiny_vae(seed: int):
    """The tiny AutoencoderKL (scale factor 8, 4 latent channels), its latent scale calibrated."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=VAE_BLOCKS,
        down_block_types=("DownEncoderBlock2D",) * len(VAE_BLOCKS),
        up_block_types=("UpDecoderBlock2D",) * len(VAE_BLOCKS),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=SAMPLE_SIZE * 8,
    )
    _calibrate_latent_scale(vae, seed + 1)
    return vae


def _calibrate_latent_scale(vae, seed: int) -> None:
    """Set the VAE's scaling_factor as Stable Diffusion's was chosen: so that encoded images have
    unit variance. A random encoder's latents are tiny (std ~0.05): with SD1.5's 0.18215 an image
    encoded as a known frame (lead frames) would be all but zero next to the noise."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    size = SAMPLE_SIZE * 8
    images = torch.rand((4, 3, size, size), generator=generator) * 2.0 - 1.0
    with torch.no_grad():
        std = vae.encode(images).latent_dist.mean.std().item()
    vae.register_to_config(scaling_factor=round(1.0 / std, 5))


def make_tiny_model(directory: str | os.PathLike, seed: int = 0) -> TinyModelPaths:
    """Write the tiny model set under ``directory`` (created if needed); return its paths."""
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    root = Path(directory)
    paths = TinyModelPaths(
        root=root,
        base=root / "base",
        openpose=root / "controlnet-openpose",
        depth=root / "controlnet-depth",
        motion_adapter=root / "motion-adapter",
        ip_adapter=root / "ip-adapter",
    )

    tokenizer = build_tokenizer()

    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(text_config(tokenizer))
    torch.manual_seed(seed + 1)
    unet = UNet2DConditionModel(**UNET_LAYOUT, cross_attention_dim=TEXT_HIDDEN, attention_head_dim=4)
    vae = tiny_vae(seed + 2)
    # Stable Diffusion 1.5's noise schedule, with DDIM (deterministic: no noise added per step).
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    base = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    base.save_pretrained(paths.base)
    write_vocab_files(paths.base / "tokenizer")
    _controlnet(unet, seed + 100).save_pretrained(paths.openpose)
    _controlnet(unet, seed + 200).save_pretrained(paths.depth)
    tiny_motion_adapter(seed + 300).save_pretrained(paths.motion_adapter)
    _write_ip_adapter(unet, paths.ip_adapter, seed + 400)
    return paths


MOTION_MAX_FRAMES = 32  # as the published AnimateDiff v1.5 adapters (positional encoding length)
IMAGE_EMBED_DIM = 32  # the tiny CLIP image encoder's projection size


def tiny_motion_adapter(seed: int, **extra):
    """A MotionAdapter for the tiny UNet whose temporal attention is live (not zero-initialised)."""
    import torch
    from diffusers import MotionAdapter

    torch.manual_seed(seed)
    adapter = MotionAdapter(
        block_out_channels=UNET_BLOCKS,
        motion_layers_per_block=LAYERS_PER_BLOCK,
        motion_norm_num_groups=8,
        motion_num_attention_heads=2,
        motion_max_seq_length=MOTION_MAX_FRAMES,
        **extra,
    )
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in adapter.named_parameters():
            if name.endswith("proj_out.weight"):
                param.copy_(torch.randn(param.shape, generator=generator) * (1.0 / param.shape[1]) ** 0.5)
    return adapter


def _write_ip_adapter(unet, folder: Path, seed: int) -> None:
    """models/ip-adapter_sd15.safetensors and models/image_encoder/, as h94/IP-Adapter lays
    them out."""
    write_image_encoder(folder / "models" / "image_encoder", seed)
    write_ip_adapter_weights(unet, folder / "models" / "ip-adapter_sd15.safetensors", seed + 1)


def write_image_encoder(folder: Path, seed: int) -> None:
    """The tiny CLIP image encoder (CLIPVisionModelWithProjection, embedding IMAGE_EMBED_DIM)."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            projection_dim=IMAGE_EMBED_DIM,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        )
    )
    encoder.save_pretrained(folder)


def write_ip_adapter_weights(unet, path: Path, seed: int) -> None:
    """An IP-Adapter weights file for ``unet`` in the original key layout (image_proj.* and
    ip_adapter.N.to_k_ip/to_v_ip for the Nth attention layer, cross-attentions being the odd N),
    projecting the tiny image encoder's embedding to ``unet``'s cross-attention width."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)

    def random(*shape):
        return torch.randn(shape, generator=generator) * (1.0 / shape[-1]) ** 0.5

    cross = int(unet.config.cross_attention_dim)
    weights = {
        "image_proj.proj.weight": random(4 * cross, IMAGE_EMBED_DIM),
        "image_proj.proj.bias": torch.zeros(4 * cross),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    blocks = list(unet.config.block_out_channels)
    key_id = 1
    for name in unet.attn_processors:
        if not name.endswith("attn2.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = blocks[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(blocks))[int(name.split(".")[1])]
        else:
            hidden = blocks[int(name.split(".")[1])]
        weights[f"ip_adapter.{key_id}.to_k_ip.weight"] = random(hidden, cross)
        weights[f"ip_adapter.{key_id}.to_v_ip.weight"] = random(hidden, cross)
        key_id += 2
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in weights.items()}, str(path))
