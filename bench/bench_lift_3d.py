"""Benchmark: is the imported motion right in 3-D, seen from every side? (issue 16)

    python bench/bench_lift_3d.py [--lift geometric|learned] [--out-json FILE] [--frames N]

For each CMU clip in ../shared/data/cmu (07_01 walk, 141_05 jump sideways; Blender's BVH importer,
0.056444 m per CMU unit; frame 1, the converter's T-pose, left out) and each of five views (the
subject's front, side (its left), back, three-quarter (front left) and a high view: 45 degrees
up, 30 round; ``lift_views.VIEWS``), a perspective camera (35 mm, 1280x720) is placed to frame
the whole clip (``lift_views.place_camera``). The capture is projected to COCO-18 keypoints with
the project's own keypoint rendering (``pose_maps.sample_keypoints``, as the tests make theirs),
written as a keypoint file and imported onto a fresh Rigify human metarig by the project's
import job (``import_job.import_steps`` with default ``ImportOptions``: tracking, cleaning, lift,
keys). The scene runs at the capture's 120 fps.

Measured per clip and view, for the limbs (upper arms, forearms, thighs, shins), in the camera
frame (world directions turned into the camera):
- lift: the angle between the imported rig's 3-D limb direction and the capture's (both from
  the rigs' own keypoints, ``rig_presets`` maps); mean and p95 (degrees); and among limbs whose
  capture direction points more than 20 degrees out of the image plane, the share whose
  towards/away sign (camera z) differs ("wrong depth");
- flat: every limb laid in the image plane along its 2-D image direction (the keypoints the
  import reads): its 3-D error is the limb's out-of-plane angle (plus a little perspective);
  it has no towards/away sign, so its wrong-depth figure is n/a;
- 2D: the imported rig's limb directions in the image against the keypoints' (as the import
  tests check: what the source camera shows).
The import is timed by stage (tracking, cleaning, lift: ``retarget.lift.lift`` as import_pose calls
it), summed over every import, in frames per second; reading the file and writing the keys are
shown apart.

Targets (issue 16, for the learned lift): mean <= 10 degrees, p95 <= 30, wrong depth <= 8%,
never worse than flat (mean) on any view, import >= 1,000 frames/s.
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for path in (REPO, REPO / "tests", REPO / "tests" / "blender", BENCH):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
import lift_views

from cli import exit_now, load_extension

SHARED_CMU = REPO.parent / "shared" / "data" / "cmu"
CLIPS = {"07_01": "walk", "141_05": "jump sideways"}
CMU_SCALE = 0.056444  # metres per CMU length unit: human size
CAPTURE_FPS = 120
SIZE = (1280, 720)
LENS = 35.0
TARGETS = {"mean_deg": 10.0, "p95_deg": 30.0, "wrong_depth": 0.08, "frames_per_s": 1000.0}
LIFTS = ("geometric", "learned")


# --- the scene --------------------------------------------------------------------------------
def load_clip(path, name="capture"):
    """An empty scene at the capture's rate with the BVH clip imported at human size. Returns
    (scene, armature, frames to use: all but the first, the converter's T-pose)."""
    import bpy
    import rigs

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = CAPTURE_FPS, 1.0
    rigs.enable_addon("io_anim_bvh")
    bpy.ops.import_anim.bvh(filepath=str(path), global_scale=CMU_SCALE)
    obj = bpy.context.active_object
    obj.name = name
    start, end = (int(v) for v in obj.animation_data.action.frame_range)
    scene.frame_start, scene.frame_end = start, end
    set_render_size(scene)
    return scene, obj, list(range(start + 1, end + 1))


def set_render_size(scene, size=SIZE):
    scene.render.resolution_x, scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0


def rig_points(scene, armatures, camera, frames, size=SIZE):
    """One pass over ``frames``: each armature's keypoints (its rig map) in world space and in
    the image. Returns ([(points (frames, n, 3), present (frames, n), xy (frames, n, 2),
    in_image (frames, n))], world_to_camera (4, 4) of the first frame); without a camera xy,
    in_image and the matrix are None. ``present``: the rig has the point (3-D figures use it:
    a lifted rig's limb counts even where it leaves the frame); ``in_image``: present and in
    the frame (what 2-D figures use)."""
    from posebridge.pose.rigmap import evaluate
    from posebridge.render import rig_presets
    from posebridge.render.sampling import sample_frames

    samples, projection = sample_frames(scene, frames, armatures, camera, *size)
    out = []
    for obj, rig in zip(armatures, samples):
        rigmap, _ = rig_presets.rigmap_for(obj)
        points, present = evaluate(rigmap, rig.bone_names, rig.matrices, rig.lengths)
        if projection is None:
            out.append((points, present, None, None))
            continue
        xy, visible = projection.project(points)
        out.append((points, present, xy, present & visible))
    return out, None if projection is None else projection.world_to_camera[0]


def add_camera(scene, name, placement: "lift_views.CameraPlacement"):
    import bpy
    from mathutils import Matrix

    data = bpy.data.cameras.new(name)
    data.lens, data.sensor_width, data.sensor_fit = placement.lens, placement.sensor, "AUTO"
    data.clip_end = max(100.0, 3.0 * placement.distance)
    camera = bpy.data.objects.new(name, data)
    scene.collection.objects.link(camera)
    camera.matrix_world = Matrix(placement.matrix_world.tolist())
    scene.camera = camera
    return camera


def view_cameras(scene, capture, frames, views=None, size=SIZE):
    """A camera per view framing the whole clip. Returns {view: (camera, placement)}."""
    from posebridge.pose.layouts import OPENPOSE_FULL

    ((points, present, _, _),), _ = rig_points(scene, [capture], None, frames, size)
    forward = lift_views.subject_forward(points, present, OPENPOSE_FULL)
    limb_points = sorted({OPENPOSE_FULL.index(n) for limb in lift_views.LIMBS for n in limb}
                         | {OPENPOSE_FULL.index(n) for n in ("nose", "l_ear", "r_ear", "neck")})
    cloud = points[:, limb_points][present[:, limb_points]]
    cameras = {}
    for view in views or lift_views.VIEWS:
        azimuth, elevation = lift_views.VIEWS[view]
        placement = lift_views.place_camera(cloud, forward, azimuth, elevation, lens=LENS, size=size)
        cameras[view] = (add_camera(scene, f"cam_{view}", placement), placement)
    return cameras


# --- one view -----------------------------------------------------------------------------------
def observe(scene, capture, camera, frames, size=SIZE):
    """The capture's keypoints through ``camera``, as the tests render them (all parts the rig
    map gives; only the body, COCO-18, is written for the import)."""
    from posebridge.render import pose_maps

    job = pose_maps.plan_job(scene, None, resolution=size, camera_name=camera.name,
                             armature_names=[capture.name], hands=False, face=False)
    return pose_maps.sample_keypoints(scene, job, frames)


def import_view(scene, target, camera, keypoint_file, start_frame, lift=None, camera_tilt=None):
    """The project's import (``import_steps``, default options but ``lift`` and ``camera_tilt``
    where given), timed by stage. Returns (ImportSummary, seconds by stage)."""
    import posebridge.render.import_pose as import_pose_module
    from posebridge.render.import_job import ImportOptions, ImportSummary, import_steps

    options = ImportOptions(keypoints=str(keypoint_file), armature=target.name, camera=camera.name,
                            start_frame=start_frame, source_name=Path(keypoint_file).stem)
    if lift is not None:
        options.lift = lift
    if camera_tilt is not None:
        options.camera_tilt = camera_tilt
    lift_seconds = []
    original = import_pose_module.lift

    def timed_lift(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            lift_seconds.append(time.perf_counter() - started)

    summary = ImportSummary()
    stages = {}
    import_pose_module.lift = timed_lift
    try:
        last, stage = time.perf_counter(), None
        for _, next_stage in import_steps(scene, options, summary):
            now = time.perf_counter()
            if stage is not None:
                stages[stage] = now - last
            last, stage = now, next_stage
    finally:
        import_pose_module.lift = original
    stages = {"read": stages["reading keypoints"], "track": stages["tracking the person"],
              "clean": stages["cleaning"], "lift": sum(lift_seconds),
              "rest of import_pose": stages["lifting onto the rig"] - sum(lift_seconds)}
    return summary, stages


def measure_view(scene, capture, camera, frames, workdir, lift=None, keep_target=False, size=SIZE, camera_tilt=None):
    """Import the capture as ``camera`` sees it onto a fresh Rigify metarig and compare the
    limbs in 3-D. Returns the figures (``lift_views.compare`` dicts for "lift" and "flat", the
    2-D error, the import's stage seconds) and, with ``keep_target``, the target rig."""
    import bpy
    import rigs
    from posebridge.pose.formats.comfyui import write_sequence
    from posebridge.pose.layouts import OPENPOSE_FULL

    observed = observe(scene, capture, camera, frames, size)
    body = OPENPOSE_FULL.part("body")
    if not (observed.data[:, 0, body.start:body.stop, 2] > 0).all():
        raise RuntimeError(f"{camera.name}: some body keypoints fall outside the frame")
    keypoint_file = Path(workdir) / f"{capture.name}_{camera.name}.json"
    write_sequence(observed, keypoint_file, parts=("body",))  # COCO-18
    target = rigs.build_rigify_metarig(f"lifted_{camera.name}")
    summary, seconds = import_view(scene, target, camera, keypoint_file, frames[0], lift, camera_tilt)
    if summary.report.frames != len(frames):
        raise RuntimeError(f"imported {summary.report.frames} frames of {len(frames)}")

    (capture_rig, target_rig), world_to_camera = rig_points(scene, [capture, target], camera, frames, size)
    truth, truth_ok = limb_dirs(capture_rig, world_to_camera)
    estimate, estimate_ok = limb_dirs(target_rig, world_to_camera)
    seen = observed.data[:, 0, :, 2] > 0
    image_seen, image_ok = lift_views.image_directions(observed.data[:, 0, :, :2], seen, OPENPOSE_FULL)
    image_lifted, lifted_ok = lift_views.image_directions(target_rig[2], target_rig[3], OPENPOSE_FULL)
    valid = truth_ok & estimate_ok & image_ok
    figures = {
        "frames": len(frames),
        "lift": lift_views.compare(truth, estimate, valid),
        "flat": lift_views.compare(truth, lift_views.flat_reading(image_seen), valid, signed=False),
        "image_2d_deg": float(lift_views.image_direction_errors(image_seen, image_lifted, image_ok & lifted_ok).mean()),
        "torso": torso_figures(capture_rig, target_rig, world_to_camera),
        "seconds": seconds,
    }
    if keep_target:
        return figures, target
    bpy.data.objects.remove(target)
    return figures


def torso_figures(capture_rig, target_rig, world_to_camera) -> dict:
    """The torso's lean (mid-hip -> neck) of the import against the capture, in 3-D."""
    from posebridge.pose.layouts import OPENPOSE_FULL

    truth, truth_ok = lift_views.torso_directions(*capture_rig[:2], OPENPOSE_FULL)
    estimate, estimate_ok = lift_views.torso_directions(*target_rig[:2], OPENPOSE_FULL)
    return lift_views.compare(lift_views.to_camera(truth, world_to_camera),
                              lift_views.to_camera(estimate, world_to_camera), truth_ok & estimate_ok)


def limb_dirs(rig, world_to_camera):
    from posebridge.pose.layouts import OPENPOSE_FULL

    points, present = rig[:2]
    directions, valid = lift_views.limb_directions(points, present, OPENPOSE_FULL)
    return lift_views.to_camera(directions, world_to_camera), valid


# --- the report -----------------------------------------------------------------------------------
def _wrong(value):
    return "n/a" if value is None else f"{100 * value:.1f}%"


def print_table(rows):
    header = (f"{'clip':<20} {'view':<14} {'limbs':>6} {'deep':>5} | {'lift mean':>9} {'p95':>6} {'wrong':>6} | "
              f"{'flat mean':>9} {'p95':>6} {'wrong':>5} | {'2D':>5} | {'torso':>5} | lift<=flat")
    print(header)
    print("-" * len(header))
    for row in rows:
        lift, flat = row["lift"], row["flat"]
        print(f"{row['clip_label']:<20} {row['view']:<14} {lift['limbs']:>6} {lift['out_of_plane_limbs']:>5} | "
              f"{lift['mean_deg']:>9.1f} {lift['p95_deg']:>6.1f} {_wrong(lift['wrong_depth']):>6} | "
              f"{flat['mean_deg']:>9.1f} {flat['p95_deg']:>6.1f} {'n/a':>5} | {row['image_2d_deg']:>5.2f} | "
              f"{row['torso']['mean_deg']:>5.1f} | {'yes' if lift['mean_deg'] <= flat['mean_deg'] else 'NO'}")


def summarise(rows):
    """Means over views, per clip and overall (means of the per-view figures; wrong depth is
    pooled over the out-of-plane limbs)."""
    def pooled(group):
        deep = sum(r["lift"]["out_of_plane_limbs"] for r in group)
        wrong = sum((r["lift"]["wrong_depth"] or 0.0) * r["lift"]["out_of_plane_limbs"] for r in group)
        return {
            "views": len(group),
            "lift_mean_deg": float(np.mean([r["lift"]["mean_deg"] for r in group])),
            "lift_p95_deg": float(np.mean([r["lift"]["p95_deg"] for r in group])),
            "lift_p95_all_deg": float(np.percentile(np.concatenate([r["lift"]["errors"] for r in group]), 95)),
            "wrong_depth": wrong / deep if deep else None,
            "flat_mean_deg": float(np.mean([r["flat"]["mean_deg"] for r in group])),
            "flat_p95_deg": float(np.mean([r["flat"]["p95_deg"] for r in group])),
            "image_2d_deg": float(np.mean([r["image_2d_deg"] for r in group])),
            "torso_mean_deg": float(np.mean([r["torso"]["mean_deg"] for r in group])),
            "torso_p95_deg": float(np.mean([r["torso"]["p95_deg"] for r in group])),
            "views_worse_than_flat": [f"{r['clip']} {r['view']}" for r in group
                                      if r["lift"]["mean_deg"] > r["flat"]["mean_deg"]],
        }
    clips = {}
    for row in rows:
        clips.setdefault(row["clip"], []).append(row)
    return {clip: pooled(group) for clip, group in clips.items()}, pooled(rows)


def timing(rows):
    frames = sum(r["frames"] for r in rows)
    total = {k: sum(r["seconds"][k] for r in rows) for k in rows[0]["seconds"]}
    core = total["track"] + total["clean"] + total["lift"]
    return {"frames": frames, "seconds": total, "core_seconds": core, "frames_per_s": frames / core,
            "whole_import_frames_per_s": frames / sum(total.values())}


def print_summary(per_clip, overall, speed, lift_name):
    print()
    print(f"{'means over views':<20} {'lift mean':>9} {'p95':>6} {'wrong':>6} | {'flat mean':>9} {'p95':>6} | {'2D':>5} | "
          f"{'torso':>5} {'p95':>5}")
    for clip, s in list(per_clip.items()) + [("overall", overall)]:
        label = f"{clip} {CLIPS.get(clip, '')}".strip()
        print(f"{label:<20} {s['lift_mean_deg']:>9.1f} {s['lift_p95_deg']:>6.1f} {_wrong(s['wrong_depth']):>6} | "
              f"{s['flat_mean_deg']:>9.1f} {s['flat_p95_deg']:>6.1f} | {s['image_2d_deg']:>5.2f} | "
              f"{s['torso_mean_deg']:>5.1f} {s['torso_p95_deg']:>5.1f}")
    print(f"(p95 of all limbs pooled: {overall['lift_p95_all_deg']:.1f} deg)")
    sec = speed["seconds"]
    print(f"\nimport, {speed['frames']} frames in {len(per_clip)} clips x views: track {1000 * sec['track']:.0f} ms, "
          f"clean {1000 * sec['clean']:.0f} ms, lift {1000 * sec['lift']:.0f} ms -> {speed['frames_per_s']:,.0f} frames/s "
          f"(tracking + cleaning + lift); with reading the file ({1000 * sec['read']:.0f} ms) and the rest of "
          f"import_pose (rig, camera, keys: {1000 * sec['rest of import_pose']:.0f} ms): "
          f"{speed['whole_import_frames_per_s']:,.0f} frames/s")

    print(f"\ntargets (issue 16, for the learned lift), today's {lift_name} lift:")
    checks = [
        ("mean limb-direction error", overall["lift_mean_deg"], TARGETS["mean_deg"], "deg", False),
        ("p95 limb-direction error", overall["lift_p95_deg"], TARGETS["p95_deg"], "deg", False),
        ("wrong depth direction", overall["wrong_depth"], TARGETS["wrong_depth"], "%", False),
        ("import speed", speed["frames_per_s"], TARGETS["frames_per_s"], "frames/s", True),
    ]
    met = {}
    for name, value, target, unit, at_least in checks:
        if unit == "%":
            shown, goal = f"{100 * value:.1f}%", f"{100 * target:.0f}%"
        elif unit == "deg":
            shown, goal = f"{value:.1f} deg", f"{target:g} deg"
        else:
            shown, goal = f"{value:,.0f} {unit}", f"{target:,.0f} {unit}"
        ok = value >= target if at_least else value <= target
        met[name] = ok
        print(f"  {name:<28} {shown:>14}  target {'>=' if at_least else '<='} {goal:<14} "
              f"ratio {value / target:5.2f}  {'met' if ok else 'MISSED'}")
    worse = overall["views_worse_than_flat"]
    met["never worse than flat"] = not worse
    print(f"  {'never worse than flat':<28} {len(worse):>9} views worse: {', '.join(worse) or 'none'}  "
          f"{'met' if not worse else 'MISSED'}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lift", choices=LIFTS, default=None,
                        help="the import's lift (default: the import's default, learned)")
    parser.add_argument("--camera-tilt", choices=("scene", "image"), default=None,
                        help="where the learned lift takes the camera's tilt from (default: the import's, scene)")
    parser.add_argument("--out-json", type=Path, help="write the figures here")
    parser.add_argument("--frames", type=int, default=None, help="use only the first N captured frames of each clip")
    parser.add_argument("--clips", nargs="+", default=list(CLIPS), choices=list(CLIPS))
    parser.add_argument("--views", nargs="+", default=list(lift_views.VIEWS), choices=list(lift_views.VIEWS))
    args = parser.parse_args()

    load_extension()
    import bpy

    lift_name = args.lift or "the import's default"
    if not SHARED_CMU.is_dir():
        print(f"no CMU clips at {SHARED_CMU}")
        return 2
    print(f"Blender {bpy.app.version_string}; lift: {lift_name}; camera tilt: {args.camera_tilt or 'scene'}; "
          f"{SIZE[0]}x{SIZE[1]}, {LENS:g} mm, {CAPTURE_FPS} fps; limbs: upper arms, forearms, thighs, shins; "
          f"'deep': limbs more than {lift_views.OUT_OF_PLANE_DEG:g} deg out of the image plane; wrong: their "
          f"towards/away sign wrong (flat: n/a, it has no sign); 2D: image direction error of the import (deg); torso: the\n"
          f"torso's lean (mid-hip -> neck) in 3-D against the capture's (deg)\n")

    rows, cameras_json = [], {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="posebridge-lift3d-") as workdir:
        for clip in args.clips:
            scene, capture, frames = load_clip(SHARED_CMU / f"{clip}.bvh")
            if args.frames:
                frames = frames[:args.frames]
            for view, (camera, placement) in view_cameras(scene, capture, frames, args.views).items():
                figures = measure_view(scene, capture, camera, frames, workdir, lift=args.lift,
                                       camera_tilt=args.camera_tilt)
                rows.append({"clip": clip, "clip_label": f"{clip} {CLIPS[clip]}", "view": view, **figures})
                cameras_json[f"{clip} {view}"] = {
                    "azimuth_deg": lift_views.VIEWS[view][0], "elevation_deg": lift_views.VIEWS[view][1],
                    "distance_m": placement.distance, "lens_mm": placement.lens,
                    "location": placement.matrix_world[:3, 3].tolist(),
                }
    print_table(rows)
    per_clip, overall = summarise(rows)
    speed = timing(rows)
    met = print_summary(per_clip, overall, speed, lift_name)
    print(f"\n(run took {time.perf_counter() - started:.0f} s)")

    if args.out_json:
        def clean(d):
            return {k: v for k, v in d.items() if k != "errors"}
        document = {
            "blender": bpy.app.version_string, "lift": lift_name, "camera_tilt": args.camera_tilt or "scene",
            "settings": {"size": SIZE, "lens_mm": LENS, "fps": CAPTURE_FPS, "cmu_scale": CMU_SCALE,
                         "out_of_plane_deg": lift_views.OUT_OF_PLANE_DEG, "frames": args.frames,
                         "flat_wrong_depth": "n/a: the flat reading has no towards/away sign"},
            "cameras": cameras_json,
            "cases": [{"clip": r["clip"], "view": r["view"], "frames": r["frames"], "lift": clean(r["lift"]),
                       "flat": clean(r["flat"]), "torso": clean(r["torso"]), "image_2d_deg": r["image_2d_deg"],
                       "seconds": r["seconds"]}
                      for r in rows],
            "per_clip": per_clip, "overall": overall, "speed": speed, "targets": TARGETS, "met": met,
        }
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(json.dumps(document, indent=2))
        print(f"figures written to {args.out_json}")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    exit_now(code)  # bpy 4.2 can crash in its exit handlers once Rigify has been used
