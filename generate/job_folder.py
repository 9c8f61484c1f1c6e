"""The output folder of a generation: ``frame_NNNN.png`` files and the manifest ``generation.json``.

The manifest records, per frame, which settings made it (a hash of the params that decide the
pixels and the backend's model ids) and hashes of the control images it came from. ``plan``
compares that with what is asked now:

* done     - the file is there and was made from the same settings and the same control images;
* missing  - no file: generate it without asking;
* stale    - a file is there but it was made otherwise (other settings, a changed pose or depth
             map, or nothing in the manifest says how it was made). Stale files are the user's
             previous results: they are only replaced when the caller passes ``overwrite=True``.

Frames are written atomically (temporary name + ``os.replace``) the moment they arrive, then
recorded in the manifest (also replaced atomically), so a crash keeps every finished frame and
never leaves a truncated PNG. A crash between the two writes leaves a file without a record,
which the next plan calls stale: the safe side (ask) rather than the silent one.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..draw.png import write_bytes_atomic
from .controls import OUTPUT_PREFIX, ControlFolderError, ControlFrame, control_frames, frame_file_name
from .videos import WAN_VACE, segment_length

__all__ = [
    "MANIFEST_NAME", "PARAM_DEFAULTS", "ControlFrame", "ControlFolderError", "FrameWriter", "Plan",
    "control_frames", "control_hashes", "generation_settings", "output_path", "plan",
    "settings_hash", "write_bytes_atomic",
]

MANIFEST_NAME = "generation.json"
MANIFEST_FORMAT = "posebridge-generation"
MANIFEST_VERSION = 1

# The backend's defaults (docs/backend_api.md). Filling them in makes "steps left out" and
# "steps=20" the same settings, so the same pixels are not called stale.
PARAM_DEFAULTS = {
    "prompt": "", "negative": "", "seed": 0, "steps": 20, "guidance": 7.5, "pose_scale": 1.0,
    "depth_scale": 1.0, "control_start": 0.0, "control_end": 1.0, "width": None, "height": None,
    "context_length": 16, "context_stride": 4, "identity_scale": 0.6, "prompts": None,
    "resolution": "480p", "vace_control": None, "loras": [],
}
# The pipelines a user may name (backend/pipelines), and those whose frames are made together,
# as one video (TEMPORAL there).
PIPELINE_NAMES = ("animatediff", "frames", WAN_VACE)
TEMPORAL_PIPELINES = ("animatediff", WAN_VACE)
# Params only some pipelines read: dropped from the settings of the others, so that changing
# them does not call frames stale that they could not have changed.
_ONLY_FOR = {
    "context_length": ("animatediff",), "context_stride": ("animatediff",),  # Wan has no windows
    "resolution": (WAN_VACE,), "vace_control": (WAN_VACE,),
    "depth_scale": ("animatediff", "frames"),  # the depth ControlNet's; Wan reads depth as its video
    "loras": ("animatediff", "frames"),
}
WAN_RESOLUTIONS = ("480p", "720p", "maps")  # maps: the pose maps' own size (to multiples of 16)
VACE_CONTROLS = ("pose", "depth", "pose_over_depth")


def effective_pipeline(params: dict, health: dict) -> str:
    """The pipeline a job with these params runs: the one named, else the backend's default."""
    return (params or {}).get("pipeline") or (health.get("pipelines") or ["frames"])[0]


def is_temporal(pipeline: str) -> bool:
    return pipeline in TEMPORAL_PIPELINES
# Parameters that change speed, not pixels: a frame's result does not depend on its batch.
_NOT_PIXELS = {"batch"}
_FLOAT_PARAMS = {k for k, v in PARAM_DEFAULTS.items() if isinstance(v, float)}


def output_path(out_dir, frame: int) -> Path:
    """Where frame ``frame`` lands: ``<out_dir>/frame_NNNN.png`` with the pose map's number."""
    return Path(out_dir) / frame_file_name(OUTPUT_PREFIX, frame)


