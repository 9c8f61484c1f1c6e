"""What every pipeline shares: the parameters of a generation, the frames going in and out, the
progress and cancel hooks, and the errors.

A pipeline is a module with one function::

    run(models, request: GenerationRequest, hooks: Hooks) -> Iterator[tuple[int, np.ndarray]]

yielding (index into the request's frames, uint8 (H, W, 3) RGB frame) as frames become final:
one by one for ``frames``, all at the end of denoising for a temporal pipeline (``TEMPORAL``
True in its module). ``backend.pipelines.generate`` checks the input and picks the module.

Images going in: ``PIL.Image.Image`` or uint8 numpy arrays (H, W, 3) RGB; (H, W) grey and
(H, W, 4) RGBA are accepted, alpha is dropped; 16-bit grey PNGs keep their top 8 bits.
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..loras import check_choice
from .prompts import check_schedule, parse_prompt_schedule
from .windows import DEFAULT_CONTEXT_LENGTH, DEFAULT_CONTEXT_STRIDE

FRAMES, ANIMATEDIFF, WAN_VACE = "frames", "animatediff", "wan-vace"
PIPELINE_NAMES = (FRAMES, ANIMATEDIFF, WAN_VACE)
DEFAULT_IDENTITY_SCALE = 0.6
# wan-vace: the area it generates at ("maps": the control frames' own size), the frames coming
# back at the control frames' size, and which frames make its one control video.
RESOLUTIONS = ("480p", "720p", "maps")
VACE_CONTROLS = ("pose", "depth", "pose_over_depth")


class GenerationCancelled(Exception):
    """Raised by a pipeline when its ``should_stop`` answered True at a denoising step."""


class StopAtStep(Exception):
    """Raised inside diffusers' step callback to leave the denoising loop at once (setting
    ``pipe._interrupt`` would still run the remaining loop turns and the VAE decode); the
    pipeline turns it into GenerationCancelled."""


class ModelNotAvailableError(ValueError):
    """A model (hub id or folder) that cannot be loaded from here: names it and says why."""

    def __init__(self, model: str, reason: str):
        self.model = model
        self.reason = reason
        super().__init__(f"model {model!r} is not available: {reason}")


@dataclass
class GenerateParams:
    """What one generation asks for. ``validate()`` raises ValueError naming a bad field.

    pipeline: "frames" (each frame denoised on its own, from the same noise), "animatediff"
    (the range denoised as one video by a motion module, in context windows of
    ``context_length`` frames every ``context_stride`` frames) or "wan-vace" (the range as one
    video by Wan 2.1 VACE, at ``resolution``'s area, controlled by ``vace_control``: "pose",
    "depth" or "pose_over_depth"; None takes pose over depth when depth frames are given, else
    pose).
    prompt: one prompt, or a schedule "N: prompt | M: prompt" (frame numbers); prompts: the
    schedule as a map (wins over ``prompt``). See backend.pipelines.prompts.
    width/height: the output size; None takes the control frames' size. Control frames of
    another size are resized to it. Both must be multiples of 8.
    pose_scale/depth_scale: ControlNet conditioning scales. control_start/control_end: the
    fraction of the denoising steps during which the ControlNets act; depth_start/depth_end give
    the depth ControlNet a window of its own (None: the same as control_start/control_end).
    identity_scale: how strongly the reference image (IP-Adapter) steers the look; 0 = not at all.
    segment: wan-vace: frames per clip, counting the frames a clip continues from (None: 81); a
    longer request is made clip after clip.
    batch: frames per UNet call (frames pipeline).
    loras: (source, weight) pairs: LoRA files or Hugging Face ids, loaded once per backend
    (backend.loras); frames and animatediff only.
    preview: run as the backend's fast preview (backend.preview): the per-frame pipeline with its
    few-step LoRA, steps and guidance instead of these.
    """

    prompt: str = ""
    negative: str = ""
    seed: int = 0
    steps: int = 20
    guidance: float = 7.5
    pose_scale: float = 1.0
    depth_scale: float = 1.0
    control_start: float = 0.0
    control_end: float = 1.0
    depth_start: float | None = None
    depth_end: float | None = None
    batch: int = 1
    width: int | None = None
    height: int | None = None
    pipeline: str = FRAMES
    context_length: int = DEFAULT_CONTEXT_LENGTH
    context_stride: int = DEFAULT_CONTEXT_STRIDE
    identity_scale: float = DEFAULT_IDENTITY_SCALE
    prompts: dict | None = None
    resolution: str = RESOLUTIONS[0]
    vace_control: str | None = None
    segment: int | None = None
    loras: tuple = ()  # ((source, weight), ...): backend.loras
    preview: bool = False  # the fast preview: few steps with the preview LoRA (backend.preview)

    def __post_init__(self) -> None:
        # One shape however it came (a job record's JSON gives lists); checked by validate().
        if isinstance(self.loras, (list, tuple)):
            self.loras = tuple(tuple(entry) if isinstance(entry, list) else entry for entry in self.loras)

    @property
    def depth_window(self) -> tuple[float, float]:
        """(start, end) of the depth ControlNet: its own, or the shared control window."""
        start = self.control_start if self.depth_start is None else self.depth_start
        end = self.control_end if self.depth_end is None else self.depth_end
        return start, end

    def prompt_schedule(self) -> dict[int, str] | None:
        """{frame number: prompt} when prompts travel, None for one prompt for every frame."""
        if self.prompts is not None:
            return check_schedule(self.prompts)
        return parse_prompt_schedule(self.prompt)

    def validate(self) -> None:
        for name in ("steps", "batch", "context_length", "context_stride"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1 (got {value!r})")
        if self.context_stride > self.context_length:
            raise ValueError(
                f"context_stride ({self.context_stride}) must not exceed context_length ({self.context_length})"
            )
        if self.pipeline not in PIPELINE_NAMES:
            raise ValueError(f"pipeline must be one of {', '.join(PIPELINE_NAMES)} (got {self.pipeline!r})")
        if self.segment is not None:
            if not isinstance(self.segment, int) or isinstance(self.segment, bool) or self.segment < 1:
                raise ValueError(f"segment must be an integer >= 1 (got {self.segment!r})")
            if self.pipeline != WAN_VACE:
                raise ValueError(f"segment is for wan-vace, not {self.pipeline}: animatediff covers any length"
                                 " with its context windows")
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {', '.join(RESOLUTIONS)} (got {self.resolution!r})")
        if self.vace_control is not None and self.vace_control not in VACE_CONTROLS:
            raise ValueError(f"vace_control must be one of {', '.join(VACE_CONTROLS)} (got {self.vace_control!r})")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be an integer in [0, 2**63) (got {self.seed!r})")
        if not 0.0 <= self.control_start < self.control_end <= 1.0:
            raise ValueError(
                "control_start and control_end must satisfy 0 <= control_start < control_end <= 1"
                f" (got {self.control_start!r}, {self.control_end!r})"
            )
        start, end = self.depth_window
        if not 0.0 <= start < end <= 1.0:
            raise ValueError(
                "depth_start and depth_end must satisfy 0 <= depth_start < depth_end <= 1"
                f" (got {start!r}, {end!r})"
            )
        for name in ("guidance", "pose_scale", "depth_scale", "identity_scale"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0 (got {value!r})")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 8 or value % 8):
                raise ValueError(f"{name} must be a positive multiple of 8 (got {value!r})")
        self.prompt_schedule()  # raises on a malformed schedule
        self.lora_choices()  # raises on a malformed LoRA entry
        if not isinstance(self.preview, bool):
            raise ValueError(f"preview must be true or false (got {self.preview!r})")
        if self.loras and self.pipeline == WAN_VACE:
            raise ValueError("loras are for the SD1.5 pipelines (frames, animatediff), not wan-vace")

    def lora_choices(self) -> tuple[tuple[str, float], ...]:
        """The job's LoRAs as checked (source, weight) pairs (a job record keeps them as lists)."""
        choices = []
        for entry in self.loras or ():
            if not isinstance(entry, (list, tuple)) or len(entry) != 2:
                raise ValueError(f"each LoRA is a (source, weight) pair (got {entry!r})")
            choices.append(check_choice(*entry))
        return tuple(choices)


