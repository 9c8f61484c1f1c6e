"""The generation pipelines behind one interface (backend.pipelines.base), one module each:

- ``frames``: each frame denoised on its own (SD1.5 + ControlNets, the same noise per frame);
- ``animatediff``: the whole range denoised as one video by an AnimateDiff motion module, in
  overlapping context windows (``windows``), for shots of any length;
- ``wan_vace``: the range as one video by Wan 2.1 VACE (pose or depth as its control video, a
  reference image of the character); long shots go as segments, each continuing from the
  previous one's last frames (``known``).

Shared: ``conditioning`` (text embeddings with prompt travel, the IP-Adapter identity reference),
``prompts`` (prompt schedules), ``windows`` (context windows, FreeNoise). A new pipeline is one
module with ``TEMPORAL`` and ``run`` and one line in ``PIPELINES``.

    frames = generate(models, poses, depths, GenerateParams(pipeline="animatediff"), reference=img)
    for index, frame in frames: ...
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .. import preview
from . import animatediff, frames, wan_vace
from .base import (
    ANIMATEDIFF,
    WAN_VACE,
    EncodedFrames,
    FRAMES,
    PIPELINE_NAMES,
    GenerateParams,
    GenerationCancelled,
    GenerationRequest,
    Hooks,
    ModelNotAvailableError,
    frames_to_pil,
    on_white,
    rgb8,
    to_pil,
)

PIPELINES = {FRAMES: frames, ANIMATEDIFF: animatediff, WAN_VACE: wan_vace}

__all__ = [
    "ANIMATEDIFF", "EncodedFrames", "FRAMES", "PIPELINES", "PIPELINE_NAMES", "GenerateParams", "GenerationCancelled",
    "GenerationRequest", "Hooks", "ModelNotAvailableError", "WAN_VACE", "generate", "is_temporal", "make_request",
    "on_white", "rgb8",
]


def is_temporal(pipeline: str) -> bool:
    """True when the pipeline's frames all become final together, at the end."""
    return bool(PIPELINES[pipeline].TEMPORAL)


def make_request(
    models,
    pose_frames: Sequence,
    depth_frames: Sequence | None,
    params: GenerateParams,
    *,
    reference=None,
    frame_numbers: Sequence[int] | None = None,
    known: dict | None = None,
) -> GenerationRequest:
    """Check everything a run needs before anything runs; ValueError names the problem.
    known: {index: image} of frames already generated that the video continues from (temporal
    pipelines; the first indices)."""
    params.validate()
    wan = params.pipeline == WAN_VACE
    poses = frames_to_pil(pose_frames, "pose")
    size = _size(poses)
    depths = None
    if depth_frames is not None:
        if not models.has_depth and not wan:  # Wan takes depth as its control video, no ControlNet
            raise ValueError("depth frames given, but the backend was loaded without a depth ControlNet")
        depths = frames_to_pil(depth_frames, "depth")
        if len(depths) != len(poses):
            raise ValueError(f"pose/depth frame count mismatch: {len(poses)} pose, {len(depths)} depth")
        if _size(depths) != size:
            raise ValueError(
                f"pose/depth size mismatch: pose frames are {size[0]}x{size[1]},"
                f" depth frames {_size(depths)[0]}x{_size(depths)[1]}"
            )
    width = params.width or size[0]
    height = params.height or size[1]
    if (width % 8 or height % 8) and not wan:  # Wan makes its own size and resizes to this one
        raise ValueError(f"frame size must be a multiple of 8 (got {width}x{height}); set width/height")
    if reference is not None:
        if not models.has_ip_adapter and not wan:  # Wan takes it as VACE's reference image
            raise ValueError("a reference image was given, but the backend was started without an IP-Adapter")
        reference = to_pil(on_white(reference), "reference", 0)
    numbers = list(range(len(poses))) if frame_numbers is None else [int(n) for n in frame_numbers]
    if len(numbers) != len(poses):
        raise ValueError(f"{len(numbers)} frame numbers for {len(poses)} frames")
    known = dict(known or {})
    if known:
        if not is_temporal(params.pipeline):
            raise ValueError(f"given (lead) frames need a temporal pipeline, not {params.pipeline!r}")
        if sorted(known) != list(range(len(known))) or len(known) >= len(poses):
            raise ValueError("given (lead) frames must be the first frames of the request, with frames after them")
        known = {i: to_pil(image, "given", i) for i, image in known.items()}
    request = GenerationRequest(poses, depths, params, numbers, width, height, reference, known)
    if params.pipeline == ANIMATEDIFF:
        animatediff.check_params(models, params)
    if wan:
        if models.wan is None:
            raise ValueError("wan-vace needs a Wan VACE model (serve --wan-model)")
        wan_vace.check_request(request)
    return request


def _size(frames) -> tuple[int, int]:
    return frames.size if isinstance(frames, EncodedFrames) else frames[0].size


def generate(
    models,
    pose_frames: Sequence,
    depth_frames: Sequence | None = None,
    params: GenerateParams | None = None,
    *,
    reference=None,
    frame_numbers: Sequence[int] | None = None,
    known: dict | None = None,
    on_progress: Callable[[int, int], Any] | None = None,
    should_stop: Callable[[], bool] | None = None,
    hooks: Hooks | None = None,
    on_segment_done: Callable[[], Any] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Generate one frame per pose frame with ``params.pipeline``; yield (index, uint8 (H, W, 3)
    RGB frame) as frames become final (in index order). known: {index: image} of the first
    frames, already generated: the video continues from them and they are not yielded.

    Input is checked here, before anything runs (ValueError naming the problem). on_progress(done,
    total) follows the denoising work; should_stop() is asked after every step (every window's
    step for animatediff): True raises GenerationCancelled there, and frames already yielded stay
    yielded. hooks: a Hooks to use instead (its counters say what ran). on_segment_done(): a
    pipeline that makes a long request in segments (wan-vace) calls it when every frame yielded
    so far is final.
    """
    params = params or GenerateParams()
    if params.preview:
        params = preview.job_params(models, params)
    request = make_request(
        models, pose_frames, depth_frames, params, reference=reference, frame_numbers=frame_numbers, known=known
    )
    if params.pipeline != WAN_VACE:
        models.loras.use(models, params.lora_choices())
    hooks = hooks or Hooks()
    if on_progress is not None:
        hooks.progress = on_progress
    if should_stop is not None:
        hooks.should_stop = should_stop
    if on_segment_done is not None:
        hooks.segment_done = on_segment_done
    return PIPELINES[params.pipeline].run(models, request, hooks)