def generation_settings(
    params: dict, health: dict, uses_depth: bool, reference_hash: str | None = None, segment: int | None = None
) -> dict:
    """The settings that decide the pixels: params (defaults filled in, the pipeline resolved,
    speed-only ones dropped), the identity reference's hash, the segment length of a temporal
    pipeline, and the backend's model ids from ``/health``.

    Device and dtype are left out on purpose: fp16 vs fp32 or CPU vs GPU change pixels only by
    rounding, and calling a whole shot stale for that would push users to overwrite good work.
    What cannot matter is dropped too: the depth scale without depth maps, the identity scale
    without a reference, the params of other pipelines (context windows are AnimateDiff's, the
    resolution and control video Wan VACE's). Wan's defaults are filled in as it resolves them
    (its 81-frame segment, pose or pose over depth), so asking for them by name is the same.
    Only the models a pipeline runs count: Wan VACE's frames depend on the Wan model alone, the
    SD1.5 pipelines' on everything but it (a backend started with or without Wan leaves them be).
    A preview's steps and guidance are the backend's (its /health "preview", recorded instead).
    """
    merged = {**PARAM_DEFAULTS, **(params or {})}
    merged["pipeline"] = effective_pipeline(params, health)
    for key in _NOT_PIXELS:
        merged.pop(key, None)
    if not uses_depth:
        merged.pop("depth_scale", None)
    if reference_hash is None:
        merged.pop("identity_scale", None)
    else:
        merged["reference"] = reference_hash
    pipeline = merged["pipeline"]
    if is_temporal(pipeline):
        merged["segment"] = segment_length(pipeline, segment)
    for key, readers in _ONLY_FOR.items():
        if pipeline not in readers:
            merged.pop(key, None)
    if pipeline == WAN_VACE and merged.get("vace_control") is None:
        merged["vace_control"] = "pose_over_depth" if uses_depth else "pose"
    if merged.get("preview"):  # the backend's few-step LoRA, steps and guidance make a preview's pixels
        merged.pop("steps", None)
        merged.pop("guidance", None)
        preview = health.get("preview")
        if isinstance(preview, dict) and preview.get("lora"):  # a retrained preview LoRA file: stale too
            (lora,) = lora_settings([{"source": preview["lora"]}])
            preview = {**preview, "lora_sha256": lora["sha256"]}
        merged["preview"] = preview or True
    if "loras" in merged:
        merged["loras"] = lora_settings(merged["loras"])
    for key in _FLOAT_PARAMS & merged.keys():
        value = merged[key]
        if isinstance(value, int) and not isinstance(value, bool):
            merged[key] = float(value)  # 7 and 7.0 are the same guidance
    return {"params": merged, "models": _models_for(pipeline, health.get("models") or {})}


def lora_settings(loras) -> list[dict]:
    """The job's LoRAs as they decide the pixels: each source with its weight and, for a file on
    this machine, its bytes' sha256 (a LoRA trained further under the same name makes the frames
    stale). Weight 0 is no LoRA at all, so it is left out."""
    settings = []
    for lora in loras or ():
        source, weight = str(lora["source"]), float(lora.get("weight", 1.0))
        if weight == 0.0:
            continue
        path = Path(source).expanduser()
        settings.append({"source": source, "weight": weight, "sha256": file_hash(path) if path.is_file() else None})
    return settings


def _models_for(pipeline: str, models: dict) -> dict:
    """The backend's model ids that make ``pipeline``'s pixels (/health's models: "wan_model",
    and "wan_unavailable" saying why it is absent, are Wan's; the rest the SD1.5 pipelines')."""
    if pipeline == WAN_VACE:
        return {k: v for k, v in models.items() if k == "wan_model"}
    return {k: v for k, v in models.items() if not k.startswith("wan_")}


