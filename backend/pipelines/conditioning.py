"""What conditions every frame besides its control images, computed once per job: the text
embeddings (one prompt, or a prompt schedule blended per frame) and the identity reference's
IP-Adapter image embedding."""

from __future__ import annotations

from typing import Any, NamedTuple

from .base import GenerationRequest
from .prompts import prompt_blend


class TextEmbeddings(NamedTuple):
    """A job's text conditioning. embeds (F, tokens, dim): one per frame; negative (1, tokens,
    dim). SDXL also has a pooled embedding of each (F, pooled_dim) and (1, pooled_dim); None
    for SD1.5."""

    embeds: Any
    negative: Any
    pooled: Any = None
    negative_pooled: Any = None

    def pipeline_kwargs(self, start: int, count: int) -> dict:
        """The embeddings of frames [start, start + count) as the diffusers pipeline takes them."""
        kwargs = dict(prompt_embeds=self.embeds[start : start + count],
                      negative_prompt_embeds=self.negative.expand(count, -1, -1))
        if self.pooled is not None:
            kwargs.update(pooled_prompt_embeds=self.pooled[start : start + count],
                          negative_pooled_prompt_embeds=self.negative_pooled.expand(count, -1))
        return kwargs


def is_sdxl(pipe) -> bool:
    return getattr(pipe, "text_encoder_2", None) is not None


def _encode(pipe, prompts: list[str], device) -> tuple:
    """(embeds (len(prompts), tokens, dim), pooled (len(prompts), dim) or None), without
    guidance's negative half."""
    if is_sdxl(pipe):  # prompt_2 is its second positional argument: keywords only (one per prompt)
        embeds, _, pooled, _ = pipe.encode_prompt(prompt=prompts, device=device, do_classifier_free_guidance=False)
        return embeds, pooled
    embeds, _ = pipe.encode_prompt(prompts, device, 1, False)
    return embeds, None


def _encode_negative(pipe, negative: str, device, prompt: tuple) -> tuple:
    """The negative's (embeds, pooled). An empty negative is zeros for SDXL models that ask for
    it, as diffusers does when none is given (SDXL was trained that way): shaped like the
    prompt's (``prompt``: its encoded (embeds, pooled)), nothing to encode."""
    if is_sdxl(pipe) and not negative and getattr(pipe.config, "force_zeros_for_empty_prompt", False):
        import torch

        embeds, pooled = prompt
        return torch.zeros_like(embeds[:1]), torch.zeros_like(pooled[:1])
    return _encode(pipe, [negative], device)


def text_embeddings(pipe, request: GenerationRequest, device) -> TextEmbeddings:
    """Each frame's text embedding (and SDXL's pooled one), and the negative.

    Each distinct prompt is encoded once; with a schedule a frame between two keys mixes the two
    prompts' embeddings linearly (backend.pipelines.prompts)."""
    import torch

    params = request.params
    frames = len(request.poses)
    schedule = params.prompt_schedule()
    if schedule is None:
        embeds, pooled = _encode(pipe, [params.prompt], device)
        negative, negative_pooled = _encode_negative(pipe, params.negative, device, (embeds, pooled))
        pooled = None if pooled is None else pooled.expand(frames, -1)
        return TextEmbeddings(embeds.expand(frames, -1, -1), negative, pooled, negative_pooled)
    texts = sorted(set(schedule.values()))
    embeds, pooled = _encode(pipe, texts, device)
    negative, negative_pooled = _encode_negative(pipe, params.negative, device, (embeds, pooled))
    blend = prompt_blend(request.frame_numbers, schedule)

    def per_frame(encoded: dict):
        return torch.stack([encoded[a] if t == 0.0 else torch.lerp(encoded[a], encoded[b], t) for a, b, t in blend])

    per_frame_pooled = None if pooled is None else per_frame(dict(zip(texts, pooled)))
    return TextEmbeddings(per_frame(dict(zip(texts, embeds))), negative, per_frame_pooled, negative_pooled)


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
