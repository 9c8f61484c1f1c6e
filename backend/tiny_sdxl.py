"""A tiny random-weight SDXL-architecture model set, in diffusers format, made locally.

``make_tiny_sdxl(dir)`` writes::

    dir/base/                   a StableDiffusionXLPipeline: two CLIP text encoders (the second
                                with a projection, giving the pooled embedding), an SDXL-style
                                UNet (``addition_embed_type="text_time"``: pooled text + size and
                                crop conditioning), the tiny VAE, an Euler scheduler
    dir/controlnet-openpose/    an SDXL ControlNetModel for that UNet
    dir/controlnet-depth/       another one, with other weights
    dir/controlnet-union/       a ControlNetUnionModel (xinsir's ControlNet-Union layout: one
                                network, the control type as an input)
    dir/ip-adapter/             laid out as h94/IP-Adapter for SDXL: sdxl_models/
                                ip-adapter_sdxl_vit-h.safetensors and models/image_encoder/
    dir/motion-adapter/         an AnimateDiff MotionAdapter for that UNet (no mid-block motion
                                module, as AnimateDiff's SDXL beta adapter)

Same classes and wiring as SDXL 1.0 (two tokenizers, concatenated hidden states, pooled text
embedding and time ids into the UNet's added embedding), only with a handful of channels, so a
frame takes milliseconds on a CPU. As in backend/tiny_model.py the control paths are given live
random weights, so the control images change the output.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .tiny_model import (
    COND_EMBED_CHANNELS,
    TEXT_HIDDEN,
    UNET_BLOCKS,
    UNET_LAYOUT,
    build_tokenizer,
    make_control_path_live,
    text_config,
    tiny_motion_adapter,
    tiny_vae,
    write_image_encoder,
    write_ip_adapter_weights,
    write_vocab_files,
)

# The second text encoder is wider than the first, as in SDXL (768 and 1280): single-file
# loading tells the two apart by their widths.
TEXT_2_HIDDEN = 48
POOLED_DIM = 32  # the second text encoder's projection: the pooled embedding
TIME_EMBED_DIM = 8  # per size/crop number (SDXL: 256)
TIME_IDS = 6  # original size (2), crop top-left (2), target size (2)
CROSS_ATTENTION = TEXT_HIDDEN + TEXT_2_HIDDEN  # both text encoders' hidden states side by side
UNET_KWARGS = dict(
    **UNET_LAYOUT,
    attention_head_dim=(2, 4),
    transformer_layers_per_block=(1, 2),
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=TIME_EMBED_DIM,
    projection_class_embeddings_input_dim=TIME_IDS * TIME_EMBED_DIM + POOLED_DIM,
    cross_attention_dim=CROSS_ATTENTION,
)
UNION_CONTROL_TYPES = 6  # xinsir's: openpose, depth, hed/scribble, canny/lineart, normal, seg
IP_ADAPTER_WEIGHTS = Path("sdxl_models") / "ip-adapter_sdxl_vit-h.safetensors"


@dataclass(frozen=True)
class TinySdxlPaths:
    root: Path
    base: Path
    openpose: Path
    depth: Path
    union: Path
    ip_adapter: Path
    motion_adapter: Path


def make_tiny_sdxl(directory: str | os.PathLike, seed: int = 0) -> TinySdxlPaths:
    """Write the tiny SDXL set under ``directory`` (created if needed); return its paths."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    root = Path(directory)
    paths = TinySdxlPaths(root, root / "base", root / "controlnet-openpose", root / "controlnet-depth",
                          root / "controlnet-union", root / "ip-adapter", root / "motion-adapter")
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(text_config(tokenizer))
    torch.manual_seed(seed + 1)
    text_encoder_2 = CLIPTextModelWithProjection(
        text_config(tokenizer, hidden_size=TEXT_2_HIDDEN, projection_dim=POOLED_DIM))
    torch.manual_seed(seed + 2)
    unet = UNet2DConditionModel(**UNET_KWARGS)
    vae = tiny_vae(seed + 3)
    # SDXL 1.0's own scheduler: Euler on the scaled-linear schedule (deterministic).
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    base = StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
        tokenizer_2=build_tokenizer(), unet=unet, scheduler=scheduler, force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    base.save_pretrained(paths.base)
    write_vocab_files(paths.base / "tokenizer")
    write_vocab_files(paths.base / "tokenizer_2")
    _sdxl_controlnet(unet, seed + 100).save_pretrained(paths.openpose)
    _sdxl_controlnet(unet, seed + 200).save_pretrained(paths.depth)
    _union_controlnet(unet, seed + 300).save_pretrained(paths.union)
    write_image_encoder(paths.ip_adapter / "models" / "image_encoder", seed + 400)
    write_ip_adapter_weights(unet, paths.ip_adapter / IP_ADAPTER_WEIGHTS, seed + 401)
    tiny_motion_adapter(seed + 500, use_motion_mid_block=False).save_pretrained(paths.motion_adapter)
    return paths


def _sdxl_controlnet(unet, seed: int):
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=COND_EMBED_CHANNELS)
    make_control_path_live(controlnet, seed + 1)
    return controlnet


def _union_controlnet(unet, seed: int):
    """A ControlNetUnionModel for ``unet``. Built directly, not with ``from_unet``: that leaves
    the control-type transformer at SDXL's 320 channels, which must equal the first block's."""
    import torch
    from diffusers.models.controlnets.controlnet_union import ControlNetUnionModel

    torch.manual_seed(seed)
    kwargs = {k: v for k, v in UNET_KWARGS.items() if k not in ("sample_size", "out_channels", "up_block_types")}
    width = UNET_BLOCKS[0]
    union = ControlNetUnionModel(
        **kwargs, conditioning_embedding_out_channels=COND_EMBED_CHANNELS, num_control_type=UNION_CONTROL_TYPES,
        num_trans_channel=width, num_trans_head=2, num_trans_layer=1, num_proj_channel=width,
    )
    union.conv_in.load_state_dict(unet.conv_in.state_dict())
    union.time_embedding.load_state_dict(unet.time_embedding.state_dict())
    union.down_blocks.load_state_dict(unet.down_blocks.state_dict(), strict=False)
    union.mid_block.load_state_dict(unet.mid_block.state_dict(), strict=False)
    make_control_path_live(union, seed + 1)
    generator = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():  # the control-type projection is zero in a fresh union model too
        weight = union.spatial_ch_projs.weight
        weight.copy_(torch.randn(weight.shape, generator=generator) * (1.0 / weight.shape[1]) ** 0.5)
    return union
