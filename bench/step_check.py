"""Checks for bench_gpu_variants: one denoising step against fp32 copies of the models (with each
module's time), and how far a variant's frames are from the baseline's."""
from __future__ import annotations

import time

import numpy as np
from bench_gpu import PROMPT, SEED
from measure import control_frames


class StepCheck:
    """One denoising step on fixed inputs: both ControlNets, then the UNet with their residuals
    (batch 2 x the frames batch, as the frames pipeline runs it). Its output is compared with that
    of fp32 copies of the models taken once, before any variant (TF32 off), and each part timed."""

    def __init__(self, models, size: int, frames_batch: int):
        import copy

        import torch

        self.models, self.torch = models, torch
        batch = 2 * frames_batch
        generator = torch.Generator("cpu").manual_seed(SEED)
        side = size // models.vae_scale_factor
        self.sample = torch.randn((batch, models.pose_pipe.unet.config.in_channels, side, side), generator=generator)
        with torch.inference_mode():
            text, _ = models.pose_pipe.encode_prompt([PROMPT], models.device, 1, False)
        self.text = text.expand(batch, -1, -1).float().cpu()
        poses, depths = control_frames(batch, size)
        self.controls = [torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
                         for images in (poses, depths)][: len(models.controlnets)]
        self.timestep = torch.tensor(500, device=models.device)
        self.image_embeds = None
        if models.has_ip_adapter:
            models.pose_pipe.set_ip_adapter_scale(0.0)  # no reference: the frames pipeline's case
            self.image_embeds = torch.zeros((batch, 1, models.pose_pipe.image_encoder.config.projection_dim))
        cudnn_tf32 = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            unet = copy.deepcopy(models.pose_pipe.unet).float()
            nets = [copy.deepcopy(net).float() for net in models.controlnets]
            with torch.inference_mode():
                self.reference = self._step(unet, nets, torch.float32)[0]
        finally:
            torch.backends.cudnn.allow_tf32 = cudnn_tf32
        del unet, nets
        if models.device == "cuda":
            torch.cuda.empty_cache()

    def _step(self, unet, nets, dtype):
        from backend.control_cache import fresh_conditioning

        device = self.models.device
        sample = self.sample.to(device=device, dtype=dtype)
        text = self.text.to(device=device, dtype=dtype)

        def controlnets():
            down_sum = mid_sum = None
            with fresh_conditioning(nets):
                for net, control in zip(nets, self.controls):
                    down, mid = net(sample, self.timestep, encoder_hidden_states=text,
                                    controlnet_cond=control.to(device=device, dtype=dtype), conditioning_scale=1.0,
                                    return_dict=False)
                    down_sum = list(down) if down_sum is None else [a + b for a, b in zip(down_sum, down)]
                    mid_sum = mid if mid_sum is None else mid_sum + mid
            return down_sum, mid_sum

        down, mid = controlnets()
        added = None if self.image_embeds is None else {"image_embeds": [self.image_embeds.to(device, dtype)]}

        def denoise():
            return unet(sample, self.timestep, encoder_hidden_states=text, down_block_additional_residuals=down,
                        mid_block_additional_residual=mid, added_cond_kwargs=added, return_dict=False)[0]

        return denoise().float(), controlnets, denoise

    def decode(self):
        """The VAE decode of one frames batch (half the step's batch) of latents."""
        vae = self.models.pose_pipe.vae
        latents = self.sample[: self.sample.shape[0] // 2].to(self.models.device, self.models.dtype)
        return vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]

    def __call__(self) -> dict:
        torch = self.torch
        with torch.inference_mode():
            out, controlnets, denoise = self._step(self.models.pose_pipe.unet, self.models.controlnets,
                                                   self.models.dtype)
            error = float(torch.linalg.vector_norm(out - self.reference) / torch.linalg.vector_norm(self.reference))
            return {"step_rel_error": float(f"{error:.4g}"), "unet_ms": self._ms(denoise),
                    "controlnets_ms": self._ms(controlnets), "vae_decode_ms": self._ms(self.decode)}

    def _ms(self, work, repeats: int = 3) -> float:
        times = []
        for _ in range(repeats + 1):
            if self.models.device == "cuda":
                self.torch.cuda.synchronize()
            started = time.perf_counter()
            work()
            if self.models.device == "cuda":
                self.torch.cuda.synchronize()
            times.append(time.perf_counter() - started)
        return round(1000 * float(np.median(times[1:])), 2)  # the first call warms up


def difference(frames: np.ndarray, baseline: np.ndarray) -> dict:
    """Largest and mean absolute difference in 8-bit levels, and the PSNR (None: identical)."""
    diff = np.abs(frames.astype(np.int16) - baseline.astype(np.int16))
    mse = float(np.mean(diff.astype(np.float64) ** 2))
    return {"max": int(diff.max()), "mean": round(float(diff.mean()), 4),
            "psnr_db": None if mse == 0 else round(10 * np.log10(255.0**2 / mse), 2)}
