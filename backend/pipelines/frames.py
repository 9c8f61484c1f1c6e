"""The per-frame pipeline: each frame denoised on its own by SD1.5 or SDXL + ControlNet(s).

Flicker is held down the only way a per-frame model allows: every frame starts from the same
initial latent noise (drawn once from the seed) and the scheduler is deterministic, so frames
differ only where their control images (and prompts) do. Several frames go through the UNet in
one call (``params.batch``); a frame's result does not depend on its batch (up to floating point).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..families import SD15
from ..preview import preview_pipe
from .base import GenerationCancelled, GenerationRequest, Hooks, StopAtStep, control_tensor, to_uint8
from .conditioning import identity_embeddings, text_embeddings

TEMPORAL = False
UNION_POSE, UNION_DEPTH = 0, 1  # ControlNet-Union control types (xinsir's order)


def initial_noise(seed: int, width: int, height: int, vae_scale_factor: int, channels: int = 4):
    """The one latent noise every frame starts from, drawn on the CPU from the seed (so the same
    seed gives the same noise on every device)."""
    import torch

    generator = torch.Generator("cpu").manual_seed(seed)
    shape = (1, channels, height // vae_scale_factor, width // vae_scale_factor)
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def _controlnet_options(request: GenerationRequest) -> dict:
    params = request.params
    if request.depths is None:
        return dict(
            controlnet_conditioning_scale=float(params.pose_scale),
            control_guidance_start=float(params.control_start),
            control_guidance_end=float(params.control_end),
        )
    return dict(
        controlnet_conditioning_scale=[float(params.pose_scale), float(params.depth_scale)],
        control_guidance_start=[float(params.control_start), float(params.depth_window[0])],
        control_guidance_end=[float(params.control_end), float(params.depth_window[1])],
    )


def _control_images(models, request: GenerationRequest, start: int, count: int) -> dict:
    """Frames [start, start + count)'s control images, in the form the family's pipeline takes."""
    poses = list(request.poses[start : start + count])
    depths = None if request.depths is None else list(request.depths[start : start + count])
    if models.union:  # one network, told which control each image is (xinsir: 0 openpose, 1 depth)
        images = [poses] if depths is None else [poses, depths]
        return dict(control_image=[_tensor(models, request, batch) for batch in images],
                    control_mode=[UNION_POSE, UNION_DEPTH][: len(images)])
    if depths is None:
        return dict(image=poses)
    if models.family == SD15:  # diffusers' nested form, one [pose, depth] per frame
        return dict(image=[[p, d] for p, d in zip(poses, depths)])
    # The SDXL pipeline takes one batch per ControlNet, and as tensors only.
    return dict(image=[_tensor(models, request, poses), _tensor(models, request, depths)])


def _tensor(models, request: GenerationRequest, images):
    return control_tensor(images, request.width, request.height, models.device, models.dtype)


def run(models, request: GenerationRequest, hooks: Hooks) -> Iterator[tuple[int, np.ndarray]]:
    import torch

    from ..control_cache import fresh_conditioning

    params = request.params
    pipe = models.pose_pipe if request.depths is None else models.pose_depth_pipe
    if params.preview:  # the same modules with the few-step scheduler (backend.preview)
        pipe = preview_pipe(models, pipe)
    guidance = params.guidance > 1.0
    count = len(request.poses)
    channels = pipe.unet.config.in_channels
    noise = initial_noise(params.seed, request.width, request.height, models.vae_scale_factor, channels)
    with torch.inference_mode():
        texts = text_embeddings(pipe, request, models.device)
        image_embeds = identity_embeddings(models, pipe, request, guidance)
    extra = _controlnet_options(request)
    if image_embeds is not None:
        extra["ip_adapter_image_embeds"] = image_embeds
    done_before = 0
    for start in range(0, count, params.batch):
        n = min(params.batch, count - start)
        latents = noise.expand(n, -1, -1, -1).to(device=models.device, dtype=models.dtype)

        def callback(diffusers_pipe, step_index, timestep, callback_kwargs, n=n, first=done_before):
            # The scheduler's own step count: a second-order scheduler runs more than ``steps``.
            total = getattr(diffusers_pipe, "num_timesteps", None) or params.steps
            try:
                hooks.report(first * total + n * min(step_index + 1, total), count * total)
            except GenerationCancelled:
                raise StopAtStep from None
            return callback_kwargs

        try:
            with torch.inference_mode(), fresh_conditioning(pipe.controlnet):
                out = pipe(
                    **texts.pipeline_kwargs(start, n),
                    **_control_images(models, request, start, n),
                    height=request.height,
                    width=request.width,
                    num_inference_steps=params.steps,
                    guidance_scale=float(params.guidance),
                    latents=latents.clone(),
                    # One generator per frame, all seeded alike: a scheduler that adds noise at
                    # each step (ancestral, eta > 0) adds the same noise to every frame, in any
                    # batch.
                    generator=[torch.Generator("cpu").manual_seed(params.seed) for _ in range(n)],
                    output_type="np",
                    callback_on_step_end=callback,
                    **extra,
                )
        except StopAtStep:
            raise GenerationCancelled("generation cancelled at a denoising step") from None
        hooks.count("unet_calls")
        done_before += n
        for offset, frame in enumerate(to_uint8(out.images)):
            yield start + offset, frame
