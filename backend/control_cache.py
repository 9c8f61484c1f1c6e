"""Compute a ControlNet's conditioning embedding once per pipeline call, not once per step.

A ControlNet first turns its control image into features (``controlnet_cond_embedding``: eight
convolutions at the image's full resolution), then adds them to the latents. Those features
depend on the control image alone, yet diffusers recomputes them at every denoising step, and
twice per frame with classifier-free guidance (the image is repeated for the unconditional
half). At 512x512 that is most of the ControlNet's time on a CPU and a fair share on a GPU.

``cache_conditioning(controlnet)`` wraps the embedding so that, within one pipeline call:
- the same control tensor (the pipeline prepares it once and passes the same object every step)
  is embedded once;
- a batch whose two halves are equal (guidance's repeat) is embedded half, then repeated.
The cache holds a reference to its inputs, so no other tensor can be mistaken for one, and
``fresh_conditioning`` empties it around each call, so nothing is kept between jobs. It keeps
two: a ControlNet-Union embeds the pose and the depth image with the same embedding every step.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


class CachedConditioningEmbedding(nn.Module):
    ENTRIES = 2

    def __init__(self, embedding: nn.Module):
        super().__init__()
        self.embedding = embedding
        self._entries: list[tuple[torch.Tensor, torch.Tensor]] = []  # (input, output), newest last

    def clear(self) -> None:
        self._entries = []

    def forward(self, control: torch.Tensor) -> torch.Tensor:
        # Identity is the key: the pipeline never changes its prepared control image in place
        # (and inference-mode tensors have no version counter to tell if it had).
        for seen, output in self._entries:
            if control is seen:
                return output
        half = control.shape[0] // 2
        if control.shape[0] % 2 == 0 and half and torch.equal(control[:half], control[half:]):
            features = self.embedding(control[:half])
            output = torch.cat([features, features])
        else:
            output = self.embedding(control)
        self._entries = self._entries[-(self.ENTRIES - 1):] + [(control, output)]
        return output


def cache_conditioning(controlnet) -> None:
    """Wrap ``controlnet``'s conditioning embedding (once; a wrapped one is left alone)."""
    if not isinstance(controlnet.controlnet_cond_embedding, CachedConditioningEmbedding):
        controlnet.controlnet_cond_embedding = CachedConditioningEmbedding(controlnet.controlnet_cond_embedding)


def _caches(controlnet):
    if isinstance(controlnet, (list, tuple)):  # several ControlNets, called one by one
        nets = controlnet
    else:
        nets = getattr(controlnet, "nets", None) or [controlnet]  # MultiControlNetModel or one
    for net in nets:
        embedding = getattr(net, "controlnet_cond_embedding", None)
        if isinstance(embedding, CachedConditioningEmbedding):
            yield embedding


@contextmanager
def fresh_conditioning(controlnet):
    """Empty the caches before and after one pipeline call. ``controlnet``: a ControlNetModel, a
    MultiControlNetModel or a list of ControlNetModels."""
    caches = list(_caches(controlnet))
    for cache in caches:
        cache.clear()
    try:
        yield
    finally:
        for cache in caches:
            cache.clear()
