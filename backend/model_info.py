"""What the HTTP service needs to know of the loaded models, without the models themselves.

The single-process backend reads it off its ``LoadedModels``; a scaled-out backend's ingress
(backend/scale) holds no model and asks a generator replica for it once. Both answer /health and
check requests from it alike. It is plain data, so it crosses process boundaries as it is.
"""
from __future__ import annotations

from dataclasses import dataclass, field

DTYPE_NAMES = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}


@dataclass(frozen=True)
class ModelInfo:
    device: str
    dtype: str  # "fp16", "bf16", "fp32" (or torch's own name for others)
    models: dict = field(default_factory=dict)
    has_depth: bool = False
    pipelines: tuple[str, ...] = ()  # the default first
    has_ip_adapter: bool = False
    max_context_length: int | None = None
    wan_loaded: bool = False
    family: str = "sd15"
    pose_style: str = "controlnet"  # the pose maps' line widths its ControlNets read best
    loras: tuple[str, ...] = ()  # the LoRA sources loaded so far
    preview: object | None = None  # a backend.preview.PreviewSetup, or None
    preview_unavailable: str | None = None

    @property
    def default_pipeline(self) -> str:
        return self.pipelines[0]

    @classmethod
    def of(cls, loaded) -> "ModelInfo":
        """The description of a backend.models.LoadedModels, as it is now."""
        dtype = str(loaded.dtype).removeprefix("torch.")
        return cls(
            device=str(loaded.device),
            dtype=DTYPE_NAMES.get(dtype, dtype),
            models=dict(loaded.models),
            has_depth=loaded.has_depth,
            pipelines=tuple(loaded.pipelines),
            has_ip_adapter=loaded.has_ip_adapter,
            max_context_length=loaded.max_context_length,
            wan_loaded=loaded.wan is not None and loaded.wan.loaded,
            family=loaded.family,
            pose_style=loaded.pose_style,
            loras=tuple(loaded.loras.loaded),
            preview=loaded.preview,
            preview_unavailable=loaded.preview_unavailable,
        )

    def health(self) -> dict:
        """The model fields of /health (backend/api_models.Health)."""
        return {
            "device": self.device,
            "dtype": self.dtype,
            "models": dict(self.models),
            "has_depth": self.has_depth,
            "pipelines": list(self.pipelines),
            "has_ip_adapter": self.has_ip_adapter,
            "max_context_length": self.max_context_length,
            "wan_loaded": self.wan_loaded,
            "family": self.family,
            "pose_style": self.pose_style,
            "loras": list(self.loras),
            "preview": self.preview.health() if self.preview is not None else None,
            "preview_unavailable": self.preview_unavailable,
        }
