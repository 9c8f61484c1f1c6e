"""The HTTP API's JSON shapes (docs/backend_api.md), as pydantic models: they check requests
(unknown keys are refused, naming the field) and give the OpenAPI schema its shapes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .extract import EXTRACTORS
from .loras import WEIGHT_LIMIT
from .pipelines import PIPELINE_NAMES, GenerateParams
from .pipelines.base import RESOLUTIONS, VACE_CONTROLS

_DEFAULTS = GenerateParams()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoraParam(_Strict):
    source: str = Field(min_length=1, description="a .safetensors file on the backend's machine (diffusers or"
                        " Kohya/A1111 format) or a Hugging Face id ('owner/repo' or 'owner/repo/file.safetensors')")
    weight: float = Field(1.0, ge=-WEIGHT_LIMIT, le=WEIGHT_LIMIT, allow_inf_nan=False)


class JobParams(_Strict):
    """Generation parameters; every key optional. ``batch`` None takes the server's --batch."""

    prompt: str = _DEFAULTS.prompt
    negative: str = _DEFAULTS.negative
    seed: int = Field(_DEFAULTS.seed, ge=0, lt=2**63)
    steps: int = Field(_DEFAULTS.steps, ge=1, le=500)  # schedulers have 1000 training steps
    guidance: float = Field(_DEFAULTS.guidance, ge=0, allow_inf_nan=False)
    pose_scale: float = Field(_DEFAULTS.pose_scale, ge=0, allow_inf_nan=False)
    depth_scale: float = Field(_DEFAULTS.depth_scale, ge=0, allow_inf_nan=False)
    control_start: float = Field(_DEFAULTS.control_start, ge=0, le=1)
    control_end: float = Field(_DEFAULTS.control_end, ge=0, le=1)
    depth_start: float | None = Field(None, ge=0, le=1, description="depth ControlNet's own start (default control_start)")
    depth_end: float | None = Field(None, ge=0, le=1, description="depth ControlNet's own end (default control_end)")
    batch: int | None = Field(None, ge=1, le=64)
    width: int | None = Field(None, ge=8, le=4096, multiple_of=8)
    height: int | None = Field(None, ge=8, le=4096, multiple_of=8)
    pipeline: Literal[PIPELINE_NAMES] | None = Field(
        None, description="'frames', 'animatediff' or 'wan-vace'; default: the backend's default (/health)"
    )
    context_length: int = Field(_DEFAULTS.context_length, ge=1, le=64, description="animatediff: frames per context window")
    context_stride: int = Field(_DEFAULTS.context_stride, ge=1, le=64, description="animatediff: frames between window starts")
    identity_scale: float = Field(
        _DEFAULTS.identity_scale, ge=0, le=4, allow_inf_nan=False, description="IP-Adapter strength of the reference"
    )
    prompts: dict[int, str] | None = Field(
        None, description="prompt travel: frame number -> prompt, blended between keys (wins over prompt)"
    )
    resolution: Literal[RESOLUTIONS] = Field(
        _DEFAULTS.resolution,
        description="wan-vace: the area it generates at ('maps': the pose maps' own size); frames come back"
        " at the pose maps' size",
    )
    segment: int | None = Field(
        None, ge=9, le=1000,
        description="wan-vace: frames per clip, counting the 5 each clip continues from (default 81); a longer"
        " job is made clip after clip, and each clip's frames are done when it finishes",
    )
    vace_control: Literal[VACE_CONTROLS] | None = Field(
        None, description="wan-vace: its control video; default 'pose_over_depth' with depth frames, else 'pose'"
    )
    loras: list[LoraParam] = Field(
        default_factory=list, max_length=16,
        description="frames and animatediff: LoRAs with their weights, loaded once and kept by the backend",
    )
    preview: bool = Field(
        False, description="the fast preview (/health 'preview'): per frame, with the backend's few-step LoRA,"
        " steps and guidance instead of these; send half-size maps (or width/height)",
    )

    @model_validator(mode="after")
    def _control_window(self):
        if self.control_start >= self.control_end:
            raise ValueError(
                f"control_start ({self.control_start}) must be below control_end ({self.control_end})"
            )
        start = self.control_start if self.depth_start is None else self.depth_start
        end = self.control_end if self.depth_end is None else self.depth_end
        if start >= end:
            raise ValueError(f"depth_start ({start}) must be below depth_end ({end})")
        if self.context_stride > self.context_length:
            raise ValueError(
                f"context_stride ({self.context_stride}) must not exceed context_length ({self.context_length})"
            )
        return self


