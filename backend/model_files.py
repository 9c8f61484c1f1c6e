"""Getting one model from where the user keeps it: a hub id (the user's Hugging Face cache, or
the hub where the network is allowed), a local diffusers folder, or a single-file checkpoint.
Whatever cannot be had raises ModelNotAvailableError naming the model and what to do."""

from __future__ import annotations

import os
from pathlib import Path

from .families import SD15, controlnet_kind, hub_file
from .pipelines.base import ModelNotAvailableError

def offline_from_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def looks_like_path(name: str) -> bool:
    return os.path.isabs(name) or name.startswith((".", "~"))


def from_pretrained(cls, name: str, *, local_files_only: bool, cache_dir, dtype, **kwargs):
    """cls.from_pretrained(name) with unavailability turned into ModelNotAvailableError."""
    from huggingface_hub.errors import HfHubHTTPError

    path = os.path.expanduser(name)
    if looks_like_path(name) and not os.path.isdir(path):
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


def from_single_file(cls, name: str, *, config, local_files_only: bool, cache_dir, dtype, family: str = SD15,
                     flag: str = "--model-config", **kwargs):
    """cls.from_single_file(name) with a missing file or configuration turned into
    ModelNotAvailableError. config: a diffusers-format folder (or hub id) of the same
    architecture, which diffusers reads the model's configuration from; None takes ``family``'s
    from the user's HF cache or PoseBridge's bundled one (backend/single_file_config.py), never
    from the network. flag: the serve flag that names the configuration, for the messages."""
    from huggingface_hub.errors import HfHubHTTPError

    from . import single_file_config

    path = os.path.expanduser(name)
    if not os.path.isfile(path):
        raise ModelNotAvailableError(name, f"no such checkpoint file: {path}")
    where = "given"
    if config is not None:
        config = os.path.expanduser(config) if looks_like_path(config) else config
        if looks_like_path(config) and not os.path.isdir(config):
            raise ModelNotAvailableError(name, f"its configuration folder does not exist: {config}")
    else:
        resolve = single_file_config.controlnet_config if flag == "--controlnet-config" else (
            single_file_config.pipeline_config)
        folder, where = resolve(family, cache_dir)
        config = str(folder)
    try:
        return cls.from_single_file(
            path, config=config, dtype=dtype, local_files_only=local_files_only, cache_dir=cache_dir, **kwargs
        )
    except (OSError, HfHubHTTPError) as exc:
        raise ModelNotAvailableError(
            name,
            "diffusers could not get the configuration for this single-file checkpoint (offline?);"
            f" pass a diffusers-format folder of the same architecture ({flag}). ({type(exc).__name__}: {exc})",
        ) from exc
    except (ValueError, RuntimeError) as exc:  # weights of another shape than the configuration's
        source = {"given": f"the folder {config}", "cache": f"{family}'s configuration from the Hugging Face cache",
                  "bundled": f"{family}'s published configuration"}[where]
        raise ModelNotAvailableError(
            name,
            f"its weights do not fit {source} (a model of another size or layout?); pass a diffusers-format"
            f" folder of its architecture ({flag}). ({type(exc).__name__}: {str(exc)[:300]})",
        ) from exc


def load_controlnet(cls, name: str, config: str | None, family: str = SD15, **common):
    if is_single_file(name):
        return from_single_file(cls, name, config=config, family=family, flag="--controlnet-config", **common)
    return from_pretrained(cls, name, **common)


def _config_folder(name: str, local_files_only: bool, cache_dir) -> Path | None:
    """The folder holding a ControlNet's config.json: its own, or its snapshot in the user's HF
    cache (never downloaded here). None when it cannot be told from here."""
    path = Path(os.path.expanduser(name))
    if path.is_dir():
        return path
    if is_single_file(name) or looks_like_path(name):
        return None
    config = hub_file(name, "config.json", cache_dir=cache_dir)
    return None if config is None else config.parent


def check_controlnet_family(name: str, family: str, *, union: bool, local_files_only=True, cache_dir=None,
                            **_) -> None:
    """ValueError when the ControlNet ``name`` is plainly not of ``family`` (or, with ``union``,
    not a ControlNet-Union; without it, a union given as a pose or depth ControlNet), read from
    its config. Nothing is said when its config cannot be read from here: loading will tell."""

    folder = _config_folder(name, local_files_only, cache_dir)
    kind = controlnet_kind(folder) if folder is not None else None
    if kind is None:
        return
    its_family, is_union = kind
    if is_union != union:
        raise ValueError(
            f"{name} is a ControlNet-Union: give it as --union-controlnet" if is_union
            else f"{name} is not a ControlNet-Union (give it as --pose-controlnet or --depth-controlnet)"
        )
    if its_family != family:
        raise ValueError(f"{name} is an {its_family} ControlNet, but the base model is {family}: "
                         f"give a ControlNet made for {family} (or another base model)")


def load_union_controlnet(name: str, **common):
    """An SDXL ControlNet-Union from a folder or hub id (diffusers reads no single file of it)."""
    from diffusers.models.controlnets.controlnet_union import ControlNetUnionModel

    if is_single_file(name):
        raise ModelNotAvailableError(
            name, "a ControlNet-Union cannot be loaded from a single file; give its diffusers folder or hub id")
    return from_pretrained(ControlNetUnionModel, name, **common)
