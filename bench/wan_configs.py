"""The published configurations of Wan 2.1 VACE 1.3B, written out as data (issue 11).

- Wan-AI/Wan2.1-VACE-1.3B-diffusers transformer/: a WanVACETransformer3DModel, the values
  diffusers' conversion script (scripts/convert_wan_to_diffusers.py, "Wan-VACE-1.3B") writes:
  Wan2.1 T2V 1.3B (30 layers, 12 heads of 128, FFN 8960, umT5 text width 4096) plus 15 VACE
  blocks, one before every second layer, fed 96 context channels (16 + 16 latent channels of the
  inactive and reactive video, 64 of the mask folded 8x8).
- vae/: AutoencoderKLWan with its default configuration (the Wan2.1 VAE; the conversion script
  builds it as ``AutoencoderKLWan()``).
- WanVACEPipeline's defaults: 480x832, 81 frames, 50 steps, guidance 5.0 (classifier-free: a
  forward for the prompt and one for the negative prompt, each step), text padded to 512 tokens.

The TINY_* configurations are those of diffusers' own VACE pipeline tests: the same code, a few
thousand parameters. ``PARAMETERS`` holds the counts the full-size ones should have;
tests/backend/test_bench_gpu.py checks them on the meta device.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend import tiny_wan  # noqa: E402

VACE_1_3B = {
    "added_kv_proj_dim": None,
    "attention_head_dim": 128,
    "cross_attn_norm": True,
    "eps": 1e-06,
    "ffn_dim": 8960,
    "freq_dim": 256,
    "in_channels": 16,
    "num_attention_heads": 12,
    "num_layers": 30,
    "out_channels": 16,
    "patch_size": [1, 2, 2],
    "qk_norm": "rms_norm_across_heads",
    "text_dim": 4096,
    "vace_layers": list(range(0, 30, 2)),
    "vace_in_channels": 96,
}

VAE = {}  # AutoencoderKLWan(): base_dim 96, z_dim 16, dim_mult [1, 2, 4, 4], 2 res blocks, 4x/8x

# diffusers' own VACE test configuration: the tiny Wan VACE that make-tiny-model writes.
TINY_VACE, TINY_VAE = tiny_wan.TRANSFORMER, tiny_wan.VAE

PIPELINE = {"height": 480, "width": 832, "frames": 81, "steps": 50, "guidance": 5.0, "text_tokens": 512}

# Parameter counts (low, high). The transformer without its VACE blocks is Wan2.1 T2V 1.3B,
# whose bf16 weights are 2.84 GB (1.42B); the VAE is Wan2.1_VAE.pth, 508 MB in fp32 (127M).
PARAMETERS = {
    "t2v_part": (1.418e9, 1.421e9),
    # 15 blocks of 49.0M (a T2V block and its output projection), the first with an input
    # projection too, and the 96-channel patch embedding: counted from the architecture.
    "vace_part": (734.9e6, 735.1e6),
    "vae": (126.8e6, 127.0e6),
}