class JobFrame(_Strict):
    frame: int = Field(description="frame number (may be negative); unique in the job")
    pose: str = Field(description="the pose map, a base64 PNG")
    depth: str | None = Field(None, description="the depth map, a base64 PNG (every frame or none)")


class LeadFrame(_Strict):
    frame: int = Field(description="frame number, before the job's frames")
    pose: str = Field(description="its pose map, a base64 PNG")
    depth: str | None = Field(None, description="its depth map, a base64 PNG (when the frames have depth)")
    image: str = Field(description="the frame as generated before, a base64 PNG")


class JobRequest(_Strict):
    name: str = Field("", max_length=200)
    params: JobParams = Field(default_factory=JobParams)
    frames: list[JobFrame]
    reference: str | None = Field(
        None,
        description="identity reference of the character, a base64 PNG (the IP-Adapter's, or wan-vace's"
        " reference image); transparent parts count as white",
    )
    lead: list[LeadFrame] = Field(
        default_factory=list,
        description="temporal pipelines: frames generated before (a previous segment's last ones) that the"
        " video continues from; they come before the job's frames and are not generated again",
    )


class PictureFrame(_Strict):
    frame: int = Field(description="frame number; unique in the request")
    image: str = Field(description="the picture, a base64 PNG")


class ExtractFramesRequest(_Strict):
    """POST /extract/frames: pictures (all one size) instead of a video."""

    name: str = Field("", max_length=200)
    frames: list[PictureFrame]
    extractor: Literal[tuple(EXTRACTORS)] = "mediapipe"
    fps: float | None = Field(None, gt=0, allow_inf_nan=False, description="their rate: times = frame / fps")
    maps: bool = Field(False, description="also draw the pose maps")
    body_only: bool = Field(False, description="body only: no hands, no face")


class KeypointFrame(_Strict):
    frame: int
    document: dict = Field(
        description="the OpenPose frame document the pose map was drawn from ({version, people});"
        " canvas_width/canvas_height in it give the canvas when it is not the generated frame's size"
    )


class AdherenceRequest(_Strict):
    """POST /adherence: generated frames and the keypoints their pose maps were drawn from."""

    name: str = Field("", max_length=200)
    generated: list[PictureFrame]
    keypoints: list[KeypointFrame]
    extractor: Literal[tuple(EXTRACTORS)] = "mediapipe"
    threshold: float = Field(0.5, ge=0, le=1, description="a frame whose body PCK is below it is flagged")


class JobStatus(BaseModel):
    id: str
    kind: Literal["generate", "extract", "adherence"] = "generate"
    name: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    frames: list[int] = Field(description="the job's frame numbers, in order")
    frames_done: list[int] = Field(description="finished frames, downloadable now")
    progress: float = Field(description="0..1, counts denoising steps")
    queue_position: int = Field(description="jobs ahead of it (0 when running or finished)")
    error: str | None = None
    params: dict
    created: float = Field(description="submission time (Unix seconds)")
    started: float | None = None
    finished: float | None = None
    codec_seconds: float = Field(0.0, description="time spent decoding control PNGs and encoding frame PNGs")


class JobList(BaseModel):
    jobs: list[JobStatus]


class Health(BaseModel):
    status: Literal["ready", "loading", "error"]
    device: str | None = None
    dtype: str | None = None
    models: dict | None = None
    has_depth: bool | None = None
    pipelines: list[str] | None = Field(None, description="the pipelines this backend runs, the default first")
    has_ip_adapter: bool | None = None
    max_context_length: int | None = Field(None, description="the most frames the motion module sees at once")
    wan_loaded: bool | None = Field(
        None, description="wan-vace's model is in memory (it loads on the first wan-vace job, which takes longer)"
    )
    family: str | None = Field(None, description="the base model's family: sd15 or sdxl")
    pose_style: str | None = Field(
        None, description="the pose maps' line widths its openpose ControlNet was trained on: controlnet"
        " (lllyasviel's SD1.5 model) or xinsir (wider limbs, SDXL)"
    )
    loras: list[str] | None = Field(None, description="the LoRAs loaded so far (a job switches between them)")
    preview: dict | None = Field(
        None, description="the fast preview's LoRA, steps and guidance; null when this backend has none"
    )
    preview_unavailable: str | None = Field(None, description="why there is no fast preview, when one was asked for")
    version: str | None = None
    error: str | None = None
    extractors: list[str] | None = Field(
        None, description="the pose extractors that can run on this backend (also while the models load)"
    )


class ErrorBody(BaseModel):
    detail: str
