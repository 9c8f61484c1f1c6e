"""A random LoRA for a tiny model, in diffusers' format: the tiny sets' stand-in for the fast
preview's few-step LoRA (backend.preview), which cannot be downloaded here. Random weights make
no frame faster or better; they exercise the path a real LCM-LoRA takes (loaded once, switched
on for previews only, run with LCM's scheduler and few steps)."""
from __future__ import annotations

from pathlib import Path

RANK = 4
TARGETS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_out.0")


def write_random_lora(pipeline_class, unet, path: Path, seed: int, scale: float = 0.3, rank: int = RANK) -> Path:
    """A LoRA of ``rank`` on every attention projection of ``unet``, saved as ``path`` with
    ``pipeline_class.save_lora_weights`` (StableDiffusionPipeline or StableDiffusionXLPipeline)."""
    import torch

    generator = torch.Generator(next(unet.parameters()).device).manual_seed(seed)
    layers = {}
    for name, module in unet.named_modules():
        if isinstance(module, torch.nn.Linear) and name.endswith(TARGETS):
            down = torch.randn(rank, module.in_features, generator=generator, device=module.weight.device) * scale
            up = torch.randn(module.out_features, rank, generator=generator, device=module.weight.device) * scale / rank
            layers[f"{name}.lora_A.weight"] = down.to(module.weight.dtype).cpu()
            layers[f"{name}.lora_B.weight"] = up.to(module.weight.dtype).cpu()
    path = Path(path)
    pipeline_class.save_lora_weights(path.parent, unet_lora_layers=layers, weight_name=path.name)
    return path
