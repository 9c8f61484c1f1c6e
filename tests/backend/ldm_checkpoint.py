"""Test-only: write a diffusers-format SD1.x base model as ONE single-file checkpoint in the
original (LDM/CompVis) key layout, as the .safetensors files users download for SD1.5 are.

    from ldm_checkpoint import save_as_ldm_checkpoint

    mapping = save_as_ldm_checkpoint(tiny_model.base, tmp_path / "tiny-sd.safetensors")

diffusers can read such files (``from_single_file``) but not write them; this is the inverse of
its SD1.x conversion (diffusers/loaders/single_file_utils.py: convert_ldm_unet_checkpoint,
convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint), enough to make the tiny test model's
single-file twin offline. The name mapping is derived from the UNet's and VAE's config.json
(block counts, layers_per_block, which blocks have attention), so it holds for any size of the
SD1.x architecture, not only the tiny one. Every diffusers weight must find an original name:
an unknown key raises KeyError rather than being dropped.

Original layout, in short:

    model.diffusion_model.   the UNet: time_embed.{0,2}; input_blocks.0.0 (conv_in); then per
                             down block, per layer input_blocks.N.{0 resnet, 1 attention}, and
                             input_blocks.N.0.op (downsample) after every block but the last;
                             middle_block.{0 resnet, 1 attention, 2 resnet}; per up block,
                             layers+1 output_blocks.N.{0 resnet, 1 attention} with the upsample
                             (.conv) after the block's last layer (every block but the last);
                             out.{0 norm, 2 conv}. Resnets: in_layers.{0 norm, 2 conv},
                             emb_layers.1, out_layers.{0 norm, 3 conv}, skip_connection.
    first_stage_model.       the VAE: encoder.down.I.block.J / .downsample.conv, mid.block_{1,2},
                             mid.attn_1.{norm, q, k, v, proj_out} (1x1 conv weights), norm_out;
                             decoder.up.I with I counted from the output side (diffusers'
                             up_blocks reversed); resnets' conv_shortcut is nin_shortcut.
    cond_stage_model.transformer.text_model.   the HF CLIP text model's keys.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."

# diffusers module name -> original module name, inside one resnet.
UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
VAE_RESNET = {
    "norm1": "norm1",
    "conv1": "conv1",
    "norm2": "norm2",
    "conv2": "conv2",
    "conv_shortcut": "nin_shortcut",
}
VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}
VAE_ATTENTION_LINEARS = ("q", "k", "v", "proj_out")  # nn.Linear in diffusers, 1x1 Conv2d originally


def _per_block(value, count: int) -> list[int]:
    return list(value) if isinstance(value, (list, tuple)) else [int(value)] * count


def unet_module_map(config: dict) -> list[tuple[str, str, dict | None]]:
    """(diffusers module prefix, original module prefix, inner renames or None for the same
    names) for every module of a UNet2DConditionModel with this config (SD1.x layout)."""
    down_types = config["down_block_types"]
    up_types = config["up_block_types"]
    down_layers = _per_block(config["layers_per_block"], len(down_types))
    up_layers = list(reversed(down_layers))  # diffusers' up blocks mirror the down blocks
    if config.get("mid_block_type", "UNetMidBlock2DCrossAttn") != "UNetMidBlock2DCrossAttn":
        raise ValueError(f"unsupported mid block {config.get('mid_block_type')!r}")
    modules: list[tuple[str, str, dict | None]] = [
        ("time_embedding.linear_1", "time_embed.0", None),
        ("time_embedding.linear_2", "time_embed.2", None),
        ("conv_in", "input_blocks.0.0", None),
        ("conv_norm_out", "out.0", None),
        ("conv_out", "out.2", None),
    ]
    index = 1
    for block, (kind, layers) in enumerate(zip(down_types, down_layers)):
        for layer in range(layers):
            modules.append((f"down_blocks.{block}.resnets.{layer}", f"input_blocks.{index}.0", UNET_RESNET))
            if "CrossAttn" in kind:
                modules.append((f"down_blocks.{block}.attentions.{layer}", f"input_blocks.{index}.1", None))
            index += 1
        if block < len(down_types) - 1:
            modules.append((f"down_blocks.{block}.downsamplers.0.conv", f"input_blocks.{index}.0.op", None))
            index += 1
    modules += [
        ("mid_block.resnets.0", "middle_block.0", UNET_RESNET),
        ("mid_block.attentions.0", "middle_block.1", None),
        ("mid_block.resnets.1", "middle_block.2", UNET_RESNET),
    ]
    index = 0
    for block, (kind, layers) in enumerate(zip(up_types, up_layers)):
        attention = "CrossAttn" in kind
        for layer in range(layers + 1):
            modules.append((f"up_blocks.{block}.resnets.{layer}", f"output_blocks.{index}.0", UNET_RESNET))
            if attention:
                modules.append((f"up_blocks.{block}.attentions.{layer}", f"output_blocks.{index}.1", None))
            if layer == layers and block < len(up_types) - 1:
                slot = 2 if attention else 1
                upsampler = f"output_blocks.{index}.{slot}.conv"
                modules.append((f"up_blocks.{block}.upsamplers.0.conv", upsampler, None))
            index += 1
    return modules


def vae_module_map(config: dict) -> list[tuple[str, str, dict | None]]:
    """The same for an AutoencoderKL (SD1.x layout); the decoder's blocks are numbered from the
    output side in the original, so diffusers' up_blocks.I is up.{count-1-I}."""
    down = len(config["down_block_types"])
    up = len(config["up_block_types"])
    down_layers = _per_block(config["layers_per_block"], down)
    modules: list[tuple[str, str, dict | None]] = []
    for coder in ("encoder", "decoder"):
        modules += [
            (f"{coder}.conv_in", f"{coder}.conv_in", None),
            (f"{coder}.conv_out", f"{coder}.conv_out", None),
            (f"{coder}.conv_norm_out", f"{coder}.norm_out", None),
            (f"{coder}.mid_block.resnets.0", f"{coder}.mid.block_1", VAE_RESNET),
            (f"{coder}.mid_block.resnets.1", f"{coder}.mid.block_2", VAE_RESNET),
            (f"{coder}.mid_block.attentions.0", f"{coder}.mid.attn_1", VAE_ATTENTION),
        ]
    for name in ("quant_conv", "post_quant_conv"):
        modules.append((name, name, None))
    for block in range(down):
        source, target = f"encoder.down_blocks.{block}", f"encoder.down.{block}"
        for layer in range(down_layers[block]):
            modules.append((f"{source}.resnets.{layer}", f"{target}.block.{layer}", VAE_RESNET))
        if block < down - 1:
            modules.append((f"{source}.downsamplers.0.conv", f"{target}.downsample.conv", None))
    up_layers = list(reversed(down_layers))
    for block in range(up):
        source, target = f"decoder.up_blocks.{block}", f"decoder.up.{up - 1 - block}"
        for layer in range(up_layers[block] + 1):
            modules.append((f"{source}.resnets.{layer}", f"{target}.block.{layer}", VAE_RESNET))
        if block < up - 1:
            modules.append((f"{source}.upsamplers.0.conv", f"{target}.upsample.conv", None))
    return modules


