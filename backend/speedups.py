"""Speed-ups for the loaded models that leave the frames as they are, up to floating-point rounding.

Each one changes how the same arithmetic is laid out, never what is computed: no other scheduler,
step count, resolution, guidance or precision. bench/bench_gpu_variants.py times each on the
loaded full-size models in one process (applying and taking it back):

- ``cudnn_benchmark``: cuDNN times its convolution algorithms once per input shape and keeps the
  fastest (torch.backends.cudnn.benchmark; a process-wide setting);
- ``channels_last``: the convolution weights of the UNets, ControlNets and VAE held as NHWC;
- ``fused_qkv``: one matrix product for the query, key and value projections of every
  self-attention (and for the key and value of cross-attentions without an adapter), in place
  of three (or two); the IP-Adapter's cross-attentions are left as they are;
- ``compile_models``: torch.compile on the UNets and ControlNets (load_models(torch_compile=True),
  ``serve --compile``).

Measured on an H200 (2026-12-04, README's GPU section): none of the first three pays there
(cudnn_benchmark and channels_last ran 8% slower, fused_qkv within the spread of two baseline
timings), so none is applied by default; torch.compile ran both pipelines 1.37x faster, at a
one-off cost of 73 s (frames) and 106 s (AnimateDiff) the first time each pipeline runs a shape,
so it is opt-in.
"""

from __future__ import annotations

SPEEDUPS = ("cudnn_benchmark", "channels_last", "fused_qkv")


def _unique(modules) -> list:
    seen, out = set(), []
    for module in modules:
        if module is not None and id(module) not in seen:
            seen.add(id(module))
            out.append(module)
    return out


def denoisers(models) -> list:
    """The UNets (base, and the motion UNet when there is one) and the ControlNets."""
    unets = [models.pose_pipe.unet, models.motion_pipe.unet if models.motion_pipe is not None else None]
    return _unique(unets + list(models.controlnets))


def convolution_models(models) -> list:
    """Every model with convolutions: the UNets, the ControlNets and the VAE."""
    return _unique(denoisers(models) + [models.pose_pipe.vae])


def set_cudnn_benchmark(on: bool) -> None:
    import torch

    torch.backends.cudnn.benchmark = bool(on)


def set_channels_last(models, on: bool = True) -> None:
    """Hold the 4-D weights (convolutions) NHWC (``on``) or back in torch's default layout. The
    motion UNet shares the base UNet's parameters: converting them once converts both."""
    import torch

    layout = torch.channels_last if on else torch.contiguous_format
    for model in convolution_models(models):
        model.to(memory_format=layout)


def _attentions(models):
    from diffusers.models.attention_processor import Attention

    for model in denoisers(models):
        for module in model.modules():
            if isinstance(module, Attention):
                yield module


def fuse_projections(models) -> int:
    """Fuse the projections of every attention that runs diffusers' plain SDPA processor; return
    how many. Attentions with another processor (the IP-Adapter's) keep theirs."""
    from diffusers.models.attention_processor import AttnProcessor2_0, FusedAttnProcessor2_0

    fused = 0
    for attention in _attentions(models):
        if type(attention.processor) is not AttnProcessor2_0:
            continue
        attention.fuse_projections(fuse=True)  # adds to_qkv (self) or to_kv (cross), a copy
        attention.set_processor(FusedAttnProcessor2_0())
        fused += 1
    return fused


def count_fused(models) -> int:
    from diffusers.models.attention_processor import FusedAttnProcessor2_0

    return sum(type(attention.processor) is FusedAttnProcessor2_0 for attention in _attentions(models))


def unfuse_projections(models) -> int:
    """Undo fuse_projections: the plain processor back, the fused copies dropped."""
    from diffusers.models.attention_processor import AttnProcessor2_0, FusedAttnProcessor2_0

    undone = 0
    for attention in _attentions(models):
        if type(attention.processor) is not FusedAttnProcessor2_0:
            continue
        attention.set_processor(AttnProcessor2_0())
        for name in ("to_qkv", "to_kv"):
            if hasattr(attention, name):
                delattr(attention, name)
        attention.fused_projections = False
        undone += 1
    return undone


def apply(models, names) -> list[str]:
    """Apply the named speed-ups (``SPEEDUPS``); return their names in order."""
    unknown = sorted(set(names) - set(SPEEDUPS))
    if unknown:
        raise ValueError(f"unknown speed-up(s) {', '.join(unknown)}; known: {', '.join(SPEEDUPS)}")
    applied = []
    for name in SPEEDUPS:
        if name not in names:
            continue
        if name == "cudnn_benchmark":
            set_cudnn_benchmark(True)
        elif name == "channels_last":
            set_channels_last(models, True)
        elif name == "fused_qkv":
            fuse_projections(models)
        applied.append(name)
    return applied


def revert(models, names) -> None:
    """Take back what ``apply(models, names)`` did."""
    if "cudnn_benchmark" in names:
        set_cudnn_benchmark(False)
    if "channels_last" in names:
        set_channels_last(models, False)
    if "fused_qkv" in names:
        unfuse_projections(models)


def compile_models(models, mode: str | None = None, backend: str = "inductor") -> list[str]:
    """torch.compile the UNets and ControlNets in place (nn.Module.compile: the modules stay the
    pipelines' own). Shapes are compiled static, one graph per batch size, each the first time it
    is seen. The ControlNets' cached control embedding (control_cache) stays eager: it keeps a
    tensor between calls, which a compiled graph must not guard on. Returns the compiled models'
    class names."""
    import torch
    import torch._dynamo

    from .control_cache import CachedConditioningEmbedding

    config = torch._dynamo.config
    config.automatic_dynamic_shapes = False
    for limit in ("recompile_limit", "cache_size_limit"):
        if hasattr(config, limit):
            setattr(config, limit, max(getattr(config, limit), 32))
    if backend == "inductor":
        import torch._inductor.config as inductor

        inductor.conv_1x1_as_mm = True
    names = []
    for model in denoisers(models):
        embedding = getattr(model, "controlnet_cond_embedding", None)
        if isinstance(embedding, CachedConditioningEmbedding):
            embedding.forward = torch.compiler.disable(embedding.forward)
        model.compile(mode=mode, backend=backend)
        names.append(type(model).__name__)
    return names
