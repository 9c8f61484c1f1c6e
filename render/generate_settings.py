"""The Generate settings of the panel and the batch command, as the backend API's params.

Blender glue (paths relative to the .blend), kept apart from the job itself
(render/generate_job.py) so each stays small.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import bpy

from ..generate.videos import WAN_VACE
from .pose_maps import JobError


class SettingsError(JobError):
    """The settings cannot work as given: nothing was rendered or sent."""


def video_params(pipeline: str | None, context_length: int, context_stride: int,
                 identity_scale: float, resolution: str | None = None, vace_control: str | None = None) -> dict:
    """The params of the pipeline choice. ``pipeline`` None (Auto) is left out: the backend then
    runs its default. The window sizes only count for AnimateDiff, the identity scale only with
    a reference (the manifest ignores them otherwise), so they are always sent. Wan VACE's
    ``resolution`` and ``vace_control`` (None: the backend's default) go only with wan-vace
    named: a backend refuses params it does not know."""
    params = dict(context_length=context_length, context_stride=context_stride,
                  identity_scale=identity_scale)
    if pipeline is not None:
        params["pipeline"] = pipeline
    if pipeline == WAN_VACE:
        for key, value in (("resolution", resolution), ("vace_control", vace_control)):
            if value is not None:
                params[key] = value
    return params


def panel_pipeline(choice: str) -> str | None:
    """The panel's Pipeline item (AUTO, ANIMATEDIFF, FRAMES, WAN_VACE) as the backend names it
    (wan-vace); None: Auto."""
    return None if choice == "AUTO" else choice.lower().replace("_", "-")


def panel_vace_control(choice: str) -> str | None:
    """The panel's Control item (AUTO, POSE, DEPTH, POSE_OVER_DEPTH) as the backend names it;
    None: Auto (pose, or pose over depth when depth maps are sent)."""
    return None if choice == "AUTO" else choice.lower()


def panel_loras(items) -> list[dict]:
    """The panel's LoRA list as the API's ``loras``: the ticked entries with a source; a file
    path made absolute (// is the .blend's folder), a Hugging Face id as typed."""
    loras = []
    for item in items:
        source = item.source.strip()
        if not item.enabled or not source:
            continue
        if not _is_hub_id(source):
            if source.startswith("//") and not bpy.data.filepath:
                raise SettingsError(f"the LoRA {source} is relative to the .blend: save the .blend first or "
                                    "choose an absolute path")
            source = str(Path(bpy.path.abspath(source)).resolve())
        loras.append({"source": source, "weight": float(item.weight)})
    return loras


def _is_hub_id(source: str) -> bool:
    """owner/repo or owner/repo/file.safetensors, not a path: nothing at the start that a path
    has (/, //, ~, ., a drive letter) and no such file."""
    if source.startswith(("/", "\\", "~", ".")) or re.match(r"^[A-Za-z]:", source):
        return False
    return len(source.split("/")) in (2, 3) and not Path(source).exists()


def reference_path(text: str) -> Path | None:
    """The panel's Reference field as a file path (// is the .blend's folder); None when empty.
    Whether the file is there is checked when Generate starts (check_settings)."""
    text = text.strip()
    if not text:
        return None
    if text.startswith("//") and not bpy.data.filepath:
        raise SettingsError(f"the identity reference {text} is relative to the .blend: save the .blend "
                            "first or choose an absolute path")
    return Path(bpy.path.abspath(text))


PREVIEW_FOLDER = "preview"
# What a preview does not read: it runs the frames pipeline, whatever the panel's pipeline is.
_NOT_FOR_PREVIEW = ("pipeline", "context_length", "context_stride", "resolution", "vace_control")


def as_preview(request):
    """The Generate request as the fast preview (backend/preview.py): the frames pipeline with
    the backend's few-step LoRA, steps and guidance, at half size, into the output folder's
    preview/ subfolder and a strip of its own, so the final frames are never touched. Previews
    are sketches: a new one replaces the last without asking (Overwrite is for final frames)."""
    params = {k: v for k, v in request.params.items() if k not in _NOT_FOR_PREVIEW}
    params.update(preview=True, pipeline="frames")
    return replace(request, params=params, out_dir=Path(request.out_dir) / PREVIEW_FOLDER,
                   strip_name=f"{request.strip_name} (preview)", segment=None, preview=True, overwrite=True)


def half_size(width: int, height: int) -> tuple[int, int]:
    """Half of a size, to multiples of 8 (what Stable Diffusion needs)."""
    return max(8, round(width / 16) * 8), max(8, round(height / 16) * 8)
