"""Wan 2.1 VACE: the request's frames made as one video by a video diffusion transformer,
controlled by a control video (the pose maps, the depth maps, or pose over depth) and, where
given, a reference image of the character (issue 11).

The model's rules are handled here, not by the user:
- size: it generates at a 480p or 720p area (``params.resolution``; "maps": the control frames'
  own size) with both sides multiples of 16, near the control frames' aspect; the frames come
  back at the request's size;
- length: its VAE packs 4 frames per latent after the first, so it makes 4k+1 frames; a request
  of another length is padded (the last control frame repeated) and the padding dropped;
- flow shift: 3.0 at 480p, 5.0 at 720p (Wan-AI's values), set on the model's own scheduler;
- known frames (a previous segment's last frames, ``request.known``) go into the control video
  as themselves under a black mask (VACE keeps them), every other frame as its control under a
  white mask (generate); they are not yielded again;
- length: a request longer than ``params.segment`` frames (81 by default: what Wan was trained
  on) is made as clips of that many frames, each after the first continuing from the last 5
  frames made before it (1 + 4: two whole latent frames) as known frames; each clip's frames are
  yielded when it finishes and ``hooks.segment_done()`` says they are final;
- the reference image goes in as VACE's reference image, letterboxed on white by diffusers (its
  transparency was made white when the request was made: base.on_white).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Iterator

import numpy as np

from .base import GenerationCancelled, GenerationRequest, Hooks, StopAtStep, to_uint8

TEMPORAL = True
# (height, width) of the landscape size each resolution names; its area is what the model makes.
RESOLUTION_SIZES = {"480p": (480, 832), "720p": (720, 1280)}
FLOW_SHIFTS = {"480p": 3.0, "720p": 5.0}
SIZE_MULTIPLE = 16  # the VAE's 8x times the transformer's 2x2 patches
FRAMES_PER_LATENT = 4  # after the first frame
DEFAULT_SEGMENT = 81  # Wan 2.1's clip length in training
LEAD = 5  # frames a clip continues from: the first latent frame and one more of 4 frames
# A pose map pixel brighter than this (any channel) is part of the skeleton; the rest is background.
POSE_PIXEL = 8


class GpuMemoryError(RuntimeError):
    """A segment that does not fit on the GPU; the message says what to lower."""


def model_size(width: int, height: int, resolution: str) -> tuple[int, int]:
    """(width, height) the model generates at for control frames of ``width`` x ``height``: the
    resolution's area ("maps": theirs), the frames' aspect, both sides multiples of 16."""
    scale = 1.0
    if resolution in RESOLUTION_SIZES:
        target_h, target_w = RESOLUTION_SIZES[resolution]
        scale = math.sqrt(target_w * target_h / (width * height))

    def snap(value: float) -> int:
        return max(SIZE_MULTIPLE, int(value / SIZE_MULTIPLE + 0.5) * SIZE_MULTIPLE)  # halves up

    return snap(width * scale), snap(height * scale)


def flow_shift(size: tuple[int, int], resolution: str) -> float:
    """The resolution's flow shift; for "maps", that of the nearer of the two areas."""
    if resolution in FLOW_SHIFTS:
        return FLOW_SHIFTS[resolution]
    areas = {name: h * w for name, (h, w) in RESOLUTION_SIZES.items()}
    nearest = min(areas, key=lambda name: abs(math.log(size[0] * size[1] / areas[name])))
    return FLOW_SHIFTS[nearest]


def padded_length(count: int) -> int:
    """The least 4k+1 frame count holding ``count`` frames."""
    return 1 + FRAMES_PER_LATENT * math.ceil(max(count - 1, 0) / FRAMES_PER_LATENT)


def control_kind(request: GenerationRequest) -> str:
    """The control video's make: the one asked for, else pose over depth with depth, else pose."""
    chosen = request.params.vace_control
    if chosen is None:
        return "pose_over_depth" if request.depths is not None else "pose"
    return chosen


def pose_over_depth(pose, depth):
    """The pose map's skeleton drawn over the depth map: the character held by its pose, the set
    by its depth (VACE takes one control video)."""
    from PIL import Image

    pose_pixels = np.asarray(pose)
    skeleton = pose_pixels.max(axis=2) > POSE_PIXEL
    merged = np.where(skeleton[:, :, None], pose_pixels, np.asarray(depth))
    return Image.fromarray(np.ascontiguousarray(merged), "RGB")


def control_frame(request: GenerationRequest, index: int, kind: str):
    if kind == "pose":
        return request.poses[index]
    if kind == "depth":
        return request.depths[index]
    return pose_over_depth(request.poses[index], request.depths[index])


def conditioning(request: GenerationRequest, size: tuple[int, int]) -> tuple[list, list]:
    """(control video, mask), PIL images at ``size``, padded to 4k+1 frames: known frames as
    themselves under black, the others as their control under white."""
    from PIL import Image

    kind = control_kind(request)
    count = len(request.poses)
    video, mask = [], []
    black, white = Image.new("L", size, 0), Image.new("L", size, 255)
    for index in range(count):
        if index in request.known:
            video.append(request.known[index].resize(size, Image.Resampling.BICUBIC))
            mask.append(black)
        else:
            video.append(control_frame(request, index, kind).resize(size, Image.Resampling.BILINEAR))
            mask.append(white)
    padding = padded_length(count) - count
    return video + [video[-1]] * padding, mask + [white] * padding


