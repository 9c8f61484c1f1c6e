"""Which models ``serve`` loads: its model flags, any model-set file and the base model's family,
resolved to load_models' keyword arguments (``resolve_models``). Usage errors go to the parser."""
from __future__ import annotations

import os

from .families import FAMILY_SPECS, SD15, SDXL, model_family
from .model_files import is_single_file, offline_from_env
from .model_set import read_model_set
from .preview import DEFAULT_PREVIEW_LORAS
from .wan_model import DEFAULT_WAN_MODEL


def _missing_local_model(name: str | None) -> bool:
    """A name that can only be a local path (not a hub id) and does not exist."""
    if not name:
        return False
    local = os.path.isabs(name) or name.startswith((".", "~")) or is_single_file(name)
    return local and not os.path.exists(os.path.expanduser(name))


def _flag_model(value: str | None, current: str | None) -> str | None:
    """A model flag's value: unchanged when not given, None for 'none'."""
    if not value:
        return current
    return None if value.lower() == "none" else value


def resolve_models(args, parser) -> dict:
    """The models to load (load_models' keyword arguments: model, pose_controlnet,
    depth_controlnet, motion_adapter, ip_adapter, wan_model, union_controlnet, preview_lora,
    family) from the flags and any model-set file.

    A model-set folder names what it holds (what it leaves out is not loaded); otherwise the
    family's defaults. A flag wins over both; 'none' leaves that model out."""
    model_set = None
    if args.model and os.path.isdir(os.path.expanduser(args.model)):
        try:
            model_set = read_model_set(args.model)
        except ValueError as exc:
            parser.error(str(exc))
    base = model_set.base if model_set is not None else args.model
    family = _family(args, parser, base)
    spec = FAMILY_SPECS[family]
    chosen = dict(
        model=base or spec.model,
        pose_controlnet=spec.pose_controlnet,
        depth_controlnet=spec.depth_controlnet,
        motion_adapter=spec.motion_adapter,
        ip_adapter=spec.ip_adapter,
        wan_model=DEFAULT_WAN_MODEL,
        union_controlnet=None,
        preview_lora=DEFAULT_PREVIEW_LORAS[family],
    )
    if model_set is not None:
        chosen.update(
            pose_controlnet=model_set.openpose,
            depth_controlnet=model_set.depth,
            motion_adapter=model_set.motion_adapter,
            ip_adapter=model_set.ip_adapter,
            wan_model=model_set.wan_vace,
            union_controlnet=model_set.union,
            preview_lora=model_set.preview_lora,
        )
    if args.pose_controlnet:
        chosen["pose_controlnet"] = args.pose_controlnet
    for key in ("depth_controlnet", "motion_adapter", "ip_adapter", "wan_model", "union_controlnet", "preview_lora"):
        chosen[key] = _flag_model(getattr(args, key), chosen[key])
    if args.union_controlnet and (args.pose_controlnet or args.depth_controlnet):
        parser.error("--union-controlnet takes pose and depth itself: leave out --pose-controlnet and"
                     " --depth-controlnet")
    if chosen["union_controlnet"]:
        if family != SDXL:
            parser.error(f"--union-controlnet: a ControlNet-Union is an SDXL model, the base model is {family}")
        chosen["pose_controlnet"] = chosen["depth_controlnet"] = None
    if chosen["union_controlnet"] and chosen["motion_adapter"]:
        if args.motion_adapter:
            parser.error("--motion-adapter: the animatediff pipeline runs separate pose and depth ControlNets,"
                         " not a ControlNet-Union")
        chosen["motion_adapter"] = None  # a union serves frames (and wan-vace) only
    for key, name in chosen.items():
        if _missing_local_model(name):
            flag = "--" + key.replace("_", "-")
            parser.error(f"{flag}: no such file or folder: {name}")
    configs = (("--model-config", args.model_config), ("--controlnet-config", args.controlnet_config))
    for flag, folder in configs:
        if folder and not os.path.isdir(os.path.expanduser(folder)):
            parser.error(f"{flag}: no such folder: {folder}")
    chosen["family"] = family
    return chosen


def _family(args, parser, model: str | None) -> str:
    """--family, or the family read from the base model's files (SD1.5 when they do not say or
    there is no --model). A --family the model's files contradict is a usage error."""
    found = None
    if model and not _missing_local_model(model):
        try:
            # A hub id not cached yet: its model_index.json is fetched where the network is allowed.
            found = model_family(model, local_files_only=offline_from_env())
        except (OSError, ValueError) as exc:  # an unreadable checkpoint
            parser.error(f"--model: cannot read {model}: {exc}")
    if args.family == "auto":
        return found or SD15
    if found is not None and found != args.family:
        parser.error(f"--family {args.family}: the model {model} is an {found} model")
    return args.family
