"""AnimateDiff + ControlNet over a whole shot, in overlapping context windows (SD1.5, or SDXL with
its motion adapter: the pooled text and size conditioning added, _SdxlConditions).

The shot is denoised as one video: at every step each context window (backend.pipelines.windows)
runs the motion UNet over its frames, and each frame's noise prediction is the weighted mean of
its windows' predictions; then one scheduler step moves all frames together. So there is one
video, not one video per window: no seam where windows meet, no drift from window to window.

Memory stays flat in the shot's length: the UNet and the ControlNets only ever see one window's
frames (diffusers' AnimateDiffControlNetPipeline runs the ControlNets over every frame of the
shot at once). What grows with the shot is small: the latents and their noise prediction
(64x64x4 floats a frame at 512x512) and the control images, held as 8-bit pixels.

A ControlNet's output for a frame depends on that frame alone (its latent, the step, its prompt,
its control image), not on the window it is seen in, so each frame goes through the ControlNets
once per step, as its first window reaches it, and its residuals are kept only while windows
still need them (at most one window's frames).

Frames are final only when the last step is done: they are decoded and yielded at the end.

Known frames (a previous segment's last frames, given at the start of the request) are held to
their images: their latents are the images' encodings, noised to each step's level, so the motion
module sees them and the new frames continue the motion and look across the join.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np

from .base import ANIMATEDIFF, GenerationRequest, Hooks, control_tensor, to_uint8
from .conditioning import identity_embeddings, is_sdxl, text_embeddings
from .windows import context_windows, frame_weight_sums, freenoise_sources, window_weights

TEMPORAL = True
DECODE_CHUNK = 8  # frames per VAE decode call


def check_params(models, params) -> None:
    """ValueError naming what stops these models (LoadedModels, or their ModelInfo) from running
    animatediff with ``params``."""
    if ANIMATEDIFF not in models.pipelines:
        raise ValueError(
            "the animatediff pipeline needs a motion adapter: this backend was started without one"
            " (serve --motion-adapter); use pipeline 'frames'"
        )
    longest = models.max_context_length
    if longest is not None and params.context_length > longest:
        raise ValueError(
            f"context_length {params.context_length} is longer than the motion module sees ({longest} frames)"
        )


def initial_latents(seed: int, num_frames: int, length: int, stride: int, shape: tuple):
    """(1, C, F, h, w) noise: the first window's frames drawn from the seed on the CPU, the rest
    repeating them shuffled (FreeNoise), so the same seed gives the same video on every device."""
    import torch

    channels, height, width = shape
    own = min(num_frames, length)
    generator = torch.Generator("cpu").manual_seed(seed)
    drawn = torch.randn((1, channels, own, height, width), generator=generator, dtype=torch.float32)
    sources = torch.from_numpy(freenoise_sources(num_frames, length, stride, seed))
    return drawn[:, :, sources]


class _ControlResiduals:
    """The ControlNets' residuals of the frames the current window needs, computed once a step
    per frame: a window brings in only the frames not seen yet, and frames no later window needs
    are dropped."""

    def __init__(self, models, request: GenerationRequest, step_scales: list[float], hooks: Hooks):
        self.models = models
        self.request = request
        self.scales = step_scales  # one per ControlNet, 0 where it is outside its window
        self.hooks = hooks
        self.start = self.stop = 0  # frames [start, stop) are held
        self.down: list | None = None  # each (2 or 1, frames, C, h, w)
        self.mid = None

    def window(self, window: range, latent_input, text, t, sdxl=None):
        """(down residuals, mid residual) for ``window``, shaped for the motion UNet (batch x
        frames flattened), or (None, None) when no ControlNet acts at this step. sdxl: the
        window's per-frame (pooled text, time ids), batch x frames flattened as ``text``."""
        import torch

        if not any(self.scales):
            return None, None
        if window.stop > self.stop:
            first_new = max(window.start, self.stop)
            down, mid = self._run(first_new, window.stop, latent_input, text, t, window.start, sdxl)
            if self.down is None or first_new != self.stop:
                self.down, self.mid, self.start = down, mid, first_new
            else:
                self.down = [torch.cat([a, b], dim=1) for a, b in zip(self.down, down)]
                self.mid = torch.cat([self.mid, mid], dim=1)
            self.stop = window.stop
        drop = window.start - self.start
        if drop > 0:
            self.down = [d[:, drop:] for d in self.down]
            self.mid = self.mid[:, drop:]
            self.start = window.start
        return [d.flatten(0, 1) for d in self.down], self.mid.flatten(0, 1)

    def _run(self, first: int, stop: int, latent_input, text, t, window_start: int, sdxl=None):
        """Every ControlNet over frames [first, stop), summed; shaped (halves, frames, ...)."""
        import torch

        halves = latent_input.shape[0]
        offset = first - window_start
        count = stop - first
        sample = latent_input[:, :, offset:].transpose(1, 2).flatten(0, 1)  # (halves*count, C, h, w)

        def frames_of(batch):  # the frames [first, stop) of a (halves*window, ...) batch
            return batch.unflatten(0, (halves, -1))[:, offset:].flatten(0, 1)

        text = frames_of(text)
        added = None if sdxl is None else {"text_embeds": frames_of(sdxl[0]), "time_ids": frames_of(sdxl[1])}
        down_sum = mid_sum = None
        request = self.request
        images_per_net = [request.poses] if request.depths is None else [request.poses, request.depths]
        for controlnet, images, scale in zip(self.models.controlnets, images_per_net, self.scales):
            if not scale:
                continue
            control = control_tensor(images[first:stop], request.width, request.height,
                                      self.models.device, self.models.dtype)
            down, mid = controlnet(
                sample,
                t,
                encoder_hidden_states=text,
                controlnet_cond=torch.cat([control] * halves),
                conditioning_scale=scale,
                added_cond_kwargs=added,
                return_dict=False,
            )
            self.hooks.count("controlnet_calls")
            self.hooks.count("controlnet_frames", count)
            self.hooks.counters["controlnet_most_frames"] = max(
                count, self.hooks.counters.get("controlnet_most_frames", 0)
            )
            if down_sum is None:
                down_sum, mid_sum = list(down), mid
            else:
                down_sum = [a + b for a, b in zip(down_sum, down)]
                mid_sum = mid_sum + mid
        return [d.unflatten(0, (halves, count)) for d in down_sum], mid_sum.unflatten(0, (halves, count))


