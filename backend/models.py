"""Loading the models once: base model, ControlNets, motion adapter, IP-Adapter.

    from backend.models import load_models

    models = load_models("stable-diffusion-v1-5/stable-diffusion-v1-5",
                         "lllyasviel/control_v11p_sd15_openpose",
                         "lllyasviel/control_v11f1p_sd15_depth",
                         motion_adapter="guoyww/animatediff-motion-adapter-v1-5-3",
                         ip_adapter="h94/IP-Adapter",
                         wan_model="Wan-AI/Wan2.1-VACE-1.3B-diffusers")

Models come through diffusers' ``from_pretrained``: a hub id (from the user's HF cache, or
downloaded when the network is allowed), a local folder in diffusers format, or ``cache_dir``.
A model that cannot be had (offline and not cached, or no such folder) raises
``ModelNotAvailableError`` (a ValueError) naming it.

Every pipeline shares the loaded components: the ControlNets, text encoder, VAE and the base
UNet's weights are in memory once. The AnimateDiff UNet (the base UNet plus the motion modules)
is built by diffusers as a copy; its spatial weights are then pointed back at the base UNet's
(``share_spatial_weights``), so the motion pipeline costs only the motion modules' memory.

Wan VACE (backend/wan_model.py) is a model of its own, loaded on its first job, not at start-up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .loras import LoraSet
from .pipelines.base import ANIMATEDIFF, FRAMES, WAN_VACE, ModelNotAvailableError

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_POSE_CONTROLNET = "lllyasviel/control_v11p_sd15_openpose"
DEFAULT_DEPTH_CONTROLNET = "lllyasviel/control_v11f1p_sd15_depth"
DEFAULT_MOTION_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-3"
DEFAULT_IP_ADAPTER = "h94/IP-Adapter"

DEVICES = ("auto", "cuda", "mps", "cpu")
DTYPES = ("auto", "fp16", "bf16", "fp32")

__all__ = [
    "DEFAULT_DEPTH_CONTROLNET", "DEFAULT_IP_ADAPTER", "DEFAULT_MODEL", "DEFAULT_MOTION_ADAPTER",
    "DEFAULT_POSE_CONTROLNET", "DEVICES", "DTYPES", "LoadedModels", "ModelNotAvailableError",
    "is_single_file", "load_models", "pick_device", "pick_dtype",
]


@dataclass
class LoadedModels:
    """The loaded models, kept warm, and the diffusers pipelines built on them.

    ``pose_pipe`` runs pose alone per frame; ``pose_depth_pipe`` (None without a depth
    ControlNet) runs both as a MultiControlNetModel. ``motion_pipe`` (None without a motion
    adapter) is an AnimateDiffPipeline on the same text encoder, VAE and spatial weights, whose
    helpers (prompt and image encoding, decoding) the windowed loop uses; the ControlNets are
    ``controlnets`` (pose first). ``has_ip_adapter``: every UNet carries the IP-Adapter and
    ``image_encoder`` is loaded. ``compiled``: loaded with torch_compile.
    """

    pose_pipe: Any
    pose_depth_pipe: Any | None
    device: str
    dtype: Any
    models: dict = field(default_factory=dict)
    motion_pipe: Any | None = None
    has_ip_adapter: bool = False
    compiled: bool = False  # the UNets and ControlNets go through torch.compile
    wan: Any | None = None  # a backend.wan_model.WanModel (loads on first use), or None
    loras: LoraSet = field(default_factory=LoraSet)  # the LoRAs loaded so far (backend.loras)

    @property
    def has_depth(self) -> bool:
        return self.pose_depth_pipe is not None

    @property
    def controlnets(self) -> list:
        """[pose] or [pose, depth]."""
        if self.pose_depth_pipe is None:
            return [self.pose_pipe.controlnet]
        return list(self.pose_depth_pipe.controlnet.nets)

    @property
    def vae_scale_factor(self) -> int:
        return int(self.pose_pipe.vae_scale_factor)

    @property
    def pipelines(self) -> list[str]:
        """The pipelines these models can run, the default first."""
        names = [ANIMATEDIFF, FRAMES] if self.motion_pipe is not None else [FRAMES]
        return names + [WAN_VACE] if self.wan is not None else names

    @property
    def default_pipeline(self) -> str:
        return self.pipelines[0]

    @property
    def max_context_length(self) -> int | None:
        """The most frames the motion module attends over (its positional encoding's length)."""
        if self.motion_pipe is None:
            return None
        return int(self.motion_pipe.unet.config.motion_max_seq_length)

    def diffusers_pipes(self) -> list:
        return [p for p in (self.pose_pipe, self.pose_depth_pipe, self.motion_pipe) if p is not None]


# --- device and dtype ---------------------------------------------------------------------------


def pick_device(device: str = "auto") -> str:
    """"auto" -> cuda if available, else mps, else cpu. A named device must be available."""
    import torch

    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)} (got {device!r})")
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if (device == "cuda" and not cuda) or (device == "mps" and not mps):
        raise ValueError(f"device {device!r} is not available on this machine")
    return device


