"""The batch commands behind cli.py: the command functions (their arguments: batch_parser.py).

Runs inside Blender (``blender -b shot.blend --python cli.py -- poses ...``) or with bpy as a
module (``python cli.py --blend shot.blend poses ...``); cli.py loads the .blend in the second
case, so here the scene is always already open.
"""
from __future__ import annotations

import sys
import time

from .batch_parser import EXIT_FAILURE, EXIT_USAGE, VIDEO_FLAGS, CommandError, build_parser

__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "CommandError", "build_parser", "main"]


def run_poses(args, scene, log=print) -> int:
    from .render import pose_map_run, pose_maps

    start, end = args.frames if args.frames else (None, None)
    try:
        job = pose_maps.plan_job(
            scene, output_dir=str(args.out), frame_start=start, frame_end=end,
            resolution=args.resolution, camera_name=args.camera, armature_names=args.armature,
            hands=args.hands, face=args.face, line_widths=args.line_widths,
            depth=args.depth, depth_mode=args.depth_mode, depth_bits=args.depth_bits,
            depth_subject=args.depth_subject, depth_range=args.depth_range, occlusion=args.occlusion,
        )
    except pose_maps.JobError as error:
        raise CommandError(str(error)) from None
    existing = job.existing_outputs()
    if existing and not args.overwrite:
        raise CommandError(
            f"{len(existing)} pose/depth map(s) of this range already exist in {job.output_dir} "
            f"(first: {existing[0].name}); pass --overwrite to replace them"
        )
    report = pose_map_run.JobReport()
    total = len(job.frames)
    shown = 0
    for fraction in pose_map_run.run_job(scene, job, report, workers=args.workers):
        percent = int(fraction * 100)
        if not report.frames_written:
            if percent >= shown + 10:  # the depth-range pass comes first
                shown = percent
                log(f"posebridge: measuring the shot's depth range ({percent}%)")
            continue
        if percent >= shown + 10 or report.frames_written == total:
            shown = percent
            log(f"posebridge: {report.frames_written}/{total} frames")
    log(f"posebridge: {report.summary(job)}")
    return 0


def run_import_pose(args, scene, log=print) -> int:
    import bpy

    from .render import import_job
    from .render.pose_maps import JobError

    if args.save and args.save.exists() and not args.overwrite:
        raise CommandError(f"{args.save} exists; pass --overwrite to replace it")
    if args.save and not args.save.resolve().parent.is_dir():
        raise CommandError(f"cannot save to {args.save}: its folder does not exist")
    _check_import_source(args)
    options = import_job.ImportOptions(
        keypoints=str(args.keypoints or ""), armature=args.armature, camera=args.camera,
        layout=args.layout, coordinates=args.coordinates, canvas=args.canvas,
        person=args.person, start_frame=args.start_frame, min_confidence=args.min_confidence,
        fix_swaps=not args.no_swap_fix, smooth=not args.no_smooth,
        depth_mode=args.depth.replace("-", "_"), ground=args.ground, lift=args.lift,
        camera_tilt=args.camera_tilt,
    )
    if args.video is not None:
        code = _extract_and_import(args, scene, options, log)
        if code:
            return code
    else:
        summary = import_job.ImportSummary()
        try:
            for fraction, stage in import_job.import_steps(scene, options, summary):
                if fraction < 1:
                    log(f"posebridge: {stage}")
        except JobError as error:
            raise CommandError(str(error)) from None
        log(f"posebridge: {summary.text()}")
        for note in summary.notes:
            log(f"posebridge:   {note}")
    if args.save:
        bpy.ops.wm.save_as_mainfile(filepath=str(args.save.resolve()), copy=True)
        log(f"posebridge: saved {args.save}")
    return 0


def _check_import_source(args) -> None:
    """--video and --keypoints each take their own flags: say which flag does not fit."""
    video_only = [f for f in VIDEO_FLAGS if getattr(args, f[2:].replace("-", "_")) is not None]
    if args.video is None and video_only:
        raise CommandError(f"{video_only[0]} only goes with --video (Extract and Import)")
    if args.video is not None:
        if args.canvas or args.layout:
            raise CommandError("--canvas and --layout do not go with --video: the extraction gives them")
        if not args.video.is_file():
            raise CommandError(f"--video {args.video}: no such file")


