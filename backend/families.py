"""Model families: SD1.5 and SDXL, what each loads by default, and which one a model is.

A family decides the pipeline classes, the default ControlNets and IP-Adapter, and how wide the
pose maps' sticks are drawn (xinsir's SDXL openpose models were trained on wider limbs than
lllyasviel's SD1.5 one); the client picks SDXL's sizes (generate/families.py). The family of a model is read from its
files, never guessed from its name: a diffusers folder's ``model_index.json`` (or the UNet's
config), a single-file checkpoint's tensor names (only the names: nothing is loaded).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

SD15, SDXL = "sd15", "sdxl"
FAMILIES = (SD15, SDXL)


@dataclass(frozen=True)
class Family:
    name: str
    model: str
    pose_controlnet: str
    depth_controlnet: str
    motion_adapter: str  # the AnimateDiff motion adapter of the family
    ip_adapter: str
    ip_adapter_subfolder: str
    ip_adapter_weights: str
    ip_adapter_image_encoder: str  # relative to the repository when it holds a "/"
    pose_style: str  # draw.pose_map.SCALINGS: the line widths its openpose ControlNet learned


FAMILY_SPECS = {
    SD15: Family(
        SD15,
        model="stable-diffusion-v1-5/stable-diffusion-v1-5",
        pose_controlnet="lllyasviel/control_v11p_sd15_openpose",
        depth_controlnet="lllyasviel/control_v11f1p_sd15_depth",
        motion_adapter="guoyww/animatediff-motion-adapter-v1-5-3",
        ip_adapter="h94/IP-Adapter",
        ip_adapter_subfolder="models",
        ip_adapter_weights="ip-adapter_sd15.safetensors",
        ip_adapter_image_encoder="image_encoder",
        pose_style="controlnet",
    ),
    SDXL: Family(
        SDXL,
        model="stabilityai/stable-diffusion-xl-base-1.0",
        pose_controlnet="xinsir/controlnet-openpose-sdxl-1.0",
        depth_controlnet="diffusers/controlnet-depth-sdxl-1.0",
        motion_adapter="guoyww/animatediff-motion-adapter-sdxl-beta",
        ip_adapter="h94/IP-Adapter",
        ip_adapter_subfolder="sdxl_models",
        # The ViT-H variant: the same image encoder as SD1.5's (models/image_encoder).
        ip_adapter_weights="ip-adapter_sdxl_vit-h.safetensors",
        ip_adapter_image_encoder="models/image_encoder",
        pose_style="xinsir",
    ),
}
DEFAULT_UNION_CONTROLNET = "xinsir/controlnet-union-sdxl-1.0"

def family_spec(name: str) -> Family:
    try:
        return FAMILY_SPECS[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r} (known: {', '.join(FAMILIES)})") from None


# --- which family a model is ------------------------------------------------------------------


def _read_json(path: Path) -> dict | None:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def folder_family(folder: str | os.PathLike) -> str | None:
    """The family of a diffusers-format base model folder, or None when it says nothing."""
    folder = Path(folder)
    index = _read_json(folder / "model_index.json")
    if index is not None:
        text_encoder_2 = index.get("text_encoder_2")
        if str(index.get("_class_name", "")).startswith("StableDiffusionXL") or (
            isinstance(text_encoder_2, list) and text_encoder_2[0] is not None
        ):
            return SDXL
    unet = _read_json(folder / "unet" / "config.json")
    if unet is not None:
        return SDXL if unet.get("addition_embed_type") == "text_time" else SD15
    return SD15 if index is not None else None


def controlnet_kind(folder: str | os.PathLike) -> tuple[str, bool] | None:
    """(family, is_union) of a diffusers-format ControlNet folder, or None when it has no config."""
    config = _read_json(Path(folder) / "config.json")
    if config is None:
        return None
    # xinsir's own config may name the class ControlNetModel: the control types tell a union.
    union = config.get("_class_name") == "ControlNetUnionModel" or "num_control_type" in config
    family = SDXL if union or config.get("addition_embed_type") == "text_time" else SD15
    return family, union


# Tensor names only an SDXL checkpoint in the original (Stability) layout has: the second text
# encoder (OpenCLIP) under conditioner.embedders.1, the UNet's size/crop embedding as label_emb.
_SDXL_KEYS = ("conditioner.embedders.1.model.", "model.diffusion_model.label_emb.")
_SD15_KEYS = ("cond_stage_model.transformer.", "cond_stage_model.model.")
_DIFFUSERS_UNET_SDXL = "add_embedding.linear_1.weight"


class UnreadableCheckpointError(ValueError):
    """A single-file checkpoint whose tensor names cannot be read."""


def checkpoint_keys(path: str | os.PathLike) -> list[str]:
    """The tensor names of a single-file checkpoint, without loading its tensors (a .ckpt is
    memory-mapped, never unpickled beyond plain tensors)."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                return list(handle.keys())
        import torch

        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # safetensors' and torch's errors share no base but Exception
        raise UnreadableCheckpointError(f"{path} is not a readable checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict):
        raise UnreadableCheckpointError(f"{path} holds no tensors by name")
    state = state.get("state_dict", state)
    return list(state) if isinstance(state, dict) else []


def checkpoint_family(path: str | os.PathLike) -> str | None:
    """The family of a single-file base model checkpoint (.safetensors or .ckpt), read from its
    tensor names, or None when they are neither family's (not a Stable Diffusion checkpoint)."""
    return family_of_keys(checkpoint_keys(path))


def family_of_keys(keys) -> str | None:
    keys = list(keys)
    if any(k.startswith(_SDXL_KEYS) for k in keys):
        return SDXL
    if any(k.startswith(_SD15_KEYS) for k in keys):
        return SD15
    if any(k.startswith("model.diffusion_model.") for k in keys):  # a UNet alone
        return SD15
    if _DIFFUSERS_UNET_SDXL in keys:  # a diffusers UNet saved as one file
        return SDXL
    return None


def hub_file(repo: str, filename: str, *, local_files_only: bool = True, cache_dir=None) -> Path | None:
    """A file of a Hugging Face repository from the user's cache (downloaded only when
    ``local_files_only`` is False), or None when it cannot be had from here."""
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo, filename, local_files_only=local_files_only, cache_dir=cache_dir))
    except (OSError, ValueError):  # not cached (LocalEntryNotFoundError), not a repository id
        return None