def pick_dtype(dtype: str, device: str):
    """"auto" -> fp16 on cuda and mps, fp32 on cpu; "fp16", "bf16", "fp32" as named."""
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)} (got {dtype!r})")
    if dtype == "auto":
        return torch.float32 if device == "cpu" else torch.float16
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[dtype]


# --- loading ------------------------------------------------------------------------------------


def _offline_from_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _looks_like_path(name: str) -> bool:
    return os.path.isabs(name) or name.startswith((".", "~"))


def _from_pretrained(cls, name: str, *, local_files_only: bool, cache_dir, dtype, **kwargs):
    """cls.from_pretrained(name) with unavailability turned into ModelNotAvailableError."""
    from huggingface_hub.errors import HfHubHTTPError

    path = os.path.expanduser(name)
    if _looks_like_path(name) and not os.path.isdir(path):
        raise ModelNotAvailableError(name, f"no such folder: {path}")
    try:
        return cls.from_pretrained(
            path if os.path.isdir(path) else name,
            dtype=dtype,
            local_files_only=local_files_only,
            cache_dir=cache_dir,
            **kwargs,
        )
    except (OSError, HfHubHTTPError) as exc:
        where = "offline, and it is not in the Hugging Face cache" if local_files_only else (
            "it could not be loaded from the Hugging Face hub or cache"
        )
        if cache_dir:
            where += f" ({cache_dir})"
        raise ModelNotAvailableError(
            name,
            f"{where}; download it once with network access (`hf download {name}`) or pass a"
            f" local folder in diffusers format. ({type(exc).__name__}: {exc})",
        ) from exc


SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")


def is_single_file(name: str | None) -> bool:
    """A single-file checkpoint (``.safetensors``/``.ckpt``) rather than a hub id or folder."""
    return bool(name) and str(name).lower().endswith(SINGLE_FILE_SUFFIXES)


def _from_single_file(cls, name: str, *, config, local_files_only: bool, cache_dir, dtype, **kwargs):
    """cls.from_single_file(name) with a missing file or configuration turned into
    ModelNotAvailableError. config: a diffusers-format folder (or hub id) of the same
    architecture, which diffusers reads the model's configuration from; without it diffusers
    infers the architecture and fetches its configuration from the hub (or the HF cache)."""
    from huggingface_hub.errors import HfHubHTTPError

    path = os.path.expanduser(name)
    if not os.path.isfile(path):
        raise ModelNotAvailableError(name, f"no such checkpoint file: {path}")
    if config is not None:
        config = os.path.expanduser(config) if _looks_like_path(config) else config
        if _looks_like_path(config) and not os.path.isdir(config):
            raise ModelNotAvailableError(name, f"its configuration folder does not exist: {config}")
    try:
        return cls.from_single_file(
            path, config=config, dtype=dtype, local_files_only=local_files_only, cache_dir=cache_dir, **kwargs
        )
    except (OSError, HfHubHTTPError) as exc:
        raise ModelNotAvailableError(
            name,
            "diffusers could not get the configuration for this single-file checkpoint (offline?);"
            " pass a diffusers-format folder of the same architecture (--model-config /"
            f" --controlnet-config). ({type(exc).__name__}: {exc})",
        ) from exc


def _load_controlnet(cls, name: str, config: str | None, **common):
    if is_single_file(name):
        return _from_single_file(cls, name, config=config, **common)
    return _from_pretrained(cls, name, **common)


