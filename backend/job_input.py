"""A job request's frames -> checked FrameInputs: base64 PNGs decoded, sizes compared.

Every problem raises BadJobInput naming it (the server answers 400 with the message). Images are
decoded once here to prove they are images; the job keeps the encoded bytes and decodes them
again batch by batch (backend/jobs.py), so a long job's images are not all held decoded.

Only PNG is accepted, and an image's size (from its header) is checked before any pixel is
decoded: a few KB of PNG can claim 12000x12000 and take gigabytes to decode.
"""

from __future__ import annotations

import base64
import binascii
import io

from .jobs import FrameInput

# The same bound as params width/height (api_models.JobParams); nothing larger is ever generated.
# The pixel count is what decoding costs, so it is capped too (should the sides ever differ).
MAX_SIDE = 4096
MAX_PIXELS = MAX_SIDE * MAX_SIDE


class BadJobInput(ValueError):
    """A job request that is well-formed JSON but cannot be run: the message names the problem."""


def png_image_bytes(text: str, label: str) -> tuple[bytes, tuple[int, int]]:
    """(bytes, (width, height)) of a base64 PNG, fully decoded once to prove it is one, but only
    after its header's size is within MAX_SIDE / MAX_PIXELS."""
    from PIL import Image

    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadJobInput(f"{label} is not an image (not valid base64)") from None
    try:
        # formats=["PNG"]: no other decoder (JPEG, TIFF, BMP...) ever sees client bytes.
        image = Image.open(io.BytesIO(data), formats=["PNG"])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard: its error comes over ~179 M pixels; its warning (over ~89 M) only
        # when warnings are errors, else our size check below refuses those images anyway.
        raise BadJobInput(
            f"{label}: larger than {MAX_SIDE}x{MAX_SIDE} (decompression bomb guard: {exc})"
        ) from None
    except Exception:  # UnidentifiedImageError, or one of many kinds for a broken PNG header
        raise BadJobInput(f"{label}: not a PNG image (Pillow cannot read it as one)") from None
    with image:
        size = image.size  # from the header: nothing is decoded yet
        if size[0] > MAX_SIDE or size[1] > MAX_SIDE or size[0] * size[1] > MAX_PIXELS:
            raise BadJobInput(f"{label}: {_size_text(size)} is larger than {MAX_SIDE}x{MAX_SIDE}")
        if 0 in size:
            raise BadJobInput(f"{label} image is empty ({_size_text(size)})")
        try:
            image.load()
        except Exception:  # truncated or corrupt pixel data
            raise BadJobInput(f"{label}: not a PNG image (its pixel data cannot be decoded)") from None
    return data, size


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def decode_frames(frames, *, has_depth: bool, lead=()) -> list[FrameInput]:
    """``frames``: objects with .frame, .pose, .depth (api_models.JobFrame); ``lead``: frames
    generated before (api_models.LeadFrame, with .image), which come first in the result with
    ``given`` set. Checks: not empty, unique frame numbers, lead frames before the others, depth
    for all frames or none, depth only with a depth ControlNet, every image decodable, all pose
    images one size, each depth image its pose's size."""
    if not frames:
        raise BadJobInput("empty job: no frames given")
    if lead and max(f.frame for f in lead) >= min(f.frame for f in frames):
        raise BadJobInput("lead frames must come before the job's frames (lower frame numbers)")
    frames = [*lead, *frames]
    seen, duplicates = set(), []
    for f in frames:
        if f.frame in seen and f.frame not in duplicates:
            duplicates.append(f.frame)
        seen.add(f.frame)
    if duplicates:
        raise BadJobInput(f"duplicate frame numbers: {', '.join(map(str, duplicates))}")
    with_depth = [f.frame for f in frames if f.depth is not None]
    if with_depth and not has_depth:
        raise BadJobInput("depth given, but the backend was started without a depth ControlNet")
    if with_depth and len(with_depth) != len(frames):
        missing = [f.frame for f in frames if f.depth is None]
        raise BadJobInput(f"depth must be given for every frame or none; missing for frames {missing[:10]}")

    decoded, first_size = [], None
    for f in frames:
        pose, pose_size = png_image_bytes(f.pose, f"frame {f.frame} pose")
        if first_size is None:
            first_size = pose_size
        elif pose_size != first_size:
            raise BadJobInput(
                f"frames of different sizes: frame {frames[0].frame} is {_size_text(first_size)},"
                f" frame {f.frame} is {_size_text(pose_size)}"
            )
        depth = None
        if f.depth is not None:
            depth, depth_size = png_image_bytes(f.depth, f"frame {f.frame} depth")
            if depth_size != pose_size:
                raise BadJobInput(
                    f"frame {f.frame}: pose/depth size mismatch: pose is {_size_text(pose_size)},"
                    f" depth {_size_text(depth_size)}"
                )
        given = getattr(f, "image", None)
        if given is not None:
            given, _ = png_image_bytes(given, f"lead frame {f.frame} image")
        decoded.append(FrameInput(f.frame, pose, depth, given))
    return decoded


def frame_size(frames: list[FrameInput]) -> tuple[int, int]:
    """(width, height) of a decoded job's frames."""
    from PIL import Image

    with Image.open(io.BytesIO(frames[0].pose), formats=["PNG"]) as image:
        return image.size


def decode_reference(text: str) -> bytes:
    """The identity reference (a base64 PNG) checked as the frames are; its PNG bytes."""
    data, _ = png_image_bytes(text, "reference")
    return data
