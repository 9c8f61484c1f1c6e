"""A tiny random-weight Wan 2.1 VACE pipeline, in diffusers format, made locally (issue 11).

``make_tiny_wan(dir)`` writes a ``WanVACEPipeline`` folder: the VACE transformer (2 heads,
3 layers, VACE blocks before layers 0 and 2: the configuration of diffusers' own VACE tests),
a tiny ``AutoencoderKLWan`` (the same 4x temporal and 8x spatial compression as the real one), a
tiny umT5 encoder, a T5 tokenizer over a small SentencePiece-style vocabulary built here, and
the scheduler Wan-AI's 1.3B repository ships (UniPC with flow sigmas, flow shift 3.0 for 480p).
Same classes and wiring as Wan-AI/Wan2.1-VACE-1.3B-diffusers, so the loading, control-video,
mask, reference and segment code runs as it does on the real model; nothing is downloaded.

The weights are random and seeded. The VACE blocks' output projections (zero in a fresh
transformer, so that untrained VACE blocks do nothing) get small random weights, so the control
video and the reference image change the frames, as they do with the trained model. The VAE's
biases are zero: at three channels its random biases outweigh the signal, and the decoded frames
would hardly depend on the latents (nor the encoded control video on its frames).
"""

from __future__ import annotations

import string
from pathlib import Path

TRANSFORMER = {
    "attention_head_dim": 12,
    "cross_attn_norm": True,
    "ffn_dim": 32,
    "freq_dim": 256,
    "in_channels": 16,
    "num_attention_heads": 2,
    "num_layers": 3,
    "out_channels": 16,
    "patch_size": [1, 2, 2],
    "qk_norm": "rms_norm_across_heads",
    "rope_max_seq_len": 32,
    "text_dim": 32,
    "vace_layers": [0, 2],
    "vace_in_channels": 96,
}
VAE = {"base_dim": 3, "z_dim": 16, "dim_mult": [1, 1, 1, 1], "num_res_blocks": 1,
       "temperal_downsample": [False, True, True]}
TEXT_WIDTH = 32  # the transformer's text_dim
TOKENS = 64  # longest prompt, in tokens (Wan pads to 512; tiny prompts need far fewer)
# Wan-AI/Wan2.1-VACE-1.3B-diffusers' scheduler_config.json, in substance.
SCHEDULER = {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": 3.0,
             "num_train_timesteps": 1000}


def _tokenizer():
    """A T5 tokenizer (Unigram, as umT5's) over the printable ASCII characters and a few words."""
    from transformers import T5Tokenizer

    words = ["a", "the", "man", "woman", "walking", "running", "dancing", "in", "forest", "rain"]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    vocab += [(c, -3.0) for c in string.ascii_letters + string.digits + string.punctuation]
    vocab += [("\u2581" + w, -2.0) for w in words]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=TOKENS)


def make_tiny_wan(directory, seed: int = 0) -> Path:
    """Write the tiny Wan VACE pipeline into ``directory`` (created if needed); return it."""
    import torch
    from diffusers import (AutoencoderKLWan, UniPCMultistepScheduler, WanVACEPipeline,
                           WanVACETransformer3DModel)
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = _tokenizer()
    torch.manual_seed(seed)
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=len(tokenizer), d_model=TEXT_WIDTH, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id,
    ))
    torch.manual_seed(seed + 1)
    transformer = WanVACETransformer3DModel(**TRANSFORMER)
    generator = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        for block in transformer.vace_blocks:
            weight = block.proj_out.weight
            weight.copy_(torch.randn(weight.shape, generator=generator) * (1.0 / weight.shape[1]) ** 0.5)
    torch.manual_seed(seed + 3)
    vae = AutoencoderKLWan(**VAE)
    with torch.no_grad():  # see the module's docstring
        for name, param in vae.named_parameters():
            if name.endswith("bias"):
                param.zero_()
    pipe = WanVACEPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
        scheduler=UniPCMultistepScheduler(**SCHEDULER), transformer=transformer,
    )
    root = Path(directory)
    pipe.save_pretrained(root)
    return root
