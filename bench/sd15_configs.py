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

SD15_UNET = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}

SD15_VAE = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "scaling_factor": 0.18215,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}

# CLIP ViT-L/14's text tower. The token ids are the published ones (0/2/1, not the tokenizer's
# 49406/49407): transformers keys its legacy end-of-text pooling on eos_token_id == 2.
SD15_TEXT_ENCODER = {
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "dropout": 0.0,
    "eos_token_id": 2,
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 1,
    "projection_dim": 768,
    "vocab_size": 49408,
}

SD15_TOKENIZER = {
    "model_max_length": 77,
    "vocab_size": 49408,  # the byte-level BPE vocabulary, the two special tokens last
    "bos_token": "<|startoftext|>",
    "eos_token": "<|endoftext|>",
    "pad_token": "<|endoftext|>",
    "unk_token": "<|endoftext|>",
}

SD15_SCHEDULER = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}

# control_v11p_sd15_openpose and control_v11f1p_sd15_depth share this config.
SD15_CONTROLNET = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "class_embed_type": None,
    "conditioning_embedding_out_channels": [16, 32, 96, 256],
    "controlnet_conditioning_channel_order": "rgb",
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "projection_class_embeddings_input_dim": None,
    "resnet_time_scale_shift": "default",
    "upcast_attention": False,
    "use_linear_projection": False,
}

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