@contextmanager
def vae_precision(pipe):
    """The dtype to run ``pipe``'s VAE in, the VAE cast to it meanwhile: float32 for SDXL's VAE in
    fp16 (its config says force_upcast: it overflows in fp16 and decodes black), as diffusers'
    SDXL pipelines do; otherwise its own."""
    import torch

    vae = pipe.vae
    upcast = is_sdxl(pipe) and vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    if upcast:
        vae.to(torch.float32)
    try:
        yield vae.dtype
    finally:
        if upcast:
            vae.to(torch.float16)


class _SdxlConditions:
    """SDXL's added conditioning: the pooled text embedding and the size/crop ids (the output
    size, uncropped). The motion UNet takes one of each per video (a window's frames share its
    time embedding): the window's mean pooled embedding under prompt travel. The ControlNets run
    per frame and take each frame's own."""

    def __init__(self, texts, request: GenerationRequest, guidance: bool, device, dtype):
        import torch

        size = [request.height, request.width]
        self.time_ids = torch.tensor([size + [0, 0] + size], device=device, dtype=dtype)
        self.pooled, self.negative = texts.pooled, texts.negative_pooled
        self.guidance = guidance

    def video(self, frames: slice) -> dict:
        """added_cond_kwargs of the motion UNet for a window: (halves, ...) each."""
        import torch

        pooled = self.pooled[frames].mean(0, keepdim=True)
        if self.guidance:
            pooled = torch.cat([self.negative, pooled])
        return {"text_embeds": pooled, "time_ids": self.time_ids.expand(len(pooled), -1)}

    def per_frame(self, frames: slice) -> tuple:
        """(pooled, time ids) of each frame of a window, batch x frames flattened."""
        import torch

        pooled = self.pooled[frames]
        if self.guidance:
            pooled = torch.cat([self.negative.expand(len(pooled), -1), pooled])
        return pooled, self.time_ids.expand(len(pooled), -1)


def _controlnet_keeps(request: GenerationRequest, steps: int) -> list[list[float]]:
    """Per step, each ControlNet's scale: its conditioning scale inside its start/end window,
    0 outside (the same rule as diffusers' ControlNet pipelines)."""
    params = request.params
    nets = [(params.pose_scale, params.control_start, params.control_end)]
    if request.depths is not None:
        nets.append((params.depth_scale, *params.depth_window))
    return [
        [float(scale) * (0.0 if (i / steps < start or (i + 1) / steps > end) else 1.0) for scale, start, end in nets]
        for i in range(steps)
    ]


class _KnownFrames:
    """The latents of the known frames, noised to each step's level."""

    def __init__(self, pipe, request: GenerationRequest, noise, device, dtype):
        self.count = len(request.known)
        if not self.count:
            return
        with vae_precision(pipe) as vae_dtype:
            images = control_tensor([request.known[i] for i in range(self.count)], request.width,
                                     request.height, device, vae_dtype)
            encoded = pipe.vae.encode(images * 2.0 - 1.0).latent_dist.mean * pipe.vae.config.scaling_factor
        self.clean = encoded.transpose(0, 1).unsqueeze(0).to(dtype)  # (1, C, k, h, w)
        self.noise = noise[:, :, : self.count].to(device=device, dtype=dtype)
        self.scheduler = pipe.scheduler

    def hold(self, latents, timestep) -> None:
        """Set the known frames' latents to their images at ``timestep``'s noise (None: clean)."""
        import torch

        if not self.count:
            return
        if timestep is None:
            latents[:, :, : self.count] = self.clean
        else:
            t = torch.as_tensor([timestep]).to(latents.device)
            latents[:, :, : self.count] = self.scheduler.add_noise(self.clean, self.noise, t)


