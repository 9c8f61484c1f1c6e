"""Per-frame ControlNet generation: pose (and depth) frames in, generated frames out.

    from backend.pipeline import GenerateParams, generate, load_pipeline

    pipe = load_pipeline("stable-diffusion-v1-5/stable-diffusion-v1-5",
                         "lllyasviel/control_v11p_sd15_openpose",
                         "lllyasviel/control_v11f1p_sd15_depth")
    for index, frame in enumerate(generate(pipe, poses, depths, GenerateParams(prompt="a dancer"))):
        ...

Images: every frame given to ``generate`` is a ``PIL.Image.Image`` or a uint8 numpy array of
shape (H, W, 3) (RGB; (H, W) grey and (H, W, 4) RGBA are accepted too, alpha is dropped). Every
frame ``generate`` yields is a uint8 numpy array of shape (H, W, 3), RGB.

Models come through diffusers' ``from_pretrained``: a hub id (from the user's HF cache, or
downloaded when the network is allowed), a local folder in diffusers format, or ``cache_dir``.
A model that cannot be had (offline and not cached, or no such folder) raises
``ModelNotAvailableError`` (a ValueError) naming it.

Flicker: every frame starts from the same initial latent noise (drawn once from ``seed``), and the
scheduler is deterministic, so frames differ only where their control images do. Several frames
go through the UNet in one call (``GenerateParams.batch``); a frame's result does not depend on
the batch it was in (up to floating point).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_POSE_CONTROLNET = "lllyasviel/control_v11p_sd15_openpose"
DEFAULT_DEPTH_CONTROLNET = "lllyasviel/control_v11f1p_sd15_depth"

DEVICES = ("auto", "cuda", "mps", "cpu")
DTYPES = ("auto", "fp16", "bf16", "fp32")


class GenerationCancelled(Exception):
    """Raised by ``generate`` when its ``should_stop`` answered True at a denoising step."""


class _StopAtStep(Exception):
    """Raised inside diffusers' step callback to leave the denoising loop at once (setting
    ``pipe._interrupt`` would still run the remaining loop turns and the VAE decode)."""


class ModelNotAvailableError(ValueError):
    """A model (hub id or folder) that cannot be loaded from here: names it and says why."""

    def __init__(self, model: str, reason: str):
        self.model = model
        self.reason = reason
        super().__init__(f"model {model!r} is not available: {reason}")


@dataclass
class GenerateParams:
    """What one generation asks for. ``validate()`` raises ValueError naming a bad field.

    width/height: the output size; None takes the control frames' size. Control frames of
    another size are resized to it. Both must be multiples of 8.
    pose_scale/depth_scale: ControlNet conditioning scales. control_start/control_end: the
    fraction of the denoising steps during which the ControlNets act; depth_start/depth_end give
    the depth ControlNet a window of its own (None: the same as control_start/control_end).
    batch: frames per UNet call.
    """

    prompt: str = ""
    negative: str = ""
    seed: int = 0
    steps: int = 20
    guidance: float = 7.5
    pose_scale: float = 1.0
    depth_scale: float = 1.0
    control_start: float = 0.0
    control_end: float = 1.0
    depth_start: float | None = None
    depth_end: float | None = None
    batch: int = 1
    width: int | None = None
    height: int | None = None

    @property
    def depth_window(self) -> tuple[float, float]:
        """(start, end) of the depth ControlNet: its own, or the shared control window."""
        start = self.control_start if self.depth_start is None else self.depth_start
        end = self.control_end if self.depth_end is None else self.depth_end
        return start, end

    def validate(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be an integer >= 1 (got {self.steps!r})")
        if not isinstance(self.batch, int) or self.batch < 1:
            raise ValueError(f"batch must be an integer >= 1 (got {self.batch!r})")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be an integer in [0, 2**63) (got {self.seed!r})")
        if not 0.0 <= self.control_start < self.control_end <= 1.0:
            raise ValueError(
                "control_start and control_end must satisfy 0 <= control_start < control_end <= 1"
                f" (got {self.control_start!r}, {self.control_end!r})"
            )
        start, end = self.depth_window
        if not 0.0 <= start < end <= 1.0:
            raise ValueError(
                "depth_start and depth_end must satisfy 0 <= depth_start < depth_end <= 1"
                f" (got {start!r}, {end!r})"
            )
        for name in ("guidance", "pose_scale", "depth_scale"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0 (got {value!r})")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 8 or value % 8):
                raise ValueError(f"{name} must be a positive multiple of 8 (got {value!r})")


@dataclass
class ControlNetPipeline:
    """A loaded base model with its pose ControlNet (and depth ControlNet), kept warm.

    ``pose_pipe`` runs pose alone; ``pose_depth_pipe`` (None without a depth ControlNet) runs
    both as a MultiControlNetModel. Both share every module, so the weights are in memory once.
    """

    pose_pipe: Any
    pose_depth_pipe: Any | None
    device: str
    dtype: Any
    models: dict = field(default_factory=dict)

    @property
    def has_depth(self) -> bool:
        return self.pose_depth_pipe is not None

    @property
    def vae_scale_factor(self) -> int:
        return int(self.pose_pipe.vae_scale_factor)


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


def load_pipeline(
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
) -> ControlNetPipeline:
    """Load the base model and its ControlNets once; return them ready on the device.

    model, pose_controlnet, depth_controlnet: hub ids or local folders (diffusers format);
    depth_controlnet None loads pose only. local_files_only: None follows HF_HUB_OFFLINE (read at
    call time); True never touches the network. cpu_offload: keep modules on the CPU and move
    each to the GPU while it runs (small GPUs; cuda only; needs accelerate).

    Any of the three may be a single-file checkpoint (``.safetensors``/``.ckpt``), loaded with
    diffusers' from_single_file; model_config / controlnet_config then name a diffusers-format
    folder (or hub id) holding its configuration, which offline use needs.
    """
    from diffusers import ControlNetModel, MultiControlNetModel, StableDiffusionControlNetPipeline
    from diffusers.models.attention_processor import AttnProcessor2_0

    device = pick_device(device)
    torch_dtype = pick_dtype(dtype, device)
    if local_files_only is None:
        local_files_only = _offline_from_env()
    if cpu_offload and device != "cuda":
        raise ValueError("cpu_offload needs a cuda device")
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

    pipes = [p for p in (pose_pipe, pose_depth_pipe) if p is not None]
    for pipe in pipes:
        pipe.set_progress_bar_config(disable=True)
    if cpu_offload:
        for pipe in pipes:
            pipe.enable_model_cpu_offload()
    else:
        for pipe in pipes:
            pipe.to(device)
    return ControlNetPipeline(
        pose_pipe=pose_pipe,
        pose_depth_pipe=pose_depth_pipe,
        device=device,
        dtype=torch_dtype,
        models={"model": model, "pose_controlnet": pose_controlnet, "depth_controlnet": depth_controlnet},
    )


# --- frames -------------------------------------------------------------------------------------


# Pillow's modes for 16-bit grey PNGs (16-bit depth maps); convert("RGB") would clip them at 255.
_WIDE_GREY_MODES = ("I;16", "I;16B", "I;16L", "I")


def rgb8(image):
    """A PIL image as 8-bit RGB; 16-bit grey keeps its top 8 bits instead of being clipped."""
    from PIL import Image

    if image.mode in _WIDE_GREY_MODES:
        grey = (np.asarray(image, dtype=np.uint32) >> 8).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    return image.convert("RGB")


def _to_pil(frame, what: str, index: int):
    from PIL import Image

    if isinstance(frame, Image.Image):
        return rgb8(frame)
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"{what} frame {index} is not an image (got {type(frame).__name__})")
    if frame.dtype != np.uint8:
        raise ValueError(f"{what} frame {index} must be uint8 (got {frame.dtype})")
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4) or 0 in frame.shape[:2]:
        raise ValueError(f"{what} frame {index} must have shape (H, W, 3) (got {frame.shape})")
    return Image.fromarray(np.ascontiguousarray(frame[:, :, :3]), "RGB")


def _frames_to_pil(frames: Iterable, what: str) -> list:
    if frames is None:
        raise ValueError(f"no {what} frames given")
    images = [_to_pil(f, what, i) for i, f in enumerate(frames)]
    if not images:
        raise ValueError(f"no {what} frames given (empty list)")
    sizes = {im.size for im in images}
    if len(sizes) > 1:
        raise ValueError(f"{what} frames differ in size: {sorted(sizes)} (width, height)")
    return images


def initial_noise(params: GenerateParams, width: int, height: int, vae_scale_factor: int, channels: int = 4):
    """The one latent noise every frame starts from, drawn on the CPU from params.seed (so the
    same seed gives the same noise on every device)."""
    import torch

    generator = torch.Generator("cpu").manual_seed(params.seed)
    shape = (1, channels, height // vae_scale_factor, width // vae_scale_factor)
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def generate(
    pipe: ControlNetPipeline,
    pose_frames: Sequence,
    depth_frames: Sequence | None = None,
    params: GenerateParams | None = None,
    on_frame: Callable[[int, np.ndarray], Any] | None = None,
    on_step: Callable[[int, int, int, int], Any] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[np.ndarray]:
    """Generate one frame per pose frame; yield them (uint8 (H, W, 3)) in order as they finish.

    depth_frames: None, or as many frames as pose_frames, of the same size; needs a pipeline
    loaded with a depth ControlNet. on_frame(index, frame) is called for every frame before it is
    yielded. Input is checked before anything runs: bad input raises ValueError naming the
    problem here, not on the first next(). Stop iterating to stop between batches.

    on_step(first, count, done, steps) is called after every denoising step of a batch: frames
    first..first+count-1 have done ``done`` of ``steps`` steps. should_stop() is asked after
    every step; True ends the run there: GenerationCancelled is raised (frames already yielded
    stay yielded).
    """
    params = params or GenerateParams()
    params.validate()
    poses = _frames_to_pil(pose_frames, "pose")
    depths = None
    if depth_frames is not None:
        if not pipe.has_depth:
            raise ValueError("depth frames given, but the pipeline was loaded without a depth ControlNet")
        depths = _frames_to_pil(depth_frames, "depth")
        if len(depths) != len(poses):
            raise ValueError(f"pose/depth frame count mismatch: {len(poses)} pose, {len(depths)} depth")
        if depths[0].size != poses[0].size:
            raise ValueError(
                f"pose/depth size mismatch: pose frames are {poses[0].size[0]}x{poses[0].size[1]},"
                f" depth frames {depths[0].size[0]}x{depths[0].size[1]}"
            )
    width = params.width or poses[0].size[0]
    height = params.height or poses[0].size[1]
    if width % 8 or height % 8:
        raise ValueError(f"frame size must be a multiple of 8 (got {width}x{height}); set width/height")
    return _run(pipe, poses, depths, params, width, height, on_frame, on_step, should_stop)


def _step_callback(first: int, count: int, steps: int, on_step, should_stop):
    """diffusers' callback_on_step_end for one batch: report the step, stop when asked."""

    def callback(diffusers_pipe, step_index, timestep, callback_kwargs):
        if on_step is not None:
            # The scheduler's own step count: a second-order scheduler runs more than ``steps``.
            total = getattr(diffusers_pipe, "num_timesteps", None) or steps
            on_step(first, count, min(step_index + 1, total), total)
        if should_stop is not None and should_stop():
            raise _StopAtStep
        return callback_kwargs

    return callback


