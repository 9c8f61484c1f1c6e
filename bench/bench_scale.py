"""Benchmark: one job spread over Ray Serve replicas (issue 12).

    <backend venv>/bin/python bench/bench_scale.py [--frames 48] [--size 128] [--steps 10] [--batch 4]

The same job (tiny random-weight model, same poses, seed and settings) on, one after another:

(a) the single-process backend (`serve`), torch limited to one thread (OMP_NUM_THREADS=1): the
    baseline;
(b) `serve --ray --replicas 1 --replica-threads 1`: the scaled-out backend on one replica;
(c) `serve --ray --replicas 2 --replica-threads 1`: on two.

Each starts warm (models loaded, one small job run first). Frames/s are the job's own, from its
start to its end as the backend reports them. Targets on a 2-core machine: (c) at least 1.7x the
frames/s of (b); Ray's scheduling cost per work unit ((b)'s time minus (a)'s, over (b)'s units) at
most 5% of a unit's time. All three must give the same frames, bit for bit.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
import backend_process  # noqa: E402  (starts the backend as a real process, as the tests do)

TARGET_SPEEDUP = 1.7
TARGET_OVERHEAD = 0.05
UNITS_PER_REPLICA = 2  # backend/scale/scaled_queue.py's per_replica


def pose_png(shift: int, size: int) -> str:
    image = np.zeros((size, size, 3), np.uint8)
    unit = size // 16
    image[2 * unit:14 * unit, 5 * unit + shift:6 * unit + shift] = (255, 0, 0)
    image[5 * unit:6 * unit, 2 * unit + shift:10 * unit + shift] = (0, 255, 0)
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def job_body(frames: int, size: int, steps: int, batch: int) -> dict:
    params = {"prompt": "a dancer", "seed": 0, "steps": steps, "batch": batch, "pipeline": "frames"}
    return {"name": "bench", "params": params,
            "frames": [{"frame": n + 1, "pose": pose_png(n % (size // 4), size)} for n in range(frames)]}


def call(server, method: str, path: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, method=method, headers=server.headers)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=120) as response:
        raw = response.read()
        return json.loads(raw) if response.headers["Content-Type"] == "application/json" else raw


def run_job(server, body: dict) -> tuple[float, list[bytes]]:
    """(the job's seconds from its start to its end, its frames' PNG bytes)."""
    job = call(server, "POST", "/jobs", body)
    while job["state"] not in ("done", "failed", "cancelled"):
        time.sleep(0.25)  # as a client polls: often enough, without taking a core from the replicas
        job = call(server, "GET", f"/jobs/{job['id']}")
    if job["state"] != "done":
        raise RuntimeError(f"the job ended {job['state']}: {job['error']}")
    frames = [call(server, "GET", f"/jobs/{job['id']}/frames/{n}") for n in job["frames"]]
    return job["finished"] - job["started"], frames


def measure(root: Path, name: str, extra_args: tuple, env: dict, body: dict, warm_body: dict):
    timeout = backend_process.RAY_START_TIMEOUT
    with backend_process.start_backend(root / name, extra_args=extra_args, env=env, timeout=timeout) as server:
        run_job(server, warm_body)
        return run_job(server, body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if not backend_process.has_ray():
        print("the backend Python has no ray[serve] (backend/requirements.txt)", file=sys.stderr)
        return 1
    body = job_body(args.frames, args.size, args.steps, args.batch)
    warm_body = job_body(2 * args.batch, args.size, 2, args.batch)
    one_thread = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    ray = ("--ray", "--replica-threads", "1", "--replicas")
    with tempfile.TemporaryDirectory(prefix="posebridge-bench-scale-") as folder:
        root = Path(folder)
        single, single_frames = measure(root, "single", (), one_thread, body, warm_body)
        one, one_frames = measure(root, "ray1", (*ray, "1"), {}, body, warm_body)
        two, two_frames = measure(root, "ray2", (*ray, "2"), {}, body, warm_body)

    batches = -(-args.frames // args.batch)
    units_one = min(batches, UNITS_PER_REPLICA)
    overhead = (one - single) / single  # per unit: (one - single) / units over single / units
    speedup = one / two
    identical = single_frames == one_frames == two_frames
    figures = {
        "job": {"frames": args.frames, "size": args.size, "steps": args.steps, "batch": args.batch},
        "seconds": {"single_process": round(single, 3), "ray_1_replica": round(one, 3),
                    "ray_2_replicas": round(two, 3)},
        "frames_per_s": {"single_process": round(args.frames / single, 2), "ray_1_replica": round(args.frames / one, 2),
                         "ray_2_replicas": round(args.frames / two, 2)},
        "speedup_2_over_1": round(speedup, 3),
        "speedup_2_over_single_process": round(single / two, 3),
        "overhead_per_unit": round(overhead, 4),
        "units_on_1_replica": units_one,
        "frames_identical": identical,
    }
    print(f"job: {args.frames} frames, {args.size}x{args.size}, {args.steps} steps, batch {args.batch}, tiny model, "
          "one torch thread per process")
    for key, label in (("single_process", "single process (baseline)"), ("ray_1_replica", "Ray Serve, 1 replica"),
                       ("ray_2_replicas", "Ray Serve, 2 replicas")):
        print(f"  {label:28s} {figures['seconds'][key]:7.2f} s  {figures['frames_per_s'][key]:6.2f} frames/s")
    verdict = "met" if speedup >= TARGET_SPEEDUP else "MISSED"
    print(f"speed-up, 2 replicas over 1: {speedup:.2f}x (target >= {TARGET_SPEEDUP}x: {verdict}); "
          f"over the single process: {single / two:.2f}x")
    verdict = "met" if overhead <= TARGET_OVERHEAD else "MISSED"
    print(f"scheduling overhead per unit ({units_one} units of {args.frames // units_one} frames on 1 replica, against"
          f" the single process): {100 * overhead:.1f}% of the unit's time (target <= {100 * TARGET_OVERHEAD:.0f}%:"
          f" {verdict})")
    print(f"frames identical in all three: {'yes' if identical else 'NO'}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