def run(models, request: GenerationRequest, hooks: Hooks) -> Iterator[tuple[int, np.ndarray]]:
    import torch

    from ..control_cache import fresh_conditioning

    params = request.params
    check_params(models, params)
    pipe = models.motion_pipe
    device, dtype = models.device, models.dtype
    count = len(request.poses)
    windows = context_windows(count, params.context_length, params.context_stride)
    guidance = params.guidance > 1.0
    halves = 2 if guidance else 1
    scale_factor = models.vae_scale_factor
    latent_shape = (pipe.unet.config.in_channels, request.height // scale_factor, request.width // scale_factor)
    scheduler = pipe.scheduler

    with torch.inference_mode():
        texts = text_embeddings(pipe, request, device)
        prompt_embeds, negative_embeds = texts.embeds, texts.negative
        image_embeds = identity_embeddings(models, pipe, request, guidance)
        sdxl = _SdxlConditions(texts, request, guidance, device, dtype) if texts.pooled is not None else None
        scheduler.set_timesteps(params.steps, device=device)
        timesteps = scheduler.timesteps
        noise = initial_latents(params.seed, count, params.context_length, params.context_stride, latent_shape)
        latents = (noise * scheduler.init_noise_sigma).to(device=device, dtype=dtype)
        known = _KnownFrames(pipe, request, noise, device, dtype)
        known.hold(latents, timesteps[0])
        generator = torch.Generator("cpu").manual_seed(params.seed)
        step_options = pipe.prepare_extra_step_kwargs(generator, 0.0)
        keeps = _controlnet_keeps(request, len(timesteps))
        weights = [torch.tensor(window_weights(len(w)), device=device, dtype=torch.float32) for w in windows]
        weight_sums = torch.tensor(frame_weight_sums(count, windows), device=device, dtype=torch.float32)
        total = len(timesteps) * len(windows)
        done = 0
        for step, t in enumerate(timesteps):
            residuals = _ControlResiduals(models, request, keeps[step], hooks)
            prediction = None if len(windows) == 1 else torch.zeros(latents.shape, device=device, dtype=torch.float32)
            for index, window in enumerate(windows):
                frames = slice(window.start, window.stop)
                window_latents = latents[:, :, frames]
                model_input = torch.cat([window_latents] * halves)
                model_input = scheduler.scale_model_input(model_input, t)
                text = prompt_embeds[frames]
                if guidance:
                    text = torch.cat([negative_embeds.expand(len(window), -1, -1), text])
                added = {} if image_embeds is None else {"image_embeds": image_embeds}
                if sdxl is not None:
                    added.update(sdxl.video(frames))
                with fresh_conditioning(models.controlnets):  # control embeddings: none kept
                    down, mid = residuals.window(window, model_input, text, t,
                                                 None if sdxl is None else sdxl.per_frame(frames))
                predicted = pipe.unet(
                    model_input,
                    t,
                    encoder_hidden_states=text,
                    added_cond_kwargs=added or None,
                    down_block_additional_residuals=down,
                    mid_block_additional_residual=mid,
                ).sample
                hooks.count("unet_calls")
                if guidance:
                    uncond, cond = predicted.chunk(2)
                    predicted = uncond + float(params.guidance) * (cond - uncond)
                if prediction is None:
                    prediction = predicted
                else:
                    prediction[:, :, frames] += predicted.float() * weights[index].view(1, 1, -1, 1, 1)
                done += 1
                hooks.report(done, total)
            if len(windows) > 1:
                prediction = (prediction / weight_sums.view(1, 1, -1, 1, 1)).to(dtype)
            latents = scheduler.step(prediction, t, latents, **step_options).prev_sample
            known.hold(latents, timesteps[step + 1] if step + 1 < len(timesteps) else None)

        vae = pipe.vae
        decoded = []
        with vae_precision(pipe) as vae_dtype:
            for first in range(known.count, count, DECODE_CHUNK):
                chunk = latents[0, :, first : first + DECODE_CHUNK].transpose(0, 1) / vae.config.scaling_factor
                images = vae.decode(chunk.to(vae_dtype)).sample.float()
                decoded.append((first, (images / 2 + 0.5).permute(0, 2, 3, 1).cpu().numpy()))
        for first, images in decoded:  # yielded once the VAE is back in its own precision
            for offset, frame in enumerate(to_uint8(images)):
                yield first + offset, frame