def clips(count: int, segment: int, lead: int = LEAD) -> list[range]:
    """The clips a request of ``count`` frames is made in: ``segment`` frames each, every clip
    after the first starting ``lead`` frames before the previous one ends."""
    ranges = [range(0, min(segment, count))]
    while ranges[-1].stop < count:
        start = ranges[-1].stop - lead
        ranges.append(range(start, min(start + segment, count)))
    return ranges


def check_params(params) -> None:
    """ValueError naming what wan-vace cannot honour."""
    if params.prompt_schedule() is not None:
        raise ValueError("wan-vace takes one prompt: prompt travel (a schedule) needs the frames or animatediff pipeline")
    if params.control_start != 0.0 or params.control_end != 1.0:
        raise ValueError("wan-vace's control acts on every step: control_start/control_end must stay 0 and 1")
    if params.segment is not None and params.segment < LEAD + FRAMES_PER_LATENT:
        raise ValueError(f"segment must be at least {LEAD + FRAMES_PER_LATENT} frames for wan-vace: it counts the"
                         f" {LEAD} frames each clip continues from (got {params.segment})")


def check_request(request: GenerationRequest) -> None:
    check_params(request.params)
    kind = control_kind(request)
    if kind != "pose" and request.depths is None:
        raise ValueError(f"vace_control {kind!r} needs depth frames, and none were given")


def memory_advice(count: int, size: tuple[int, int], resolution: str) -> str:
    """What to lower when a segment does not fit on the GPU."""
    lower = "the resolution to 480p, " if resolution == "720p" else ""
    return (
        f"out of GPU memory making {count} frames at {size[0]}x{size[1]} ({resolution}): lower {lower}the"
        " segment length (frames per job), or start the backend with --cpu-offload (which also tiles the VAE)"
    )


def scheduler_for(scheduler, shift: float):
    """The model's own scheduler with this flow shift (UniPC calls it flow_shift, flow-matching
    Euler shift)."""
    config = scheduler.config
    for key in ("flow_shift", "shift"):
        if key in config:
            if config[key] == shift:
                return scheduler
            return type(scheduler).from_config(config, **{key: shift})
    return scheduler


def run(models, request: GenerationRequest, hooks: Hooks) -> Iterator[tuple[int, np.ndarray]]:
    from PIL import Image

    check_request(request)
    params = request.params
    pipe = models.wan.pipeline()
    size = model_size(request.width, request.height, params.resolution)
    pipe.scheduler = scheduler_for(pipe.scheduler, flow_shift(size, params.resolution))
    ranges = clips(len(request.poses), params.segment or DEFAULT_SEGMENT)
    made: dict[int, np.ndarray] = {}
    for number, frames in enumerate(ranges):
        known = {i - frames.start: request.known[i] for i in frames if i in request.known}
        known.update({i - frames.start: Image.fromarray(made[i], "RGB") for i in frames if i in made})
        clip = replace(request, poses=request.poses[frames.start : frames.stop],
                       depths=None if request.depths is None else request.depths[frames.start : frames.stop],
                       frame_numbers=request.frame_numbers[frames.start : frames.stop], known=known)
        progress = _ClipProgress(hooks, number, len(ranges), params.steps)
        hooks.count("wan_calls")
        for offset, frame in _make_clip(models, pipe, clip, size, progress):
            made[frames.start + offset] = frame
            yield frames.start + offset, frame
        for index in [i for i in made if i < frames.stop - LEAD]:  # only the lead is read again
            del made[index]
        if hooks.segment_done is not None:
            hooks.segment_done()


class _ClipProgress:
    """The denoising callback of one clip: progress over all the clips' steps, and cancel."""

    def __init__(self, hooks: Hooks, number: int, count: int, steps: int):
        self.hooks, self.before, self.total = hooks, number * steps, count * steps

    def __call__(self, diffusers_pipe, step_index, timestep, callback_kwargs):
        try:
            self.hooks.report(self.before + step_index + 1, self.total)
        except GenerationCancelled:
            raise StopAtStep from None
        return callback_kwargs


def _make_clip(models, pipe, request: GenerationRequest, size, callback) -> Iterator[tuple[int, np.ndarray]]:
    """One clip through WanVACEPipeline: (index, frame at the request's size) for every frame but
    the known ones."""
    import torch
    from PIL import Image

    params = request.params
    video, mask = conditioning(request, size)
    reference = None
    if request.reference is not None and params.identity_scale > 0:
        reference = request.reference
    try:
        with torch.inference_mode():
            out = pipe(
                prompt=params.prompt,
                negative_prompt=params.negative,
                video=video,
                mask=mask,
                reference_images=reference,
                conditioning_scale=float(params.pose_scale),
                width=size[0],
                height=size[1],
                num_frames=len(video),
                num_inference_steps=params.steps,
                guidance_scale=float(params.guidance),
                generator=torch.Generator("cpu").manual_seed(params.seed),
                output_type="np",
                callback_on_step_end=callback,
                max_sequence_length=models.wan.text_tokens,
            )
    except StopAtStep:
        raise GenerationCancelled("generation cancelled at a denoising step") from None
    except torch.cuda.OutOfMemoryError:
        raise GpuMemoryError(memory_advice(len(video), size, params.resolution)) from None
    frames = to_uint8(out.frames[0])
    output_size = (request.width, request.height)
    for index in range(len(request.known), len(request.poses)):
        frame = frames[index]
        if size != output_size:
            frame = np.asarray(Image.fromarray(frame, "RGB").resize(output_size, Image.Resampling.LANCZOS))
        yield index, frame