def rename_keys(keys, modules: list[tuple[str, str, dict | None]], prefix: str) -> dict[str, str]:
    """{diffusers key: original key (with ``prefix``)} for ``keys``; KeyError naming any key no
    module covers or whose inner name has no original."""
    # Longest prefix first: a module nested in another (none in SD1.x, but cheap) wins.
    ordered = sorted(modules, key=lambda m: len(m[0]), reverse=True)
    result: dict[str, str] = {}
    unmapped: list[str] = []
    for key in keys:
        for source, target, inner in ordered:
            if not key.startswith(source + "."):
                continue
            rest = key[len(source) + 1 :]
            if inner is not None:
                module, _, param = rest.rpartition(".")
                if module not in inner:
                    continue
                rest = f"{inner[module]}.{param}"
            result[key] = f"{prefix}{target}.{rest}"
            break
        else:
            unmapped.append(key)
    if unmapped:
        raise KeyError(f"no original SD1.x name for: {', '.join(sorted(unmapped))}")
    return result


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if len(files) != 1:
        raise FileNotFoundError(f"expected one .safetensors file in {folder}, found {len(files)}")
    return load_file(str(files[0]))


def _config(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text(encoding="utf-8"))


def ldm_key_map(diffusers_base_dir: str | os.PathLike) -> dict[str, dict[str, str]]:
    """{"unet"|"vae"|"text_encoder": {diffusers key: original key}} for the model in that folder."""
    base = Path(diffusers_base_dir)
    unet_keys = _weights(base / "unet").keys()
    vae_keys = _weights(base / "vae").keys()
    text_keys = _weights(base / "text_encoder").keys()
    return {
        "unet": rename_keys(unet_keys, unet_module_map(_config(base / "unet")), UNET_PREFIX),
        "vae": rename_keys(vae_keys, vae_module_map(_config(base / "vae")), VAE_PREFIX),
        # transformers >= 5.6 saves CLIPTextModel without its "text_model." level; the original
        # files (and diffusers' detection of them) have it.
        "text_encoder": {
            k: CLIP_PREFIX + (k if k.startswith("text_model.") else "text_model." + k) for k in text_keys
        },
    }


def save_as_ldm_checkpoint(
    diffusers_base_dir: str | os.PathLike, out_file: str | os.PathLike
) -> dict[str, dict[str, str]]:
    """Write the UNet, VAE and CLIP text encoder of a diffusers-format SD1.x pipeline folder to
    ``out_file`` (.safetensors) under their original names; return the mapping used
    ({component: {diffusers key: original key}})."""
    from safetensors.torch import save_file

    base = Path(diffusers_base_dir)
    mapping = ldm_key_map(base)
    tensors = {}
    for component, names in mapping.items():
        weights = _weights(base / component)
        for key, original in names.items():
            tensor = weights[key]
            if component == "vae" and ".mid.attn_1." in original and original.endswith(".weight"):
                if original.rsplit(".", 2)[-2] in VAE_ATTENTION_LINEARS and tensor.ndim == 2:
                    tensor = tensor[:, :, None, None]  # Linear (out, in) -> 1x1 Conv2d (out, in, 1, 1)
            if original in tensors:
                raise KeyError(f"two weights map to {original}")
            tensors[original] = tensor.contiguous()
    save_file(tensors, str(out_file))
    return mapping
