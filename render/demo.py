"""The demo job: build the demo shot, render its pose and depth maps, show them beside plain
renders; then, with a backend, generate its frames into one VSE strip, export an MP4 and a
first-vs-last sheet."""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np

from ..draw.contact_sheet import contact_sheet
from ..draw.png import read_png, write_png
from . import pose_map_run, pose_maps, vse
from .demo_shot import build_demo_shot
from .plain_render import load_rgb, render_workbench_frames

SHEET_FRAMES = 6


DEMO_PROMPT = "a knight in silver armour dancing in a sunlit courtyard, detailed, cinematic"
DEMO_NEGATIVE = "blurry, deformed, extra limbs"
# The tiny stand-in model makes noise whatever the step count or size: fewer steps and half the
# size keep the demo quick (its attention at 512x512 costs minutes on a CPU); the strip is fitted
# to the render size anyway.
TINY_STEPS = 8
TINY_SCALE = 0.5


@dataclass
class DemoResult:
    poses_dir: Path
    contact_sheet: Path
    report: pose_map_run.JobReport
    generated: dict = field(default_factory=dict)  # what the generation stage wrote, by kind


@dataclass
class DemoBackend:
    """Where the demo's frames come from: a running backend's URL, or a Python to start one."""

    url: str | None = None
    token: str | None = None
    python: str | None = None
    steps: int | None = None


def sheet_frames(frame_start: int, frame_end: int, count: int = SHEET_FRAMES) -> list[int]:
    """``count`` frames spread evenly over the range, ends included."""
    span = frame_end - frame_start
    count = max(1, min(count, span + 1))
    if count == 1:
        return [frame_start]
    return sorted({frame_start + round(i * span / (count - 1)) for i in range(count)})


def run_demo(out_dir, frame_count: int = 72, resolution=(512, 512), save_blend=None, log=print,
             backend: DemoBackend | None = None) -> DemoResult:
    out_dir = Path(out_dir).resolve()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    log(f"posebridge: building the demo shot ({frame_count} frames, {resolution[0]}x{resolution[1]})")
    build_demo_shot(scene, frame_count=frame_count, resolution=resolution)
    # Depth maps too: the generation stage then runs pose and depth ControlNets together.
    job = pose_maps.plan_job(scene, output_dir=str(out_dir / "poses"), hands=True, face=True, depth=True)
    report = pose_map_run.render_pose_maps(scene, job)
    log(f"posebridge: {report.summary(job)}")

    frames = sheet_frames(scene.frame_start, scene.frame_end)
    log(f"posebridge: plain Workbench renders of frames {frames}")
    renders = render_workbench_frames(scene, frames, out_dir / "renders")
    rows = [(f, [load_rgb(r), read_png(job.pose_path(f)), _grey_to_rgb(read_png(job.depth_path(f)))])
            for f, r in zip(frames, renders)]
    sheet_path = out_dir / "contact_sheet.png"
    write_png(sheet_path, contact_sheet(rows))
    result = DemoResult(job.output_dir, sheet_path, report)
    if backend is not None and (backend.url or backend.python):
        result.generated = generate_demo_frames(scene, out_dir, backend, log)
    if save_blend:
        bpy.ops.wm.save_as_mainfile(filepath=str(Path(save_blend).resolve()))
        log(f"posebridge: saved the demo shot as {save_blend}")
    return result


def _grey_to_rgb(image):
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image[:, :, :3]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_backend(python: str, out_dir: Path, log):
    """A backend for the demo: the default models when they are in the Hugging Face cache, else
    the tiny random-weight set (made under out_dir). Offline either way: nothing is downloaded."""
    from ..generate.launcher import start_local_backend

    log_path = out_dir / "backend.log"
    backend = start_local_backend(
        python, port=_free_port(), log_path=log_path, env={"HF_HUB_OFFLINE": "1"},
        extra_args=["--fallback-tiny-model", str(out_dir / "tiny-model")],
    )
    log(f"posebridge: starting a local backend ({python}); log: {log_path}")
    started = time.perf_counter()
    try:
        health = backend.wait_until_ready(timeout=900)
    except Exception:
        backend.stop()
        raise
    log(f"posebridge: backend ready in {time.perf_counter() - started:.0f} s on {health.get('device')}")
    return backend, health


def generate_demo_frames(scene, out_dir: Path, demo_backend: DemoBackend, log) -> dict:
    """Generate the demo's frames from its pose maps; returns the paths written."""
    from ..generate.client import BackendClient
    from ..draw.compare_sheet import write_first_last_sheet
    from . import generate_job, video_export
    from .job_steps import Waiting
    from .pose_maps import JobError

    local = None
    url, token = demo_backend.url, demo_backend.token
    if url is None:
        local, health = _start_backend(demo_backend.python, out_dir, log)
        url = local.url
    else:
        health = BackendClient(url, token).health()
    try:
        tiny = (health.get("models") or {}).get("fallback") == "tiny"
        if tiny:
            log("posebridge: the default models are not in the Hugging Face cache: generating with the "
                "tiny random-weight model (its frames are coloured noise; see README for real models)")
        steps = demo_backend.steps or (TINY_STEPS if tiny else 20)
        params = dict(prompt=DEMO_PROMPT, negative=DEMO_NEGATIVE, seed=0, steps=steps, batch=4)
        if tiny:
            render = scene.render
            params["width"] = max(8, int(render.resolution_x * TINY_SCALE) // 8 * 8)
            params["height"] = max(8, int(render.resolution_y * TINY_SCALE) // 8 * 8)
        # No "pipeline" in the params: the backend's default, AnimateDiff (the whole shot as one
        # video) whenever it has a motion module, as the tiny fallback set does too.
        request = generate_job.GenerateRequest(
            backend_url=url, token=token, out_dir=out_dir / "generated", strip_name="PoseBridge demo",
            poses_dir=out_dir / "poses", overwrite=True,
            params=params,
        )
        outcome = generate_job.GenerateOutcome()
        shown = -10
        for step in generate_job.generate_steps(scene, request, outcome):
            if step[0] * 100 >= shown + 10:
                shown = int(step[0] * 100)
                log(f"posebridge: {shown:3d}% {step[1]}")
            if isinstance(step, Waiting):
                time.sleep(0.05)
        if outcome.cancelled:
            raise JobError(outcome.message)
        log(f"posebridge: {outcome.summary()}")
    finally:
        if local is not None:
            local.stop()
    strip = vse.find_strip(scene, outcome.strip)
    video = video_export.export_mp4(strip, out_dir / "generated.mp4", overwrite=True)
    compare = out_dir / "first_vs_last.png"
    write_first_last_sheet(request.out_dir, compare, request.poses_dir)
    log(f"posebridge: wrote {video.path} and {compare}")
    return {"frames": request.out_dir, "video": video.path, "compare": compare}
