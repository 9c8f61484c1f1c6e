"""``posebridge-models.json``: a folder that names its base model and ControlNets.

    {"base": "base", "openpose": "controlnet-openpose", "depth": "controlnet-depth",
     "motion_adapter": "motion-adapter", "ip_adapter": "ip-adapter", "wan_vace": "wan-vace"}

Paths are relative to the folder holding the file ("depth", "motion_adapter", "ip_adapter",
"wan_vace", "union" and "preview_lora" may be null or left out). "union": an SDXL
ControlNet-Union loaded instead of "openpose" and "depth"; "preview_lora": the fast preview's
few-step LoRA file. The family is read from the base model itself. ``serve --model DIR``
with such a folder loads that set; make-tiny-model writes one beside the tiny models.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

MODEL_SET_FILE = "posebridge-models.json"


@dataclass(frozen=True)
class ModelSet:
    base: str
    openpose: str
    depth: str | None
    motion_adapter: str | None = None
    ip_adapter: str | None = None
    wan_vace: str | None = None
    union: str | None = None
    preview_lora: str | None = None


_OPTIONAL = ("depth", "motion_adapter", "ip_adapter", "wan_vace", "union", "preview_lora")


def write_model_set(
    directory, base: str, openpose: str, depth: str | None,
    motion_adapter: str | None = None, ip_adapter: str | None = None, wan_vace: str | None = None,
    union: str | None = None, preview_lora: str | None = None,
) -> Path:
    """Write the file naming these subfolders (relative to ``directory``); return its path."""
    path = Path(directory) / MODEL_SET_FILE
    body = {"base": base, "openpose": openpose, "depth": depth, "motion_adapter": motion_adapter,
            "ip_adapter": ip_adapter, "wan_vace": wan_vace}
    for key, value in (("union", union), ("preview_lora", preview_lora)):
        if value is not None:
            body[key] = value
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return path


def read_model_set(directory: str | os.PathLike) -> ModelSet | None:
    """The set in ``directory`` as absolute paths, or None when it holds no model-set file.
    A malformed file raises ValueError naming it."""
    folder = Path(directory).expanduser()
    path = folder / MODEL_SET_FILE
    if not path.is_file():
        return None
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(body.get("base"), str) or not isinstance(body.get("openpose"), str):
            raise ValueError("needs the strings 'base' and 'openpose'")
        for key in _OPTIONAL:
            if body.get(key) is not None and not isinstance(body[key], str):
                raise ValueError(f"'{key}' must be a string or null")
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"{path} is not a valid model-set file: {exc}") from None

    def resolve(rel: str) -> str:
        return str((folder / rel).resolve())

    optional = {key: resolve(body[key]) if body.get(key) else None for key in _OPTIONAL}
    return ModelSet(resolve(body["base"]), resolve(body["openpose"]), **optional)
