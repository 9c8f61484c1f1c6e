"""The demo job: build the demo shot, render its pose maps, show them beside plain renders."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bpy

from ..pose.contact_sheet import contact_sheet
from ..pose.png import read_png, write_png
from . import pose_maps
from .demo_shot import build_demo_shot
from .plain_render import load_rgb, render_workbench_frames

SHEET_FRAMES = 6


@dataclass
class DemoResult:
    poses_dir: Path
    contact_sheet: Path
    report: pose_maps.JobReport


def sheet_frames(frame_start: int, frame_end: int, count: int = SHEET_FRAMES) -> list[int]:
    """``count`` frames spread evenly over the range, ends included."""
    span = frame_end - frame_start
    count = max(1, min(count, span + 1))
    if count == 1:
        return [frame_start]
    return sorted({frame_start + round(i * span / (count - 1)) for i in range(count)})


def run_demo(out_dir, frame_count: int = 72, resolution=(512, 512), save_blend=None, log=print) -> DemoResult:
    out_dir = Path(out_dir).resolve()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    log(f"posebridge: building the demo shot ({frame_count} frames, {resolution[0]}x{resolution[1]})")
    build_demo_shot(scene, frame_count=frame_count, resolution=resolution)
    if save_blend:
        bpy.ops.wm.save_as_mainfile(filepath=str(Path(save_blend).resolve()))

    job = pose_maps.plan_job(scene, output_dir=str(out_dir / "poses"), hands=True, face=True)
    report = pose_maps.render_pose_maps(scene, job)
    log(f"posebridge: {report.summary(job)}")

    frames = sheet_frames(scene.frame_start, scene.frame_end)
    log(f"posebridge: plain Workbench renders of frames {frames}")
    renders = render_workbench_frames(scene, frames, out_dir / "renders")
    rows = [(f, [load_rgb(r), read_png(job.pose_path(f))]) for f, r in zip(frames, renders)]
    sheet_path = out_dir / "contact_sheet.png"
    write_png(sheet_path, contact_sheet(rows))
    return DemoResult(job.output_dir, sheet_path, report)
