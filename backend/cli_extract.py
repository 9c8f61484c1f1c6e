"""``posebridge-backend extract`` and ``posebridge-backend adherence``: the analysis commands.

    posebridge-backend extract clip.mp4 --out DIR [--extractor mediapipe|dwpose] [--every N]
                       [--start S] [--end E] [--maps] [--body-only] [--dwpose-dir DIR]
    posebridge-backend adherence --generated DIR --keypoints DIR [--out DIR]
                       [--extractor mediapipe|dwpose] [--threshold T] [--dwpose-dir DIR]

Usage errors (a missing file or folder, a bad range, an --out folder that is not empty) exit 2
as argparse does; an extraction or check that cannot run (an unreadable video, a missing model
file) exits 1 with one line saying why; Ctrl-C exits 130, keeping the frames already written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEVICES = ("auto", "cpu", "cuda")
# Nothing from .extract is imported until a command runs: the parser is also built where the
# backend package stands alone (tests import it as ``backend``), and the registry then checks
# the --extractor name (check_extractor).
EXTRACTOR_HELP = "mediapipe (the default: one person, CPU, offline) or dwpose (every person; needs its model files)"


def _count(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum} (got {value})")
        return value

    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (got {value})")
    return value


def add_commands(commands) -> None:
    """The two subcommands on the main parser's subparsers."""
    extract = commands.add_parser("extract", help="extract the poses of a video into an OpenPose JSON folder")
    extract.set_defaults(command_parser=extract)
    add = extract.add_argument
    add("video", help="the video file (mp4, mov, mkv, webm, avi...)")
    add("--out", required=True, help="output folder (made; must be empty if it exists)")
    add("--extractor", default="mediapipe", help=EXTRACTOR_HELP)
    add("--every", type=_count(1), default=1, help="every Nth frame (default 1)")
    add("--start", type=_count(0), help="first video frame index, 0-based (default: the first)")
    add("--end", type=_count(0), help="last video frame index, inclusive (default: the last)")
    add("--maps", action="store_true", help="also draw the pose maps (maps/pose_NNNN.png)")
    add("--body-only", action="store_true", help="body only: no hands, no face (faster)")
    add("--dwpose-dir", help="folder holding DWPose's yolox_l.onnx and dw-ll_ucoco_384.onnx")
    add("--device", choices=DEVICES, default="auto", help="dwpose: where onnxruntime runs")

    check = commands.add_parser("adherence", help="check generated frames against the keypoints of their pose maps")
    check.set_defaults(command_parser=check)
    add = check.add_argument
    add("--generated", required=True, help="folder of generated frames (frame_NNNN.png)")
    add("--keypoints", required=True, help="folder of pose_NNNN_keypoints.json (beside the pose maps)")
    add("--out", help="where adherence.json and adherence.png go (default: the --generated folder)")
    add("--extractor", default="mediapipe", help=EXTRACTOR_HELP)
    add("--threshold", type=_fraction, default=0.5, help="flag frames whose body PCK is below it (default 0.5)")
    add("--dwpose-dir", help="folder holding DWPose's model files")


def check_extractor(args, parser) -> None:
    from .extract import EXTRACTORS

    if args.extractor not in EXTRACTORS:
        parser.error(f"--extractor: unknown extractor {args.extractor!r} (known: {', '.join(EXTRACTORS)})")


def check_dwpose_dir(args, parser) -> None:
    if args.dwpose_dir and not Path(args.dwpose_dir).expanduser().is_dir():
        parser.error(f"--dwpose-dir: no such folder: {args.dwpose_dir}")


class _Progress:
    """``extracting clip.mp4: 12/40`` on one terminal line (nothing when stderr is not a terminal)."""

    def __init__(self, label: str):
        self.label = label
        self.shown = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if self.shown:
            print(f"\r{self.label}: {done}/{total}", end="", file=sys.stderr, flush=True)

    def end(self) -> None:
        if self.shown:
            print(file=sys.stderr, flush=True)


def extract_command(args, parser) -> int:
    from .extract import PARTS
    from .extract.base import ExtractionError
    from .extract.run import extract_video

    video, out = Path(args.video), Path(args.out)
    if not video.is_file():
        parser.error(f"no such video file: {video}")
    if args.start is not None and args.end is not None and args.end < args.start:
        parser.error(f"--end {args.end} is before --start {args.start}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        parser.error(f"--out {out} exists and is not an empty folder: choose a new one")
    check_extractor(args, parser)
    check_dwpose_dir(args, parser)
    progress = _Progress(f"extracting {video.name}")
    try:
        result = extract_video(
            video, out, extractor=args.extractor, every=args.every, start=args.start, end=args.end,
            maps=args.maps, parts=("body",) if args.body_only else PARTS, model_dir=args.dwpose_dir,
            device=args.device, on_progress=progress,
        )
    except ExtractionError as error:
        progress.end()
        print(f"posebridge-backend extract: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        progress.end()
        print(f"posebridge-backend extract: interrupted; the frames done are kept in {out}", file=sys.stderr)
        return 130
    progress.end()
    info = result.info
    seen = sum(1 for count in result.people if count)
    print(
        f"extracted {len(result.frames)} frame(s) of {video.name} ({info['width']}x{info['height']}, "
        f"{info['fps']:.4g} fps) with {info['extractor']} into {out}: somebody in {seen}, "
        f"{result.frames_per_second:.1f} frames/s",
        flush=True,
    )
    if info.get("note"):
        print(f"note: {info['note']}", flush=True)
    return 0


def adherence_command(args, parser) -> int:
    from .adherence_run import AdherenceError, check_adherence
    from .extract.base import ExtractionError

    for flag, folder in (("--generated", args.generated), ("--keypoints", args.keypoints)):
        if not Path(folder).is_dir():
            parser.error(f"{flag}: no such folder: {folder}")
    check_extractor(args, parser)
    check_dwpose_dir(args, parser)
    out = Path(args.out) if args.out else Path(args.generated)
    progress = _Progress("checking pose adherence")
    options = {"model_dir": args.dwpose_dir} if args.dwpose_dir else None
    try:
        document = check_adherence(
            args.generated, args.keypoints, out_dir=out, extractor=args.extractor,
            threshold=args.threshold, on_progress=progress, extractor_options=options,
        )
    except (AdherenceError, ExtractionError) as error:
        progress.end()
        print(f"posebridge-backend adherence: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        progress.end()
        print("posebridge-backend adherence: interrupted; nothing written", file=sys.stderr)
        return 130
    progress.end()
    flagged = document.get("flagged_frames") or []
    worst = document.get("worst_frames") or []
    print(
        f"pose adherence {document['score']:.3f} over {len(document['frames'])} frame(s); worst: "
        f"{', '.join(map(str, worst)) or 'none'}; flagged: {', '.join(map(str, flagged)) or 'none'}; "
        f"written to {out / 'adherence.json'} and adherence.png",
        flush=True,
    )
    return 0


COMMANDS = {"extract": extract_command, "adherence": adherence_command}