def model_family(model: str, *, local_files_only: bool = True, cache_dir=None) -> str | None:
    """The family of a base model given as a folder, a single file or a hub id (its
    model_index.json from the user's Hugging Face cache, or the hub when ``local_files_only`` is
    False). None when it cannot be told from here: the caller decides."""
    path = Path(os.path.expanduser(model))
    if path.is_dir():
        return folder_family(path)
    if path.is_file():
        return checkpoint_family(path)
    index = hub_file(model, "model_index.json", local_files_only=local_files_only, cache_dir=cache_dir)
    return None if index is None else folder_family(index.parent)


# --- the diffusers classes of a family ---------------------------------------------------------


@dataclass(frozen=True)
class PipelineClasses:
    pipeline: type  # the ControlNet pipeline class
    controlnet: type | None  # the ControlNet class of pose/depth (None for a union)
    extra: dict  # from_pretrained keyword arguments beyond the components
    rebuild_extra: dict  # constructor keyword arguments when built from another's components


def pipeline_classes(family: str, union: bool = False) -> PipelineClasses:
    """The diffusers classes that run ``family``'s frames with ControlNet(s)."""
    import diffusers

    if family == SD15:
        if union:
            raise ValueError("a ControlNet-Union is an SDXL model: the base model is SD1.5")
        no_checker = dict(requires_safety_checker=False)
        return PipelineClasses(diffusers.StableDiffusionControlNetPipeline, diffusers.ControlNetModel,
                               dict(safety_checker=None, feature_extractor=None, **no_checker), no_checker)
    family_spec(family)
    # No invisible watermark: the frames are an animator's working material, and its package
    # is not a dependency.
    no_mark = dict(add_watermarker=False)
    if union:
        return PipelineClasses(diffusers.StableDiffusionXLControlNetUnionPipeline, None, no_mark, no_mark)
    return PipelineClasses(diffusers.StableDiffusionXLControlNetPipeline, diffusers.ControlNetModel, no_mark,
                           no_mark)