@dataclass
class GenerationRequest:
    """One generation, checked: PIL RGB control images (pose, and depth or None), the frame
    numbers they stand for (prompt schedules use them), the output size, the reference image
    (PIL RGB or None), and ``known``: {index: PIL RGB image} of frames already generated (a
    previous segment's last frames, at the start of the request), which the video continues
    from; a pipeline does not yield them."""

    poses: Sequence
    depths: Sequence | None
    params: GenerateParams
    frame_numbers: list[int]
    width: int
    height: int
    reference: Any = None
    known: dict = field(default_factory=dict)


@dataclass
class Hooks:
    """progress(done, total): denoising work done so far (steps x frames or steps x windows).
    should_stop(): asked after every step (every window's step); True ends the run with
    GenerationCancelled. segment_done(): called by a temporal pipeline that makes its frames in
    segments when the frames yielded so far are final (the job queue publishes them then)."""

    progress: Callable[[int, int], Any] | None = None
    should_stop: Callable[[], bool] | None = None
    segment_done: Callable[[], Any] | None = None
    counters: dict = field(default_factory=dict)  # what a pipeline counts (tests, benches)

    def report(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, total)
        if self.should_stop is not None and self.should_stop():
            raise GenerationCancelled("generation cancelled at a denoising step")

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + amount