def settings_hash(settings: dict) -> str:
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_hash(path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise ControlFolderError(f"{path}: cannot be read ({error.strerror or error})") from None
    return digest.hexdigest()


def control_hashes(frame: ControlFrame) -> dict:
    """``{"pose": sha256, "depth": sha256 or None}`` of the files' bytes as they are sent."""
    return {"pose": file_hash(frame.pose), "depth": file_hash(frame.depth) if frame.depth else None}


def _empty_manifest() -> dict:
    return {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "settings": {}, "frames": {}}


def read_manifest(out_dir) -> tuple[dict, str | None]:
    """(manifest, note): an empty manifest and a note saying why when it is absent or unreadable."""
    path = Path(out_dir) / MANIFEST_NAME
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return _empty_manifest(), None
    except (OSError, ValueError) as error:
        return _empty_manifest(), f"{path} could not be read ({error}); existing frames count as stale"
    if not (isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT
            and isinstance(data.get("settings"), dict) and isinstance(data.get("frames"), dict)):
        return _empty_manifest(), f"{path} is not a PoseBridge generation manifest; existing frames count as stale"
    return data, None


def _changed_keys(old: dict, new: dict) -> list[str]:
    keys = []
    for group in ("params", "models"):
        a, b = old.get(group) or {}, new.get(group) or {}
        keys += [k if group == "params" else f"model {k}" for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
    return keys


def _stale_reason(record, manifest: dict, settings: dict, digest: str, controls: dict) -> str | None:
    """Why an existing file does not match what is asked now; None when it does."""
    if not isinstance(record, dict):
        return "no record in the manifest of how it was made"
    # Control changes first: with depth added or removed, the settings differ too (depth_scale),
    # but "now without a depth map" is the reason the user will recognise.
    if record.get("pose") != controls["pose"]:
        return "its pose map changed"
    if record.get("depth") != controls["depth"]:
        if controls["depth"] is None:
            return "made with a depth map, now without"
        return "made without a depth map, now with one" if record.get("depth") is None else "its depth map changed"
    if record.get("settings") != digest:
        old = manifest["settings"].get(record.get("settings"))
        keys = _changed_keys(old, settings) if isinstance(old, dict) else []
        return "made with other settings" + (f" ({', '.join(keys)})" if keys else "")
    return None


@dataclass
class Plan:
    """What a generation into ``out_dir`` has to do; frames in ascending order."""

    out_dir: Path
    settings: dict
    settings_hash: str
    controls: dict[int, ControlFrame]
    hashes: dict[int, dict]  # frame -> control_hashes()
    done: list[int]
    missing: list[int]
    stale: list[int]
    stale_reasons: dict[int, str]
    manifest: dict
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.controls)

    def to_generate(self, overwrite: bool = False) -> list[int]:
        """Missing frames, plus the stale ones when the caller allows replacing them."""
        return sorted(self.missing + self.stale) if overwrite else list(self.missing)

    def control_frames(self, frames) -> list[ControlFrame]:
        return [self.controls[f] for f in frames]

    def summary(self, overwrite: bool = False) -> str:
        """One line for a status bar or a log: what is done, what will be made, what is kept."""
        parts = [f"{len(self.done)} of {self.total} frames done", f"{len(self.missing)} missing"]
        if self.stale:
            action = "will be replaced" if overwrite else "kept (overwrite to replace)"
            parts.append(f"{len(self.stale)} made otherwise, {action}")
        return f"{self.out_dir}: " + ", ".join(parts)

    def stale_description(self, limit: int = 5) -> str:
        """Which frames are stale and why, e.g. for the dialog asking whether to overwrite."""
        lines = [f"frame {f}: {self.stale_reasons[f]}" for f in self.stale[:limit]]
        if len(self.stale) > limit:
            lines.append(f"... and {len(self.stale) - limit} more")
        return "\n".join(lines)


def plan(out_dir, settings: dict, controls: list[ControlFrame]) -> Plan:
    """Compare ``out_dir`` with what is asked (``settings`` from ``generation_settings``, the
    control frames) and sort every frame into done, missing or stale. Reads the control images
    (to hash them) and the manifest; writes nothing."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ControlFolderError(f"{out_dir}: exists and is not a folder")
    if not controls:
        raise ControlFolderError("no control frames to generate from")
    by_frame = {}
    for control in controls:
        if control.frame in by_frame:
            raise ControlFolderError(f"frame {control.frame} is given twice")
        by_frame[control.frame] = control
    manifest, note = read_manifest(out_dir)
    digest = settings_hash(settings)
    hashes = {f: control_hashes(c) for f, c in sorted(by_frame.items())}
    done, missing, stale, reasons = [], [], [], {}
    for frame in sorted(by_frame):
        if not output_path(out_dir, frame).is_file():
            missing.append(frame)
            continue
        reason = _stale_reason(manifest["frames"].get(str(frame)), manifest, settings, digest, hashes[frame])
        if reason is None:
            done.append(frame)
        else:
            stale.append(frame)
            reasons[frame] = reason
    notes = [note] if note else []
    return Plan(out_dir, settings, digest, dict(sorted(by_frame.items())), hashes, done, missing, stale,
                reasons, manifest, notes)


class FrameWriter:
    """Writes the frames of one plan as they arrive and records each in the manifest.

    Only frames the plan said to generate are accepted: a stale file is replaced only when the
    writer was made with ``overwrite=True``, whatever the caller later passes in.
    """

    def __init__(self, plan: Plan, overwrite: bool = False, info: dict | None = None):
        self.plan = plan
        self.allowed = set(plan.to_generate(overwrite))
        self.info = dict(info or {})  # e.g. device/dtype, recorded but not compared
        self.written: list[int] = []
        self._manifest = json.loads(json.dumps(plan.manifest))  # our own copy to update

    @property
    def manifest_path(self) -> Path:
        return self.plan.out_dir / MANIFEST_NAME

    def write(self, frame: int, png: bytes, video: dict | None = None) -> Path:
        """Write ``frame`` (PNG bytes as downloaded) to ``frame_NNNN.png`` and record it.
        video: for a temporal pipeline, which frames were made together with it (``frames``:
        first and last, ``lead``: the frames it continued from, ``job``: the backend's job id)."""
        if frame not in self.allowed:
            raise ValueError(f"frame {frame} was not planned for generation into {self.plan.out_dir}")
        self.plan.out_dir.mkdir(parents=True, exist_ok=True)
        path = output_path(self.plan.out_dir, frame)
        write_bytes_atomic(path, png)
        record = {"file": path.name, "settings": self.plan.settings_hash, **self.plan.hashes[frame], **self.info}
        if video is not None:
            record["video"] = video
        self._manifest["settings"][self.plan.settings_hash] = self.plan.settings
        self._manifest["frames"][str(frame)] = record
        # Keep only the settings some frame still refers to, so the manifest does not grow forever.
        used = {r.get("settings") for r in self._manifest["frames"].values() if isinstance(r, dict)}
        self._manifest["settings"] = {k: v for k, v in self._manifest["settings"].items() if k in used}
        write_bytes_atomic(self.manifest_path, (json.dumps(self._manifest, indent=1, sort_keys=True) + "\n").encode("utf-8"))
        self.written.append(frame)
        return path
