"""Test-only: write a diffusers-format SDXL base model as ONE single-file checkpoint in the
original (Stability "generative-models") key layout, as the SDXL .safetensors files people
download are.

    from sgm_checkpoint import save_as_sgm_checkpoint

    save_as_sgm_checkpoint(tiny_sdxl_base, tmp_path / "tiny-sdxl.safetensors")

The UNet and VAE use SD1.x's names (ldm_checkpoint.py) plus the size/crop embedding
(``add_embedding`` -> ``label_emb.0``); the text encoders sit under ``conditioner.embedders``:

    conditioner.embedders.0.transformer.text_model.   CLIP ViT-L: the HF CLIP text model's keys
    conditioner.embedders.1.model.                     OpenCLIP ViT-bigG in OpenCLIP's own names:
        token_embedding.weight, positional_embedding, ln_final, text_projection (transposed),
        transformer.resblocks.N.{ln_1, ln_2, attn.in_proj_weight/bias (q, k and v stacked),
        attn.out_proj, mlp.c_fc, mlp.c_proj}

the inverse of diffusers' convert_open_clip_checkpoint (loaders/single_file_utils.py).
"""
from __future__ import annotations

import os
from pathlib import Path

from ldm_checkpoint import UNET_PREFIX, VAE_PREFIX, VAE_ATTENTION_LINEARS, _config, _weights, rename_keys
from ldm_checkpoint import unet_module_map, vae_module_map

CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."
SIZE_EMBEDDING = [("add_embedding.linear_1", "label_emb.0.0", None), ("add_embedding.linear_2", "label_emb.0.2", None)]
OPEN_CLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj",
                   "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}


def _open_clip_tensors(weights: dict) -> dict:
    """The CLIPTextModelWithProjection weights under OpenCLIP's names."""
    import torch

    weights = {k.removeprefix("text_model."): v for k, v in weights.items()}
    out = {
        "token_embedding.weight": weights.pop("embeddings.token_embedding.weight"),
        "positional_embedding": weights.pop("embeddings.position_embedding.weight"),
        "ln_final.weight": weights.pop("final_layer_norm.weight"),
        "ln_final.bias": weights.pop("final_layer_norm.bias"),
        "text_projection": weights.pop("text_projection.weight").T,
    }
    layers = sorted({int(k.split(".")[2]) for k in weights if k.startswith("encoder.layers.")})
    for n in layers:
        source, target = f"encoder.layers.{n}.", f"transformer.resblocks.{n}."
        for kind in ("weight", "bias"):
            out[f"{target}attn.in_proj_{kind}"] = torch.cat(
                [weights.pop(f"{source}self_attn.{p}_proj.{kind}") for p in ("q", "k", "v")])
            for module, original in OPEN_CLIP_LAYER.items():
                out[f"{target}{original}.{kind}"] = weights.pop(f"{source}{module}.{kind}")
    weights.pop("embeddings.position_ids", None)  # a buffer, not a weight
    if weights:
        raise KeyError(f"no OpenCLIP name for: {', '.join(sorted(weights))}")
    return {OPEN_CLIP_PREFIX + k: v for k, v in out.items()}


def save_as_sgm_checkpoint(diffusers_base_dir: str | os.PathLike, out_file: str | os.PathLike) -> list[str]:
    """Write the UNet, VAE and both text encoders of a diffusers-format SDXL pipeline folder to
    ``out_file`` (.safetensors) under their original names; return the names written."""
    from safetensors.torch import save_file

    base = Path(diffusers_base_dir)
    tensors = {}
    unet = _weights(base / "unet")
    names = rename_keys(unet, unet_module_map(_config(base / "unet")) + SIZE_EMBEDDING, UNET_PREFIX)
    tensors.update({names[k]: v for k, v in unet.items()})
    vae = _weights(base / "vae")
    for key, original in rename_keys(vae, vae_module_map(_config(base / "vae")), VAE_PREFIX).items():
        tensor = vae[key]
        if ".mid.attn_1." in original and original.rsplit(".", 2)[-2] in VAE_ATTENTION_LINEARS and tensor.ndim == 2:
            tensor = tensor[:, :, None, None]  # Linear -> 1x1 Conv2d
        tensors[original] = tensor
    for key, tensor in _weights(base / "text_encoder").items():
        tensors[CLIP_L_PREFIX + (key if key.startswith("text_model.") else "text_model." + key)] = tensor
    tensors.update(_open_clip_tensors(_weights(base / "text_encoder_2")))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out_file))
    return sorted(tensors)