# --- frames in ----------------------------------------------------------------------------------

# Pillow's modes for 16-bit grey PNGs (16-bit depth maps); convert("RGB") would clip them at 255.
_WIDE_GREY_MODES = ("I;16", "I;16B", "I;16L", "I")


def rgb8(image):
    """A PIL image as 8-bit RGB; 16-bit grey keeps its top 8 bits instead of being clipped."""
    from PIL import Image

    if image.mode in _WIDE_GREY_MODES:
        grey = (np.asarray(image, dtype=np.uint32) >> 8).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    return image.convert("RGB")


def to_pil(frame, what: str, index: int):
    """One input frame as a PIL RGB image; ValueError naming the frame when it is not one."""
    from PIL import Image

    if isinstance(frame, Image.Image):
        # Already RGB: the image itself, not a copy (a long shot's frames are held once).
        return frame if frame.mode == "RGB" else rgb8(frame)
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"{what} frame {index} is not an image (got {type(frame).__name__})")
    if frame.dtype != np.uint8:
        raise ValueError(f"{what} frame {index} must be uint8 (got {frame.dtype})")
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4) or 0 in frame.shape[:2]:
        raise ValueError(f"{what} frame {index} must have shape (H, W, 3) (got {frame.shape})")
    return Image.fromarray(np.ascontiguousarray(frame[:, :, :3]), "RGB")


def on_white(image):
    """A reference image with its transparent parts made white (a PIL image or an (H, W, 4)
    array; anything else unchanged): a character cut out on transparency means the character
    alone, which is what a white background says to Wan VACE and to the IP-Adapter's image
    encoder, where dropping the alpha would show whatever colour the transparent pixels hold."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 4 or image.dtype != np.uint8:
            return image
        return np.asarray(on_white(Image.fromarray(image, "RGBA")))
    if not isinstance(image, Image.Image):
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image


class EncodedFrames(SequenceABC):
    """Frames held encoded (PNG bytes, as a job receives them) and decoded when read: a long shot
    at a high resolution is held compressed (a 512x512 pose map is tens of KB as PNG, 1 MB as an
    image), at the cost of decoding each frame when a pipeline needs it (once per denoising step
    for a temporal pipeline). ``decode(item)`` gives a PIL RGB image; indexing with a slice gives
    a list of them. ``size``: (width, height), all frames alike (checked by the caller)."""

    def __init__(self, items: Sequence, decode: Callable, size: tuple[int, int]):
        self._items = list(items)
        self._decode = decode
        self.size = tuple(size)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._decode(item) for item in self._items[index]]
        return self._decode(self._items[index])


def frames_to_pil(frames: Iterable, what: str):
    """The frames as PIL RGB images (EncodedFrames stay encoded); ValueError naming a bad one."""
    if frames is None:
        raise ValueError(f"no {what} frames given")
    if isinstance(frames, EncodedFrames):
        if not len(frames):
            raise ValueError(f"no {what} frames given (empty list)")
        return frames
    images = [to_pil(f, what, i) for i, f in enumerate(frames)]
    if not images:
        raise ValueError(f"no {what} frames given (empty list)")
    sizes = {im.size for im in images}
    if len(sizes) > 1:
        raise ValueError(f"{what} frames differ in size: {sorted(sizes)} (width, height)")
    return images


def to_uint8(images) -> np.ndarray:
    """Decoded frames in [0, 1] (numpy or torch, (N, H, W, 3)) -> uint8, rounded."""
    return (np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)


def control_tensor(images, width: int, height: int, device, dtype):
    """PIL images -> (n, 3, H, W) in [0, 1], as diffusers' ControlNet image processor makes them
    (Lanczos resize when the size differs, no normalisation)."""
    import torch
    from PIL import Image

    arrays = [
        np.asarray(im if im.size == (width, height) else im.resize((width, height), Image.LANCZOS))
        for im in images
    ]
    pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return (pixels.to(torch.float32) / 255.0).to(device=device, dtype=dtype)