def _run(pipe, poses, depths, params, width, height, on_frame, on_step, should_stop) -> Iterator[np.ndarray]:
    import torch

    from .control_cache import fresh_conditioning

    diffusers_pipe = pipe.pose_pipe if depths is None else pipe.pose_depth_pipe
    channels = diffusers_pipe.unet.config.in_channels
    noise = initial_noise(params, width, height, pipe.vae_scale_factor, channels)
    if depths is None:
        extra = dict(
            controlnet_conditioning_scale=float(params.pose_scale),
            control_guidance_start=float(params.control_start),
            control_guidance_end=float(params.control_end),
        )
    else:
        extra = dict(
            controlnet_conditioning_scale=[float(params.pose_scale), float(params.depth_scale)],
            control_guidance_start=[float(params.control_start), float(params.depth_window[0])],
            control_guidance_end=[float(params.control_end), float(params.depth_window[1])],
        )
    for start in range(0, len(poses), params.batch):
        chunk = poses[start : start + params.batch]
        n = len(chunk)
        # One control image per frame; with depth, diffusers' nested form: [[pose, depth], ...].
        image = chunk if depths is None else [[p, d] for p, d in zip(chunk, depths[start : start + n])]
        latents = noise.expand(n, -1, -1, -1).to(device=pipe.device, dtype=pipe.dtype)
        hooked = on_step is not None or should_stop is not None
        callback = _step_callback(start, n, params.steps, on_step, should_stop) if hooked else None
        try:
            with torch.inference_mode(), fresh_conditioning(diffusers_pipe.controlnet):
                out = diffusers_pipe(
                    prompt=[params.prompt] * n,
                    negative_prompt=[params.negative] * n,
                    image=image,
                    height=height,
                    width=width,
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
        except _StopAtStep:
            raise GenerationCancelled("generation cancelled at a denoising step") from None
        frames = (np.clip(out.images, 0.0, 1.0) * 255.0).round().astype(np.uint8)
        for offset, frame in enumerate(frames):
            if on_frame is not None:
                on_frame(start + offset, frame)
            yield frame