def load_models(
    model: str = DEFAULT_MODEL,
    pose_controlnet: str = DEFAULT_POSE_CONTROLNET,
    depth_controlnet: str | None = DEFAULT_DEPTH_CONTROLNET,
    device: str = "auto",
    dtype: str = "auto",
    local_files_only: bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    cpu_offload: bool = False,
    model_config: str | None = None,
    controlnet_config: str | None = None,
    motion_adapter: str | None = None,
    ip_adapter: str | None = None,
    torch_compile: bool = False,
    wan_model: str | None = None,
) -> LoadedModels:
    """Load the base model, its ControlNets and the optional adapters once; return them ready.

    model, pose_controlnet, depth_controlnet: hub ids or local folders (diffusers format);
    depth_controlnet None loads pose only. motion_adapter: an AnimateDiff MotionAdapter (hub id
    or folder), None for no animatediff pipeline. ip_adapter: an IP-Adapter repository or folder
    laid out as h94/IP-Adapter (``models/ip-adapter_sd15.safetensors`` and
    ``models/image_encoder``), None for no identity reference. local_files_only: None follows
    HF_HUB_OFFLINE (read at call time); True never touches the network. cpu_offload: keep
    modules on the CPU and move each to the GPU while it runs (small GPUs; cuda only; needs
    accelerate).

    Any of the three first models may be a single-file checkpoint (``.safetensors``/``.ckpt``),
    loaded with diffusers' from_single_file; model_config / controlnet_config then name a
    diffusers-format folder (or hub id) holding its configuration, which offline use needs.

    torch_compile: torch.compile the UNets and ControlNets (backend.speedups.compile_models; not
    with cpu_offload). Frames stay the same up to rounding; on an H200 the frames pipeline and
    AnimateDiff ran 1.37x faster, but the first job of each pipeline and shape pays the
    compilation (73 s and 106 s there): for a backend that serves many jobs.

    wan_model: a Wan 2.1 VACE pipeline (hub id or diffusers folder) for the wan-vace pipeline,
    loaded on its first job; left out (``models["wan_unavailable"]`` says why) when it cannot be
    had from here. None: no wan-vace.
    """
    from diffusers import ControlNetModel, MultiControlNetModel, StableDiffusionControlNetPipeline
    from diffusers.models.attention_processor import AttnProcessor2_0

    from .adapters import load_ip_adapter, motion_pipeline

    device = pick_device(device)
    torch_dtype = pick_dtype(dtype, device)
    if local_files_only is None:
        local_files_only = _offline_from_env()
    if cpu_offload and device != "cuda":
        raise ValueError("cpu_offload needs a cuda device")
    if cpu_offload and torch_compile:
        raise ValueError("torch_compile does not go with cpu_offload")
    common = dict(local_files_only=local_files_only, cache_dir=cache_dir, dtype=torch_dtype)

    pose = _load_controlnet(ControlNetModel, pose_controlnet, controlnet_config, **common)
    depth = None
    if depth_controlnet:
        depth = _load_controlnet(ControlNetModel, depth_controlnet, controlnet_config, **common)
    no_safety_checker = dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if is_single_file(model):
        pose_pipe = _from_single_file(
            StableDiffusionControlNetPipeline,
            model,
            config=model_config,
            controlnet=pose,
            **no_safety_checker,
            **common,
        )
    else:
        pose_pipe = _from_pretrained(
            StableDiffusionControlNetPipeline, model, controlnet=pose, **no_safety_checker, **common
        )
    # SDPA (torch's fused scaled_dot_product_attention) everywhere; diffusers' default on torch 2,
    # set explicitly so a model saved with another processor does not bring it back.
    for module in (pose_pipe.unet, pose, depth):
        if module is not None:
            module.set_attn_processor(AttnProcessor2_0())
    # Each control image is embedded once per call instead of at every step (control_cache.py).
    from .control_cache import cache_conditioning

    for controlnet in (pose, depth):
        if controlnet is not None:
            cache_conditioning(controlnet)

    pose_depth_pipe = None
    if depth is not None:
        components = dict(pose_pipe.components)
        components["controlnet"] = MultiControlNetModel([pose, depth])
        pose_depth_pipe = StableDiffusionControlNetPipeline(**components, requires_safety_checker=False)

    motion_pipe = None
    if motion_adapter:
        motion_pipe = motion_pipeline(pose_pipe, motion_adapter, common)
    if ip_adapter:
        load_ip_adapter([pose_pipe, motion_pipe], ip_adapter, common)
        if pose_depth_pipe is not None:  # same UNet; the encoder is registered for its helpers
            pose_depth_pipe.register_modules(
                image_encoder=pose_pipe.image_encoder, feature_extractor=pose_pipe.feature_extractor
            )

    pipes = [p for p in (pose_pipe, pose_depth_pipe, motion_pipe) if p is not None]
    for pipe in pipes:
        pipe.set_progress_bar_config(disable=True)
    if cpu_offload:
        for pipe in pipes:
            pipe.enable_model_cpu_offload()
    else:
        for pipe in pipes:
            pipe.to(device)
    loaded = LoadedModels(
        pose_pipe=pose_pipe,
        pose_depth_pipe=pose_depth_pipe,
        device=device,
        dtype=torch_dtype,
        models={
            "model": model,
            "pose_controlnet": pose_controlnet,
            "depth_controlnet": depth_controlnet,
            "motion_adapter": motion_adapter or None,
            "ip_adapter": ip_adapter or None,
            "wan_model": wan_model or None,
        },
        motion_pipe=motion_pipe,
        has_ip_adapter=bool(ip_adapter),
    )
    if wan_model:
        from .wan_model import WanModel, wan_unavailable

        reason = wan_unavailable(wan_model, local_files_only, cache_dir)
        if reason is None:
            loaded.wan = WanModel(wan_model, device=device, dtype=torch_dtype, cpu_offload=cpu_offload,
                                  local_files_only=local_files_only, cache_dir=cache_dir)
        else:
            loaded.models["wan_unavailable"] = reason
    if torch_compile:
        from .speedups import compile_models

        compile_models(loaded)
        loaded.compiled = True
    return loaded
