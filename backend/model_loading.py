"""The models ``serve`` loads, as a value: what to load and how, called to load it.

A ``ModelLoad`` is plain data, so the same one loads the models in the serving process or, for a
scaled-out backend (backend/scale), once in each generator replica's process.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .families import SD15, SDXL
from .model_set import read_model_set, write_model_set


@dataclass(frozen=True)
class ModelLoad:
    chosen: dict  # load_models' model keyword arguments (cli.resolve_models)
    model_config: str | None = None
    controlnet_config: str | None = None
    options: dict = field(default_factory=dict)  # device, dtype, cpu_offload, torch_compile
    fallback_tiny_model: str | None = None  # serve the tiny set from here when the models cannot be had
    family: str = SD15  # the family asked for: its tiny set is the fallback

    def __call__(self):
        """The backend.models.LoadedModels."""
        from .models import ModelNotAvailableError, load_models

        try:
            return load_models(
                **self.chosen, model_config=self.model_config, controlnet_config=self.controlnet_config, **self.options
            )
        except ModelNotAvailableError as exc:
            if not self.fallback_tiny_model:
                raise
            print(f"posebridge-backend: {exc}", file=sys.stderr)
            return load_tiny_fallback(self.fallback_tiny_model, self.options, self.family)


def load_tiny_fallback(directory, options: dict, family: str = SD15):
    """The tiny set of ``family`` in ``directory`` (SDXL's in its ``sdxl`` subfolder; written
    first when absent), loaded with ``options``; its models are marked ``"fallback": "tiny"`` so
    /health tells clients what they are getting."""
    from .models import load_models

    directory = os.path.join(directory, SDXL) if family == SDXL else directory
    model_set = read_model_set(directory) if os.path.isdir(directory) else None
    wanted = (model_set.motion_adapter, model_set.ip_adapter, model_set.preview_lora) if model_set else ()
    if family == SD15 and model_set is not None:
        wanted += (model_set.wan_vace,)
    complete = model_set is not None and None not in wanted
    if not complete:  # absent, or written before the set had its adapters
        (write_tiny_sdxl_set if family == SDXL else write_tiny_model_set)(directory)
        model_set = read_model_set(directory)
    print(f"posebridge-backend: serving the tiny random-weight {family} model set from {directory} instead",
          file=sys.stderr, flush=True)
    pipe = load_models(model_set.base, model_set.openpose, model_set.depth, local_files_only=True,
                       motion_adapter=model_set.motion_adapter, ip_adapter=model_set.ip_adapter,
                       wan_model=model_set.wan_vace, union_controlnet=model_set.union,
                       preview_lora=model_set.preview_lora, **options)
    pipe.models["fallback"] = "tiny"
    return pipe


def _relative(root: Path):
    return lambda path: path.relative_to(root).as_posix()


def write_tiny_model_set(directory) -> Path:
    """make_tiny_model and make_tiny_wan, plus the posebridge-models.json naming their folders."""
    from .tiny_model import make_tiny_model
    from .tiny_wan import make_tiny_wan

    paths = make_tiny_model(directory)
    wan = make_tiny_wan(paths.root / "wan-vace")
    preview = _tiny_preview_lora(paths, "StableDiffusionPipeline")
    rel = _relative(paths.root)
    return write_model_set(
        paths.root, rel(paths.base), rel(paths.openpose), rel(paths.depth),
        motion_adapter=rel(paths.motion_adapter), ip_adapter=rel(paths.ip_adapter), wan_vace=rel(wan),
        preview_lora=rel(preview),
    )


def _tiny_preview_lora(paths, pipeline_class: str) -> Path:
    """A random LoRA for the tiny UNet, the tiny set's fast-preview LoRA (backend/tiny_lora.py)."""
    import diffusers

    from .tiny_lora import write_random_lora

    unet = diffusers.UNet2DConditionModel.from_pretrained(paths.base / "unet")
    return write_random_lora(getattr(diffusers, pipeline_class), unet, paths.root / "preview-lora.safetensors", 500)


def write_tiny_sdxl_set(directory) -> Path:
    """make_tiny_sdxl, plus the posebridge-models.json naming its folders (the separate pose and
    depth ControlNets, motion adapter, IP-Adapter and preview LoRA; its ControlNet-Union is in
    controlnet-union/, for --union-controlnet)."""
    from .tiny_sdxl import make_tiny_sdxl

    paths = make_tiny_sdxl(directory)
    preview = _tiny_preview_lora(paths, "StableDiffusionXLPipeline")
    rel = _relative(paths.root)
    return write_model_set(paths.root, rel(paths.base), rel(paths.openpose), rel(paths.depth),
                           motion_adapter=rel(paths.motion_adapter), ip_adapter=rel(paths.ip_adapter),
                           preview_lora=rel(preview))
