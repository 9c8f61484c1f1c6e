"""The fast preview: a whole shot in seconds, to judge it before the final render.

A preview job (``GenerateParams.preview``) runs the per-frame pipeline with a few-step LoRA
(LCM-LoRA by default, for SD1.5 and SDXL alike; another LoRA distilled for LCM's sampler through
``serve --preview-lora``) and LCM's scheduler: a handful of steps instead of twenty, and
guidance 1 (classifier-free guidance off, so each step is one UNet pass instead of two). The
client asks for half the size. The job's own LoRAs still apply; its steps and guidance are the
preview's. A temporal pipeline asked for is previewed per frame: the preview shows poses, look
and composition, not the motion module's smoothing.

The LoRA is loaded on the first preview job (through the same LoraSet as the job LoRAs, so it is
read once and switched off for final jobs); the preview pipelines share every module with the
final ones and differ only in their scheduler.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .families import SD15, SDXL, hub_file
from .loras import missing_local_file

DEFAULT_PREVIEW_LORAS = {
    SD15: "latent-consistency/lcm-lora-sdv1-5",
    SDXL: "latent-consistency/lcm-lora-sdxl",
}
LORA_FILE = "pytorch_lora_weights.safetensors"  # what LCM-LoRA repositories hold
PREVIEW_STEPS = 4
PREVIEW_GUIDANCE = 1.0  # LCM distils guidance in: none at sampling time


@dataclass(frozen=True)
class PreviewSetup:
    lora: str
    steps: int = PREVIEW_STEPS
    guidance: float = PREVIEW_GUIDANCE

    def health(self) -> dict:
        return {"lora": self.lora, "steps": self.steps, "guidance": self.guidance}


def preview_unavailable(lora: str, local_files_only: bool, cache_dir=None) -> str | None:
    """Why the preview LoRA cannot be had from here, or None. A local file must exist; a Hugging
    Face id must be cached when offline (online, it is downloaded on the first preview job)."""
    problem = missing_local_file(lora)  # the same rule as a job's LoRAs
    if problem:
        return problem
    if Path(lora).expanduser().is_file() or not local_files_only:
        return None
    parts = lora.split("/")
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:]) or LORA_FILE
    if hub_file(repo, filename, cache_dir=cache_dir) is None:
        return (f"{lora} is not in the Hugging Face cache and the backend is offline "
                f"(`hf download {repo}` once, or serve --preview-lora FILE)")
    return None


def job_params(models, params):
    """The params a preview job runs with: the per-frame pipeline, the preview's steps and
    guidance, its LoRA after the job's own. ValueError when this backend has no preview."""
    setup = models.preview
    if setup is None:
        why = models.preview_unavailable or "it was started with --preview-lora none"
        raise ValueError(f"this backend has no fast preview: {why}")
    from .pipelines.base import FRAMES

    loras = tuple(params.lora_choices())
    if setup.lora not in {source for source, _ in loras}:  # once, however often this is asked
        loras += ((setup.lora, 1.0),)
    return replace(params, pipeline=FRAMES, steps=setup.steps, guidance=setup.guidance, loras=loras)


def preview_pipe(models, pipe):
    """``pipe`` with the LCM scheduler: the same modules, made once per pipeline."""
    cache = models.preview_pipes
    key = id(pipe)
    if key not in cache:
        from diffusers import LCMScheduler

        clone = type(pipe).from_pipe(pipe, scheduler=LCMScheduler.from_config(pipe.scheduler.config),
                                     dtype=models.dtype)
        clone.set_progress_bar_config(disable=True)
        cache[key] = clone
    return cache[key]
