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

from .families import FAMILY_SPECS, SD15, SDXL, UnreadableCheckpointError, family_spec, model_family, pipeline_classes
from .loras import LoraSet
from .model_files import (
    check_controlnet_family,
    from_pretrained,
    from_single_file,
    is_single_file,
    load_controlnet,
    load_union_controlnet,
    offline_from_env,
)
from .pipelines.base import ANIMATEDIFF, FRAMES, WAN_VACE, ModelNotAvailableError
from .preview import PREVIEW_STEPS, PreviewSetup, preview_unavailable

# SD1.5's, the family served when none is asked for (backend.families has SDXL's).
DEFAULT_MODEL = FAMILY_SPECS[SD15].model
DEFAULT_POSE_CONTROLNET = FAMILY_SPECS[SD15].pose_controlnet
DEFAULT_DEPTH_CONTROLNET = FAMILY_SPECS[SD15].depth_controlnet
DEFAULT_MOTION_ADAPTER = FAMILY_SPECS[SD15].motion_adapter
DEFAULT_IP_ADAPTER = FAMILY_SPECS[SD15].ip_adapter

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

    ``family``: "sd15" or "sdxl". ``union``: one ControlNet-Union takes pose and depth (SDXL):
    ``pose_depth_pipe`` is then ``pose_pipe`` itself and ``controlnets`` is [union].
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
    family: str = SD15
    union: bool = False
    preview: PreviewSetup | None = None  # the fast preview (backend.preview), None: none
    preview_unavailable: str | None = None  # why not, when one was asked for
    preview_pipes: dict = field(default_factory=dict)  # id(final pipeline) -> its LCM twin

    @property
    def has_depth(self) -> bool:
        return self.pose_depth_pipe is not None

    @property
    def controlnets(self) -> list:
        """[pose], [pose, depth] or [union]."""
        if self.pose_depth_pipe is None or self.union:
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

    @property
    def pose_style(self) -> str:
        """The line widths the pose maps should be drawn with (draw.pose_map.SCALINGS)."""
        return family_spec(self.family).pose_style

    def diffusers_pipes(self) -> list:
        """Each pipeline once (a union's pose and pose+depth pipelines are one)."""
        pipes = (self.pose_pipe, self.pose_depth_pipe, self.motion_pipe)
        return list({id(p): p for p in pipes if p is not None}.values())


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


def _detected_family(model: str, local_files_only: bool, cache_dir) -> str:
    try:
        return model_family(model, local_files_only=local_files_only, cache_dir=cache_dir) or SD15
    except UnreadableCheckpointError:
        return SD15  # loading the file says what is wrong with it


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
    family: str | None = None,
    union_controlnet: str | None = None,
    preview_lora: str | None = None,
    preview_steps: int = PREVIEW_STEPS,
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

    family: "sd15" or "sdxl" (backend.families); None reads it from the base model's files (SD1.5
    when they do not say). The ControlNets must be of the same family (ValueError naming both).
    union_controlnet: an SDXL ControlNet-Union (hub id or folder) taking the pose and the depth
    images itself, instead of pose_controlnet and depth_controlnet.

    preview_lora: the fast preview's few-step LoRA (file or hub id; backend.preview), loaded on the
    first preview job, run with preview_steps LCM steps; left out (``preview_unavailable`` says
    why) when it cannot be had from here. None: no preview.
    """
    from diffusers.models.attention_processor import AttnProcessor2_0

    from .adapters import load_ip_adapter, motion_pipeline
    from .control_cache import cache_conditioning

    device = pick_device(device)
    torch_dtype = pick_dtype(dtype, device)
    if local_files_only is None:
        local_files_only = offline_from_env()
    if cpu_offload and device != "cuda":
        raise ValueError("cpu_offload needs a cuda device")
    if cpu_offload and torch_compile:
        raise ValueError("torch_compile does not go with cpu_offload")
    if motion_adapter and union_controlnet:  # before anything is loaded
        raise ValueError("the animatediff pipeline runs separate pose and depth ControlNets, not a"
                         " ControlNet-Union (serve --motion-adapter none, or without --union-controlnet)")
    common = dict(local_files_only=local_files_only, cache_dir=cache_dir, dtype=torch_dtype)
    family = family_spec(family or _detected_family(model, local_files_only, cache_dir))
    classes = pipeline_classes(family.name, union=bool(union_controlnet))

    if union_controlnet:
        check_controlnet_family(union_controlnet, family.name, union=True, **common)
        pose, depth = load_union_controlnet(union_controlnet, **common), None
        pose_controlnet = depth_controlnet = None
    else:
        check_controlnet_family(pose_controlnet, family.name, union=False, **common)
        pose = load_controlnet(classes.controlnet, pose_controlnet, controlnet_config, family.name, **common)
        depth = None
        if depth_controlnet:
            check_controlnet_family(depth_controlnet, family.name, union=False, **common)
            depth = load_controlnet(classes.controlnet, depth_controlnet, controlnet_config, family.name, **common)
    if is_single_file(model):
        pose_pipe = from_single_file(
            classes.pipeline, model, config=model_config, family=family.name, controlnet=pose, **classes.extra, **common
        )
    else:
        pose_pipe = from_pretrained(classes.pipeline, model, controlnet=pose, **classes.extra, **common)
    loaded_family = SDXL if pose_pipe.unet.config.get("addition_embed_type") == "text_time" else SD15
    if loaded_family != family.name:  # a family given that the weights contradict
        raise ValueError(f"{model} is an {loaded_family} model, but it was loaded as {family.name}"
                         f" (serve --family {loaded_family}, or auto)")
    # SDPA (torch's fused scaled_dot_product_attention) everywhere; diffusers' default on torch 2,
    # set explicitly so a model saved with another processor does not bring it back.
    for module in (pose_pipe.unet, pose, depth):
        if module is not None:
            module.set_attn_processor(AttnProcessor2_0())
    # Each control image is embedded once per call instead of at every step (control_cache.py).
    for controlnet in (pose, depth):
        if controlnet is not None:
            cache_conditioning(controlnet)

    pose_depth_pipe = pose_pipe if union_controlnet else None  # the union takes both images
    if depth is not None:
        from diffusers import MultiControlNetModel

        components = dict(pose_pipe.components)
        components["controlnet"] = MultiControlNetModel([pose, depth])
        pose_depth_pipe = classes.pipeline(**components, **classes.rebuild_extra)

    motion_pipe = None
    if motion_adapter:
        motion_pipe = motion_pipeline(pose_pipe, motion_adapter, common)
    if ip_adapter:
        load_ip_adapter([pose_pipe, motion_pipe], ip_adapter, common, family)
        # The same UNet; the encoder is registered for its helpers (a union's pipe is pose_pipe).
        if pose_depth_pipe is not None and pose_depth_pipe is not pose_pipe:
            pose_depth_pipe.register_modules(
                image_encoder=pose_pipe.image_encoder, feature_extractor=pose_pipe.feature_extractor
            )

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
        family=family.name,
        union=bool(union_controlnet),
    )
    for pipe in loaded.diffusers_pipes():
        pipe.set_progress_bar_config(disable=True)
        if cpu_offload:
            pipe.enable_model_cpu_offload()
        else:
            pipe.to(device)
    if preview_lora:
        loaded.preview_unavailable = preview_unavailable(preview_lora, local_files_only, cache_dir)
        if loaded.preview_unavailable is None:
            loaded.preview = PreviewSetup(preview_lora, steps=preview_steps)
    if union_controlnet:  # named only when there is one: earlier jobs' settings stay the same
        loaded.models["union_controlnet"] = union_controlnet
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
