"""The batch commands' arguments: cli.py's parser, its value types and the usage errors.

``batch.py`` runs the commands; this module only says what each accepts, so a wrong argument is
refused (exit 2) before Blender loads anything heavy.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from .generate.job_folder import PIPELINE_NAMES, VACE_CONTROLS, WAN_RESOLUTIONS
from .generate.videos import WAN_LEAD, WAN_SEGMENT

EXIT_USAGE = 2
EXIT_FAILURE = 1
MAX_IDENTITY_SCALE = 4.0  # the backend's limit (docs/backend_api.md)


class CommandError(Exception):
    """A problem with the command's input; printed as ``posebridge: error: ...``, exit 2."""


def _frame_range(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?", text)
    if not match:
        raise argparse.ArgumentTypeError(f"frames must look like A-B or A, got {text!r}")
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) is not None else start
    return start, end


def _video_frame_range(text: str) -> tuple[int, int]:
    """A video's frame indices: 0-based, so no negative start, and the end not before the start
    (the backend would refuse both, after the upload)."""
    start, end = _frame_range(text)
    if start < 0:
        raise argparse.ArgumentTypeError(f"video frames start at 0, got {text!r}")
    if end < start:
        raise argparse.ArgumentTypeError(f"the end comes before the start in {text!r}")
    return start, end


def _resolution(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"resolution must look like 512x512, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _lora(text: str) -> dict:
    """FILE_OR_ID[:WEIGHT] -> {"source", "weight"}; a last ':' part that is no number belongs to
    the source (C:\\styles\\a.safetensors)."""
    source, colon, weight = text.rpartition(":")
    try:
        value = float(weight) if colon else None
    except ValueError:
        value = None
    if value is None:
        source, value = text, 1.0
    if not source.strip():
        raise argparse.ArgumentTypeError(f"a LoRA needs a file or a Hugging Face id, got {text!r}")
    if not abs(value) <= 4.0:
        raise argparse.ArgumentTypeError(f"a LoRA's weight must be from -4 to 4, got {text!r}")
    return {"source": source.strip(), "weight": value}


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _identity_scale(text: str) -> float:
    value = _non_negative_float(text)
    if value > MAX_IDENTITY_SCALE:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_IDENTITY_SCALE:g}, got {text}")
    return value


def _depth_range(text: str) -> tuple[float, float]:
    match = re.fullmatch(r"\s*([\d.eE+-]+)\s*,\s*([\d.eE+-]+)\s*", text)
    try:
        near, far = (float(match.group(1)), float(match.group(2))) if match else (None, None)
    except ValueError:
        near = far = None
    if near is None or not 0 < near < far < float("inf"):
        raise argparse.ArgumentTypeError(f"depth range must look like NEAR,FAR with 0 < NEAR < FAR, got {text!r}")
    return near, far