def _extract_and_import(args, scene, options, log) -> int:
    """import-pose --video: the backend's extraction, then the import (render/extract_job.py)."""
    import os

    from .render import extract_job
    from .render.pose_maps import JobError

    start, end = args.video_frames or (None, None)
    try:
        out_root = args.extract_dir.resolve() if args.extract_dir else extract_job.default_out_root()
    except JobError as error:
        raise CommandError(f"{error}; or pass --extract-dir") from None
    request = extract_job.ExtractRequest(
        video=args.video.resolve(), backend_url=args.backend or "http://127.0.0.1:8765",
        token=args.token or os.environ.get("POSEBRIDGE_TOKEN") or None, out_root=out_root,
        options=options, extractor=args.extractor or "mediapipe", every=args.every or 1, start=start,
        end=end, movie_strip=not args.no_movie_strip, background=not args.no_background)
    try:
        extract_job.check_request(scene, request)
    except JobError as error:
        raise CommandError(str(error)) from None
    try:
        outcome = extract_job.run_extract_import(scene, request, lambda line: log(f"posebridge: {line}"))
    except JobError as error:  # the backend failed or is not there (exit 1)
        print(f"posebridge: failed: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if outcome.cancelled:
        print(f"posebridge: failed: {outcome.text()}", file=sys.stderr)
        return EXIT_FAILURE
    log(f"posebridge: {outcome.text()}")
    for note in outcome.all_notes:
        log(f"posebridge:   {note}")
    return 0


def _check_video_flags(args) -> None:
    """The flags' own mistakes, named as flags (generate_job checks the rest in its words)."""
    from .generate.videos import WAN_VACE, CuttingError, cutting

    if args.stride > args.context and args.pipeline != WAN_VACE:  # Wan has no context windows
        raise CommandError(f"--stride {args.stride} must not exceed --context {args.context}: windows "
                           "that far apart would leave frames out")
    wan_only = [flag for flag, value in (("--resolution", args.resolution), ("--vace-control", args.vace_control))
                if value is not None]
    if wan_only and args.pipeline != WAN_VACE:  # Auto never means Wan: it is no backend's default
        raise CommandError(f"{wan_only[0]} only goes with --pipeline wan-vace (not {args.pipeline or 'Auto'})")
    if args.pipeline == WAN_VACE:
        try:
            cutting(WAN_VACE, args.segment)
        except CuttingError as error:
            raise CommandError(f"--segment {args.segment}: {error}") from None
    if args.reference is not None and not args.reference.is_file():
        raise CommandError(f"--reference {args.reference}: no such file")
    if args.loras and args.pipeline == WAN_VACE:
        raise CommandError("--lora goes with the SD1.5 pipelines (frames, animatediff), not wan-vace")


def run_generate(args, scene, log=print) -> int:
    import os

    import bpy

    from .render import generate_job, generate_settings, video_export, vse
    from .render.job_steps import Waiting
    from .render.pose_maps import JobError

    if args.save and args.save.exists() and not args.overwrite:
        raise CommandError(f"{args.save} exists; pass --overwrite to replace it")
    for path, what in ((args.mp4, "--mp4"), (args.compare, "--compare")):
        if path and path.exists() and not args.overwrite:
            raise CommandError(f"{what} {path} exists; pass --overwrite to replace it")
    if not args.poses.is_dir():
        raise CommandError(f"--poses {args.poses}: no such folder")
    if args.check and not (args.poses / "keypoints").is_dir():
        raise CommandError(f"--check: no keypoints beside the pose maps ({args.poses / 'keypoints'}); "
                           "render them with the poses command")
    _check_video_flags(args)
    params = dict(prompt=args.prompt, negative=args.negative, seed=args.seed, steps=args.steps,
                  guidance=args.guidance, pose_scale=args.pose_scale, depth_scale=args.depth_scale,
                  batch=args.batch)
    if args.loras:
        params["loras"] = args.loras
    params.update(generate_settings.video_params(args.pipeline, args.context, args.stride, args.identity_scale,
                                            resolution=args.resolution, vace_control=args.vace_control))
    out_dir = args.out.resolve()
    request = generate_job.GenerateRequest(
        backend_url=args.backend, token=args.token or os.environ.get("POSEBRIDGE_TOKEN") or None,
        out_dir=out_dir, params=params, strip_name=args.name or out_dir.name,
        poses_dir=args.poses.resolve(), depth_dir=args.depth.resolve() if args.depth else None,
        overwrite=args.overwrite, reference=args.reference.resolve() if args.reference else None,
        segment=args.segment,
    )
    if args.preview:
        request = generate_settings.as_preview(request)
    outcome = generate_job.GenerateOutcome()
    shown = None
    started = time.perf_counter()
    try:
        for step in generate_job.generate_steps(scene, request, outcome):
            fraction, stage = step if isinstance(step, tuple) else (step, "")
            line = f"{int(fraction * 100):3d}% {stage}"
            if line != shown:
                shown = line
                log(f"posebridge: {line}")
            if isinstance(step, Waiting):
                time.sleep(0.05)
    except generate_job.SettingsError as error:  # what was asked cannot work: a usage error
        raise CommandError(str(error)) from None
    except JobError as error:
        # The backend failed or went away: say so, and how many frames are kept (exit 1).
        print(f"posebridge: failed: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if outcome.cancelled:  # someone cancelled the job on the backend
        print(f"posebridge: failed: {outcome.summary()}", file=sys.stderr)
        return EXIT_FAILURE
    log(f"posebridge: {outcome.summary()} in {time.perf_counter() - started:.2f} s")
    if args.mp4:
        strip = vse.find_strip(scene, outcome.strip)
        result = video_export.export_mp4(strip, args.mp4, overwrite=args.overwrite)
        log(f"posebridge: wrote {result.path} ({result.frames} frames, {result.codec})")
    if args.compare:
        from .draw.compare_sheet import write_first_last_sheet

        first, last = write_first_last_sheet(request.out_dir, args.compare, request.poses_dir)
        log(f"posebridge: wrote {args.compare} (frames {first} and {last})")
    if args.save:
        bpy.ops.wm.save_as_mainfile(filepath=str(args.save.resolve()), copy=True)
        log(f"posebridge: saved {args.save}")
    if args.check:  # last: a failed check still leaves the frames, strip and files made above
        return run_check(args, request, log)
    return 0


def run_check(args, request, log=print) -> int:
    """``generate --check``: the pose adherence of the frames just generated; 1 when it fails."""
    from .generate.adherence import keypoints_folder
    from .generate.adherence_run import AdherenceCheck
    from .generate.client import BackendClient
    from .generate.run_state import DONE

    check = AdherenceCheck(BackendClient(request.backend_url, request.token), request.out_dir,
                           keypoints_folder(request.poses_dir), extractor=args.check_extractor,
                           threshold=args.check_threshold)
    shown = set()

    def progress(status):
        line = f"{int(status.progress * 100):3d}% {status.message}"
        if status.state != DONE and line not in shown:
            shown.add(line)
            log(f"posebridge: {line}")

    status = check.run_blocking(progress)
    for note in check.notes():
        log(f"posebridge:   {note}")
    if status.state != DONE:
        print(f"posebridge: failed: pose adherence: {status.message}", file=sys.stderr)
        return EXIT_FAILURE
    summary = status.summary
    log(f"posebridge: pose adherence score {summary.score:.3f} over {summary.frames_checked} frame(s), "
        f"worst frame {summary.worst_frame}")
    log(f"posebridge: flagged frames ({len(summary.flagged_frames)}): {summary.flagged_text(limit=50)}")
    picture = summary.report.with_name("adherence.png")
    log(f"posebridge: wrote {summary.report}" + (f" and {picture.name}" if picture.is_file() else ""))
    return 0


def run_demo(args, log=print) -> int:
    from .render import demo

    backend = demo.DemoBackend(url=args.backend, token=args.token,
                               python=str(args.backend_python) if args.backend_python else None,
                               steps=args.steps)
    if not (backend.url or backend.python):
        log("posebridge: no --backend or --backend-python: pose maps only, no generated frames")
    result = demo.run_demo(args.out, frame_count=args.frames, resolution=args.resolution,
                           save_blend=args.save or args.out / "demo.blend", log=log, backend=backend)
    log(f"posebridge: contact sheet {result.contact_sheet}")
    for kind, path in result.generated.items():
        log(f"posebridge: {kind}: {path}")
    return 0


def main(argv: list[str], scene=None) -> int:
    """Parse ``argv`` (the arguments after ``--``) and run the command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            return run_demo(args)
        import bpy

        scene = scene or bpy.context.scene
        if args.command == "import-pose":
            return run_import_pose(args, scene)
        if args.command == "generate":
            return run_generate(args, scene)
        return run_poses(args, scene)
    except CommandError as error:
        print(f"posebridge: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # a render farm must see a failure, not Blender's exit code 0
        print(f"posebridge: failed: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILURE
