"""What the base pipeline is extended with, once its models are loaded: the AnimateDiff
motion pipeline (sharing the base UNet's spatial weights) and the IP-Adapter (its image encoder
loaded once and shared). backend.models.load_models calls these."""

from __future__ import annotations

import os

from .model_files import ModelNotAvailableError, from_pretrained, looks_like_path



def motion_scheduler(base_scheduler):
    """The scheduler AnimateDiff was trained with, from the base model's own scheduler config:
    DDIM with linear betas and no sample clipping (the motion modules were trained on linear
    betas; SD1.5's "scaled_linear" gives washed-out, flickering motion)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(
        base_scheduler.config,
        beta_schedule="linear",
        clip_sample=False,
        timestep_spacing="linspace",
        steps_offset=1,
    )


def motion_pipeline(pose_pipe, name: str, common: dict):
    """An AnimateDiff pipeline (SDXL's for an SDXL base) over the base pipeline's components and
    the motion adapter."""
    from diffusers import AnimateDiffPipeline, AnimateDiffSDXLPipeline, MotionAdapter

    adapter = from_pretrained(MotionAdapter, name, **common)
    from .pipelines.conditioning import is_sdxl

    cls = AnimateDiffSDXLPipeline if is_sdxl(pose_pipe) else AnimateDiffPipeline
    # dtype: from_pipe casts the whole new pipeline, the shared VAE and text encoder included,
    # to float32 unless told otherwise.
    motion_pipe = cls.from_pipe(
        pose_pipe, motion_adapter=adapter, scheduler=motion_scheduler(pose_pipe.scheduler), dtype=common["dtype"]
    )
    share_spatial_weights(motion_pipe.unet, pose_pipe.unet)
    return motion_pipe


def share_spatial_weights(motion_unet, unet) -> int:
    """Point every parameter of ``motion_unet`` that ``unet`` has too (same name, same shape:
    everything but the motion modules) at ``unet``'s own tensor; return how many were shared.

    diffusers builds the motion UNet by copying the base UNet's weights; sharing them instead
    saves the base UNet's size in memory (1.7 GB in fp16 for SD1.5). Both UNets are only read.
    """
    source = dict(unet.named_parameters())
    shared = 0
    for name, param in list(motion_unet.named_parameters()):
        twin = source.get(name)
        if twin is None or twin.shape != param.shape or twin is param:
            continue
        owner, _, attribute = name.rpartition(".")
        setattr(motion_unet.get_submodule(owner), attribute, twin)
        shared += 1
    return shared


def load_ip_adapter(pipes: list, name: str, common: dict, family) -> None:
    """Load the IP-Adapter into each pipeline's UNet; the image encoder once, shared. family: a
    backend.families.Family, saying where in the repository its family's weights sit (as in
    h94/IP-Adapter, and in the tiny sets, laid out alike)."""
    from huggingface_hub.errors import HfHubHTTPError

    path = os.path.expanduser(name)
    if looks_like_path(name) and not os.path.isdir(path):
        raise ModelNotAvailableError(name, f"no such folder: {path}")
    source = path if os.path.isdir(path) else name
    first = None
    for pipe in pipes:
        if pipe is None:
            continue
        try:
            pipe.load_ip_adapter(
                source,
                subfolder=family.ip_adapter_subfolder,
                weight_name=family.ip_adapter_weights,
                image_encoder_folder=family.ip_adapter_image_encoder if first is None else None,
                local_files_only=common["local_files_only"],
                cache_dir=common["cache_dir"],
                torch_dtype=common["dtype"],
            )
        except (OSError, HfHubHTTPError) as exc:
            raise ModelNotAvailableError(
                name,
                f"its {family.ip_adapter_subfolder}/{family.ip_adapter_weights} and its image encoder"
                f" ({family.ip_adapter_image_encoder}) could not be loaded (offline and not cached?); download it"
                f" once (`hf download {name}`) or pass a local folder laid out alike, or"
                f" --ip-adapter none. ({type(exc).__name__}: {exc})",
            ) from exc
        if first is None:
            first = pipe
        else:
            pipe.register_modules(image_encoder=first.image_encoder, feature_extractor=first.feature_extractor)
