"""What conditions every frame besides its control images, computed once per job: the text
embeddings (one prompt, or a prompt schedule blended per frame) and the identity reference's
IP-Adapter image embedding."""

from __future__ import annotations

from .base import GenerationRequest
from .prompts import prompt_blend


def _encode(pipe, prompts: list[str], device):
    """(len(prompts), tokens, dim) text embeddings, without guidance's negative half."""
    embeds, _ = pipe.encode_prompt(prompts, device, 1, False)
    return embeds


def text_embeddings(pipe, request: GenerationRequest, device):
    """(per-frame embeddings (F, tokens, dim), negative embedding (1, tokens, dim)).

    Each distinct prompt is encoded once; with a schedule a frame between two keys mixes the two
    prompts' embeddings linearly (backend.pipelines.prompts)."""
    import torch

    params = request.params
    negative = _encode(pipe, [params.negative], device)
    schedule = params.prompt_schedule()
    if schedule is None:
        single = _encode(pipe, [params.prompt], device)
        return single.expand(len(request.poses), -1, -1), negative
    texts = sorted(set(schedule.values()))
    encoded = dict(zip(texts, _encode(pipe, texts, device)))
    per_frame = [
        encoded[a] if t == 0.0 else torch.lerp(encoded[a], encoded[b], t)
        for a, b, t in prompt_blend(request.frame_numbers, schedule)
    ]
    return torch.stack(per_frame), negative


def identity_embeddings(models, pipe, request: GenerationRequest, guidance: bool) -> list | None:
    """The IP-Adapter image embeddings for ``pipe``'s UNet ([tensor (2 or 1, 1, dim)], negative
    half first with guidance), and the adapter's scale set on that UNet. None when the models
    have no IP-Adapter.

    Without a reference (or at identity_scale 0) the scale is 0: the adapter's attention is
    skipped and the frames equal those of a model without it. The UNet still wants an image
    embedding then, so it gets zeros."""
    import torch

    if not models.has_ip_adapter:
        return None
    scale = float(request.params.identity_scale) if request.reference is not None else 0.0
    pipe.set_ip_adapter_scale(scale)
    if request.reference is None:
        dim = pipe.image_encoder.config.projection_dim
        embeds = torch.zeros((2 if guidance else 1, 1, dim), device=models.device, dtype=models.dtype)
        return [embeds]
    return pipe.prepare_ip_adapter_image_embeds(
        ip_adapter_image=[request.reference],
        ip_adapter_image_embeds=None,
        device=models.device,
        num_images_per_prompt=1,
        do_classifier_free_guidance=guidance,
    )
