"""The full-size model set (SD1.5, two ControlNets, AnimateDiff v3, IP-Adapter), random weights,
built from the published configurations in sd15_configs and written in the tiny set's layout:

    dir/base/  dir/controlnet-openpose/  dir/controlnet-depth/  dir/motion-adapter/
    dir/ip-adapter/models/{ip-adapter_sd15.safetensors, image_encoder/}  dir/posebridge-models.json

so backend.models.load_models reads it exactly as it reads the real models. Nothing is
downloaded: the tokenizer's vocabulary is the tiny set's byte-level one, padded to CLIP's 49408
entries. ``build(name, device)`` makes one model (on "meta" it costs no memory: tests count
parameters that way).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sd15_configs as configs  # noqa: E402
from backend.model_set import write_model_set  # noqa: E402
from backend.families import FAMILY_SPECS, SD15  # noqa: E402

SD15_IP_ADAPTER = FAMILY_SPECS[SD15]

MODEL_NAMES = ("unet", "controlnet", "vae", "text_encoder", "motion_adapter", "image_encoder")


def build(name: str, device="cpu"):
    """One full-size model (``MODEL_NAMES``) with random weights, in fp32, on ``device``."""
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, MotionAdapter, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    makers = {
        "unet": lambda: UNet2DConditionModel.from_config(configs.SD15_UNET),
        "controlnet": lambda: ControlNetModel.from_config(configs.SD15_CONTROLNET),
        "vae": lambda: AutoencoderKL.from_config(configs.SD15_VAE),
        "text_encoder": lambda: CLIPTextModel(CLIPTextConfig(**configs.SD15_TEXT_ENCODER)),
        "motion_adapter": lambda: MotionAdapter.from_config(configs.MOTION_ADAPTER_V1_5_3),
        "image_encoder": lambda: CLIPVisionModelWithProjection(CLIPVisionConfig(**configs.IP_ADAPTER_IMAGE_ENCODER)),
    }
    # Built where it will run: initialising 2.9B parameters on a GPU takes a moment, on a CPU
    # a minute.
    with torch.device(device):
        return makers[name]().eval()


def build_tokenizer():
    """A CLIPTokenizer with CLIP's vocabulary size: the tiny set's byte-level tokens and merges,
    unused filler tokens, and the two special tokens at CLIP's own ids (49406, 49407)."""
    from transformers import CLIPTokenizer

    from backend.tiny_model import END_TOKEN, START_TOKEN, _tokenizer_vocab

    vocab, merges = _tokenizer_vocab()
    specials = [START_TOKEN, END_TOKEN]
    tokens = [token for token in vocab if token not in specials]  # in id order
    size = configs.SD15_TOKENIZER["vocab_size"]
    tokens += [f"<unused{i}>" for i in range(size - len(tokens) - len(specials))]
    tokens += specials
    settings = {k: v for k, v in configs.SD15_TOKENIZER.items() if k != "vocab_size"}
    return CLIPTokenizer(vocab={token: i for i, token in enumerate(tokens)}, merges=merges, **settings)


def build_scheduler():
    from diffusers import PNDMScheduler

    return PNDMScheduler.from_config(configs.SD15_SCHEDULER)


def ip_adapter_weights(unet, generator=None) -> dict:
    """ip-adapter_sd15's tensors in the original key layout, for ``unet``: image_proj.* and
    ip_adapter.N.to_k_ip/to_v_ip where N counts the UNet's attention layers (self-attentions
    even, cross-attentions odd), the numbering diffusers' loader reads."""
    import torch

    spec = configs.IP_ADAPTER_SD15
    cross = unet.config.cross_attention_dim
    device = next(unet.parameters()).device

    def random(*shape):
        if device.type == "meta":
            return torch.empty(shape, device=device)
        return torch.randn(shape, generator=generator, device=device) * shape[-1] ** -0.5

    weights = {
        "image_proj.proj.weight": random(spec["tokens"] * cross, spec["image_embed_dim"]),
        "image_proj.proj.bias": torch.zeros(spec["tokens"] * cross, device=device),
        "image_proj.norm.weight": torch.ones(cross, device=device),
        "image_proj.norm.bias": torch.zeros(cross, device=device),
    }
    key = 1
    for name in unet.attn_processors:
        if not name.endswith("attn2.processor"):
            continue
        width = unet.get_submodule(name.rpartition(".")[0]).to_k.out_features
        weights[f"ip_adapter.{key}.to_k_ip.weight"] = random(width, cross)
        weights[f"ip_adapter.{key}.to_v_ip.weight"] = random(width, cross)
        key += 2
    return weights


def write_full_size_model(directory, device="cpu", dtype=None, log: Callable[[str], None] = print) -> Path:
    """Build every model on ``device``, cast to ``dtype`` (fp16 by default, as the published
    weights), save with safetensors under ``directory``; return the model-set file's path."""
    import torch
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file

    dtype = dtype or torch.float16
    root = Path(directory)
    log("building the SD1.5 UNet, VAE and text encoder")
    unet, vae, text_encoder = (build(name, device).to(dtype) for name in ("unet", "vae", "text_encoder"))
    base = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=build_tokenizer(), unet=unet, scheduler=build_scheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    base.save_pretrained(root / "base")
    log("wrote base/; building the IP-Adapter")
    ip_folder = root / "ip-adapter" / SD15_IP_ADAPTER.ip_adapter_subfolder
    ip_folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.to(dtype).contiguous().cpu() for k, v in ip_adapter_weights(unet).items()}
    save_file(weights, str(ip_folder / SD15_IP_ADAPTER.ip_adapter_weights))
    del base, unet, vae, text_encoder, weights
    build("image_encoder", device).to(dtype).save_pretrained(ip_folder / SD15_IP_ADAPTER.ip_adapter_image_encoder)
    for folder in ("controlnet-openpose", "controlnet-depth"):
        log(f"building {folder}")
        build("controlnet", device).to(dtype).save_pretrained(root / folder)
    log("building the motion adapter")
    build("motion_adapter", device).to(dtype).save_pretrained(root / "motion-adapter")
    if device != "cpu" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    return write_model_set(root, "base", "controlnet-openpose", "controlnet-depth",
                           motion_adapter="motion-adapter", ip_adapter="ip-adapter")