def _person(text: str):
    if text == "auto":
        return "auto"
    if re.fullmatch(r"\d+", text):
        return int(text)
    match = re.fullmatch(r"\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"person must be auto, an index or X,Y, got {text!r}")
    return float(match.group(1)), float(match.group(2))


VIDEO_FLAGS = {  # import-pose --video only (None: not given)
    "--backend": dict(help="with --video: the backend URL (default: http://127.0.0.1:8765)"),
    "--token": dict(help="with --video: the backend's token (or set POSEBRIDGE_TOKEN)"),
    "--extractor": dict(choices=("mediapipe", "dwpose"), help="with --video: the pose detector (default: mediapipe)"),
    "--every": dict(type=_positive_int, help="with --video: extract every Nth video frame (default: 1)"),
    "--video-frames": dict(type=_video_frame_range, metavar="S-E",
                           help="with --video: only video frames S to E (0-based, inclusive)"),
    "--extract-dir": dict(type=Path, help="with --video: results go into a new folder here named after the "
                          "video (default: posebridge_extract beside the .blend)"),
    "--no-movie-strip": dict(action="store_const", const=True, help="with --video: no VSE movie strip"),
    "--no-background": dict(action="store_const", const=True, help="with --video: no camera background clip"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cli.py", description="PoseBridge batch commands (run inside Blender or with bpy)."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    poses = commands.add_parser("poses", help="render OpenPose maps and keypoint JSON")
    poses.add_argument("--out", required=True, type=Path, help="output folder")
    poses.add_argument("--armature", action="append", default=None,
                       help="armature to render (repeatable; default: every armature a rig map fits)")
    poses.add_argument("--camera", help="camera object (default: the scene camera)")
    poses.add_argument("--frames", type=_frame_range, help="frame range A-B (default: the scene's)")
    poses.add_argument("--resolution", type=_resolution, help="WxH (default: the scene's render size)")
    poses.add_argument("--hands", action="store_true", help="also draw and write the hands")
    poses.add_argument("--face", action="store_true", help="also draw and write the face")
    poses.add_argument("--line-widths", choices=("controlnet", "xinsir", "proportional"), default="controlnet",
                       help="controlnet: exactly as ControlNet's preprocessor (default); xinsir: wider "
                       "sticks at high resolutions as newer SDXL openpose models expect; proportional: "
                       "every size scaled with the image")
    poses.add_argument("--depth", action="store_true",
                       help="also write depth_NNNN.png beside each pose map (near bright, far dark, "
                       "background black; one range for the whole shot)")
    poses.add_argument("--depth-mode", choices=("inverse", "linear"), default="inverse",
                       help="inverse depth (default, as ControlNet depth models expect) or linear")
    poses.add_argument("--depth-bits", type=int, choices=(8, 16), default=8, help="grey PNG bit depth")
    poses.add_argument("--depth-subject", choices=("scene", "characters"), default="scene",
                       help="the whole scene (default) or the characters only (the set masked out)")
    poses.add_argument("--depth-range", type=_depth_range, metavar="NEAR,FAR",
                       help="distances from the camera mapped to white and black (default: the shot's own range)")
    poses.add_argument("--occlusion", action="store_true",
                       help="leave out keypoints the scene's geometry hides from the camera (other "
                       "objects, the character's own body mesh), as a detector would not see them")
    poses.add_argument("--overwrite", action="store_true",
                       help="replace pose and depth maps already in the output folder")
    poses.add_argument("--workers", type=_non_negative_int, default=None,
                       help="processes drawing and writing the maps while Blender samples the rig "
                       "(default: one per core but one, at most 7, for 48 frames or more; 0: all on "
                       "Blender's thread)")

    imp = commands.add_parser("import-pose", help="import video keypoints onto a rig as a new action")
    source = imp.add_mutually_exclusive_group(required=True)
    source.add_argument("--keypoints", type=Path,
                        help="folder of per-frame OpenPose JSON, a ComfyUI POSE_KEYPOINT file or one OpenPose frame")
    source.add_argument("--video", type=Path,
                        help="a video: the backend extracts its keypoints first (Extract and Import), the "
                        "video is added as a movie strip and the camera's background")
    imp.add_argument("--armature", required=True, help="the rig to animate")
    imp.add_argument("--camera", help="camera the video is seen through (default: the scene camera)")
    imp.add_argument("--canvas", type=_resolution,
                     help="WxH of the video when the file does not say (default: the scene's render size)")
    imp.add_argument("--layout", help="body layout: coco18, body25, body25b, coco17, dwpose133 (default: detected)")
    imp.add_argument("--coordinates", choices=("auto", "pixels", "normalized"), default="auto")
    imp.add_argument("--start-frame", type=int, help="first frame of the action (default: the scene's)")
    imp.add_argument("--person", type=_person, default="auto",
                     help="auto (most prominent), an index in the first frame, or a pixel X,Y")
    imp.add_argument("--min-confidence", type=float, default=0.1, help="points below are absent")
    imp.add_argument("--no-smooth", action="store_true", help="keep the detector's jitter")
    imp.add_argument("--no-swap-fix", action="store_true", help="do not repair left/right swaps")
    imp.add_argument("--depth", choices=("rig-size", "fixed"), default="rig-size",
                     help="distance from the camera: from the rig's size (default) or held fixed")
    imp.add_argument("--ground", action="store_true", help="keep the feet on the ground")
    imp.add_argument("--lift", choices=("learned", "geometric"), default="learned",
                     help="each arm and leg's depth read by the learned lifter (learned, default), or from "
                     "the rig's bone lengths with continuity and joint limits (geometric)")
    imp.add_argument("--camera-tilt", choices=("scene", "image"), default="scene",
                     help="the learned lift takes the camera's tilt against the floor from the scene camera "
                     "(scene, default: match it to the shot) or reads it from the image (image)")
    imp.add_argument("--save", type=Path, help="save the result as this .blend")
    imp.add_argument("--overwrite", action="store_true", help="allow --save to replace an existing file")
    for flag, extra in VIDEO_FLAGS.items():
        imp.add_argument(flag, **extra)

    gen = commands.add_parser(
        "generate", help="send pose (and depth) maps to the generation backend; frames land as one VSE strip")
    gen.add_argument("--backend", default="http://127.0.0.1:8765", help="backend URL (default: %(default)s)")
    gen.add_argument("--token", help="the backend's token (or set POSEBRIDGE_TOKEN)")
    gen.add_argument("--poses", required=True, type=Path, help="folder of pose_NNNN.png (as `poses` writes)")
    gen.add_argument("--depth", type=Path, help="folder of depth_NNNN.png (default: none)")
    gen.add_argument("--prompt", required=True,
                     help='what the frames show; "1: walking | 48: running" travels from one prompt to '
                     "the next between those frames (the scene's frame numbers)")
    gen.add_argument("--negative", default="", help="what they should not show")
    gen.add_argument("--seed", type=_non_negative_int, default=0)
    gen.add_argument("--steps", type=_positive_int, default=20)
    gen.add_argument("--guidance", type=_non_negative_float, default=7.5)
    gen.add_argument("--pose-scale", type=_non_negative_float, default=1.0)
    gen.add_argument("--depth-scale", type=_non_negative_float, default=1.0)
    gen.add_argument("--batch", type=_positive_int, default=4,
                     help="frames pipeline: frames per UNet call on the backend")
    gen.add_argument("--pipeline", choices=PIPELINE_NAMES,
                     help="animatediff: the range as one video (steady look, smooth motion); frames: "
                     "each frame on its own; wan-vace: Wan 2.1 VACE, a video transformer, the range in "
                     f"segments of {WAN_SEGMENT} frames (default: the backend's default, animatediff when "
                     "it has a motion module)")
    gen.add_argument("--context", type=_positive_int, default=16,
                     help="animatediff: frames per context window (default: %(default)s)")
    gen.add_argument("--stride", type=_positive_int, default=4,
                     help="animatediff: frames between window starts, at most --context (default: %(default)s)")
    gen.add_argument("--segment", type=_positive_int,
                     help="frames per job, each continuing from the previous one's last frames. "
                     "animatediff: new frames per job (default: the whole range as one video); wan-vace: "
                     f"the clip length, counting the {WAN_LEAD} frames it continues from, at least "
                     f"{WAN_LEAD + 4} (default: {WAN_SEGMENT}, as Wan was trained)")
    gen.add_argument("--resolution", choices=WAN_RESOLUTIONS,
                     help="wan-vace: the size Wan generates at, 480p (default; the 1.3B model's) or 720p "
                     "(the 14B model's) near the pose maps' aspect, or maps (the pose maps' own size); the "
                     "frames come back at the pose maps' size")
    gen.add_argument("--vace-control", choices=VACE_CONTROLS,
                     help="wan-vace: the control video, the pose maps (pose), the depth maps (depth), or "
                     "the pose drawn over the depth maps (pose_over_depth: pose for the character, depth "
                     "for the set); the last two need depth maps, --depth or depth_NNNN.png beside the pose maps "
                     "(default: pose_over_depth with depth maps, else pose)")
    gen.add_argument("--reference", type=Path,
                     help="PNG image of the character: every frame is steered towards its identity")
    gen.add_argument("--identity-scale", type=_identity_scale, default=0.6,
                     help="how strongly the frames follow --reference, 0..4 (default: %(default)s)")
    gen.add_argument("--lora", dest="loras", action="append", type=_lora, default=[], metavar="FILE_OR_ID[:WEIGHT]",
                     help="a LoRA the backend applies (frames, animatediff; repeatable): a .safetensors file on the "
                     "backend's machine or a Hugging Face id, weight 1 unless given")
    gen.add_argument("--preview", action="store_true",
                     help="the fast preview: the backend's few-step LoRA per frame at half size, into --out's "
                     "preview/ subfolder and a strip of its own (the final frames are left alone)")
    gen.add_argument("--out", required=True, type=Path, help="folder for frame_NNNN.png")
    gen.add_argument("--name", help="name of the VSE strip (default: the output folder's name)")
    gen.add_argument("--overwrite", action="store_true",
                     help="regenerate frames in --out made with other settings or other pose maps")
    gen.add_argument("--mp4", type=Path, help="also export the strip as this MP4")
    gen.add_argument("--compare", type=Path, help="also write the first-vs-last frame sheet as this PNG")
    gen.add_argument("--save", type=Path, help="save the .blend with the strip as this file")
    gen.add_argument("--check", action="store_true",
                     help="then check the frames' pose adherence on the backend (the pose detected in "
                     "each frame against the keypoints beside the pose maps, --poses/keypoints): writes "
                     "adherence.json and adherence.png into --out, prints the score and the flagged "
                     "frames. On a folder already generated with these settings nothing is regenerated")
    gen.add_argument("--check-threshold", type=_fraction,
                     help="--check flags frames whose body PCK is below this, 0..1 (default: the backend's, 0.5)")
    gen.add_argument("--check-extractor", choices=("mediapipe", "dwpose"), default="mediapipe",
                     help="the backend's pose detector for --check (default: %(default)s)")

    demo = commands.add_parser("demo", help="build the demo shot, render its pose maps and a contact sheet")
    demo.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    demo.add_argument("--frames", type=int, default=72, help="length of the demo shot in frames")
    demo.add_argument("--resolution", type=_resolution, default=(512, 512))
    demo.add_argument("--save", type=Path,
                      help="save the demo shot (with the generated strip) as this .blend (default: OUT/demo.blend)")
    demo.add_argument("--backend", help="generate with the backend at this URL")
    demo.add_argument("--token", help="that backend's token")
    demo.add_argument("--backend-python", type=Path,
                      help="or start a local backend with this Python (torch, diffusers): the default models "
                      "when they are in the Hugging Face cache, else the tiny random-weight model")
    demo.add_argument("--steps", type=_positive_int, help="denoising steps (default: 20, 8 with the tiny model)")
    return parser
