"""The published configurations of the full-size models PoseBridge runs, written out as data.

Copied field by field from the models' own config files, so a benchmark can build the real
architectures with random weights without downloading anything (random weights take as long to
run as trained ones):

- stable-diffusion-v1-5/stable-diffusion-v1-5: unet/, vae/, text_encoder/, tokenizer/, scheduler/
- lllyasviel/control_v11p_sd15_openpose and lllyasviel/control_v11f1p_sd15_depth (one config)
- guoyww/animatediff-motion-adapter-v1-5-3
- h94/IP-Adapter: models/image_encoder/ (OpenCLIP ViT-H/14 vision tower) and the layout of
  models/ip-adapter_sd15.safetensors

``PARAMETERS`` holds the parameter count each should have, with where the figure comes from;
tests/backend/test_bench_gpu.py checks the configs against it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The base model's and ControlNets' configurations live with the backend, which builds
# single-file checkpoints' folders from them (backend/published_configs.py).
from backend.published_configs import (  # noqa: E402,F401
    SD15_CONTROLNET,
    SD15_SCHEDULER,
    SD15_TEXT_ENCODER,
    SD15_TOKENIZER,
    SD15_UNET,
    SD15_VAE,
)


# AnimateDiff v3 (v3_sd15_mm.ckpt) has no motion module in the UNet's mid block, unlike v2:
# with use_motion_mid_block the adapter has 453.2M parameters, the v2 checkpoint's size
# (mm_sd_v15_v2.ckpt, 1.82 GB in fp32); without it 417.1M, v3's (1.67 GB in fp32).
MOTION_ADAPTER_V1_5_3 = {
    "block_out_channels": [320, 640, 1280, 1280],
    "conv_in_channels": None,
    "motion_layers_per_block": 2,
    "motion_max_seq_length": 32,
    "motion_mid_block_layers_per_block": 1,
    "motion_norm_num_groups": 32,
    "motion_num_attention_heads": 8,
    "use_motion_mid_block": False,
}

# h94/IP-Adapter models/image_encoder: OpenCLIP ViT-H/14's vision tower with its projection.
IP_ADAPTER_IMAGE_ENCODER = {
    "attention_dropout": 0.0,
    "dropout": 0.0,
    "hidden_act": "gelu",
    "hidden_size": 1280,
    "image_size": 224,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 5120,
    "layer_norm_eps": 1e-05,
    "num_attention_heads": 16,
    "num_channels": 3,
    "num_hidden_layers": 32,
    "patch_size": 14,
    "projection_dim": 1024,
}

# ip-adapter_sd15: image_proj maps the 1024-wide image embedding to 4 tokens of the text width
# (proj: Linear(1024, 4 * 768), norm: LayerNorm(768)); every cross-attention gets to_k_ip and
# to_v_ip, Linear(768, its width) without bias.
IP_ADAPTER_SD15 = {
    "tokens": 4,
    "image_embed_dim": IP_ADAPTER_IMAGE_ENCODER["projection_dim"],
    "cross_attention_dim": SD15_UNET["cross_attention_dim"],
}

# Parameter counts (low, high). Where a model card states a count it is that count +-0.1M;
# the others are bounded by their published checkpoints' sizes.
PARAMETERS = {
    "unet": (859.4e6, 859.6e6),  # SD1.5 model card and papers: 859.5M (unet fp32: 3.44 GB)
    "controlnet": (361.2e6, 361.4e6),  # control_v11p_sd15_openpose fp32: 1.45 GB = 361.3M
    "vae": (83.6e6, 83.7e6),  # AutoencoderKL f8: 83.65M (vae fp32: 335 MB)
    "text_encoder": (123.0e6, 123.1e6),  # CLIP ViT-L/14 text tower: 123.06M (fp32: 492 MB)
    "motion_adapter": (416e6, 419e6),  # v3_sd15_mm.ckpt, 1.67 GB fp32: 417M (v2 with mid block: 453M)
    "image_encoder": (631.9e6, 632.2e6),  # OpenCLIP ViT-H/14 image tower with projection: 632.08M
    "ip_adapter": (22.2e6, 22.4e6),  # ip-adapter_sd15.safetensors, fp16: 44.6 MB = 22.3M
}
