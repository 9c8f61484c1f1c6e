"""Wan 2.1 VACE's weights, loaded on the first wan-vace job rather than at start-up: the SD1.5
pipelines stay quick to serve, and a backend that never runs Wan never holds its memory.

    wan = WanModel("Wan-AI/Wan2.1-VACE-1.3B-diffusers", device="cuda", dtype=torch.float16)
    pipe = wan.pipeline()   # loads once (thread-safe), then the same pipeline every call

The transformer and text encoder run in bfloat16 on a GPU (Wan is trained in it; float16 can
overflow in its attention), the VAE in float32 as Wan-AI's examples load it. With cpu_offload
each module moves to the GPU while it runs and the VAE decodes in tiles: the 24 GB setting.
"""

from __future__ import annotations

import os
import threading

DEFAULT_WAN_MODEL = "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
TEXT_TOKENS = 512  # WanVACEPipeline's prompt length (what the model was trained with)


def wan_unavailable(name: str, local_files_only: bool, cache_dir=None) -> str | None:
    """Why ``name`` cannot be loaded from here, or None when it can (a folder, a hub id in the
    Hugging Face cache, or any hub id while the network is allowed). Nothing is downloaded."""
    from .model_files import looks_like_path

    path = os.path.expanduser(name)
    if looks_like_path(name) or os.path.isdir(path):
        return None if os.path.isfile(os.path.join(path, "model_index.json")) else (
            f"{path} is not a diffusers pipeline folder (no model_index.json)")
    if not local_files_only:
        return None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "model_index.json", cache_dir=cache_dir)
    if isinstance(cached, str):
        return None
    return f"{name} is not in the Hugging Face cache and the backend is offline (`hf download {name}` once)"


class WanModel:
    """The Wan VACE pipeline of one model id or folder, loaded by the first ``pipeline()`` call."""

    def __init__(self, name: str, *, device: str, dtype, cpu_offload: bool = False,
                 local_files_only: bool = False, cache_dir=None):
        import torch

        self.name = name
        self.device = device
        self.dtype = torch.bfloat16 if device != "cpu" and dtype != torch.float32 else dtype
        self.cpu_offload = cpu_offload
        self.local_files_only = local_files_only
        self.cache_dir = cache_dir
        self.loads = 0  # how many times the weights were read (tests: once)
        self._pipe = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._pipe is not None

    @property
    def text_tokens(self) -> int:
        """Prompt length in tokens: the pipeline's, or its tokenizer's limit when that is lower."""
        limit = getattr(self.pipeline().tokenizer, "model_max_length", TEXT_TOKENS)
        return min(TEXT_TOKENS, int(limit))

    def pipeline(self):
        with self._lock:
            if self._pipe is None:
                self._pipe = self._load()
                self.loads += 1
            return self._pipe

    def _load(self):
        import torch
        from diffusers import AutoencoderKLWan, WanVACEPipeline

        from .model_files import from_pretrained

        common = dict(local_files_only=self.local_files_only, cache_dir=self.cache_dir)
        vae = from_pretrained(AutoencoderKLWan, self.name, subfolder="vae", dtype=torch.float32, **common)
        pipe = from_pretrained(WanVACEPipeline, self.name, vae=vae, dtype=self.dtype, **common)
        pipe.set_progress_bar_config(disable=True)
        if self.cpu_offload:
            pipe.enable_model_cpu_offload()
            pipe.vae.enable_tiling()
            return pipe
        try:
            pipe.to(self.device)
        except torch.cuda.OutOfMemoryError:
            del pipe
            torch.cuda.empty_cache()
            from .pipelines.wan_vace import GpuMemoryError

            raise GpuMemoryError(
                f"out of GPU memory loading {self.name} (its umT5-XXL text encoder alone is about 11 GB in"
                " bf16): start the backend with --cpu-offload, which moves each part onto the GPU only while"
                " it runs") from None
        return pipe
