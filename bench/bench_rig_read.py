"""Benchmark: reading evaluated bone matrices and evaluating the rig map, per frame, per rig.

    python bench/bench_rig_read.py [--frames 120]

For each test rig (Mixamo, Rigify metarig, generated Rigify rig, CMU BVH when ../shared has it),
animated so every frame really re-evaluates, prints milliseconds per frame for:
  frame_set   scene.frame_set alone (Blender's depsgraph evaluation: constraints, drivers, NLA)
  read        read_bone_matrices (frame_set + one foreach_get + numpy world transform)
  evaluate    evaluate() of the detected map, over all frames at once, per frame
  evaluate1   evaluate() called for one frame at a time
The product's budget: >= 150 pose frames/s at 512x512 in total, so read + evaluate must stay
well under 2 ms for a 60-150 bone rig.
"""
import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "blender"))  # rigs.py
sys.path.insert(0, str(REPO / "tests"))  # conftest.py (before tests/blender's own conftest)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args()

    import conftest  # noqa: F401  (loads the repository as the package "posebridge")
    import bpy
    import numpy as np

    import rigs
    from posebridge.pose.rigmap import bind, evaluate
    from posebridge.pose.rigmap_presets import detect
    from posebridge.render import joints

    def animated_generated():
        rig = rigs.build_rigify_generated()
        roles = {r: b.replace(".", "_fk.", 1) if r != "head" else "head" for r, b in rigs.RIGIFY_ROLES.items()}
        for side in "LR":
            rig.pose.bones[f"upper_arm_parent.{side}"]["IK_FK"] = 1.0
            rig.pose.bones[f"thigh_parent.{side}"]["IK_FK"] = 1.0
        return rigs.animate(rig, roles, seconds=args.frames / 24)

    builders = {
        "mixamo": lambda: rigs.build_animated_mixamo_rig(seconds=args.frames / 24),
        "rigify metarig": lambda: rigs.build_animated_rigify_metarig(seconds=args.frames / 24),
        "rigify generated": animated_generated,
    }
    cmu = REPO.parent / "shared" / "data" / "cmu" / "07_01.bvh"
    if cmu.exists():
        builders["cmu bvh"] = lambda: rigs.import_cmu_bvh(cmu)

    print(f"bpy {bpy.app.version_string}, {args.frames} frames; milliseconds per frame")
    print(f"{'rig':18s} {'bones':>5s} {'terms':>5s} {'frame_set':>9s} {'read':>7s} {'evaluate':>8s} {'evaluate1':>9s}")
    for label, build in builders.items():
        bpy.ops.wm.read_factory_settings(use_empty=True)
        obj = build()
        scene = bpy.context.scene
        frames = list(range(1, args.frames + 1))
        rest, names, lengths = joints.read_rest(obj)
        rigmap = detect(names).rigmap

        t = time.perf_counter()
        for f in frames:
            scene.frame_set(f)
        frame_set = (time.perf_counter() - t) / len(frames)

        t = time.perf_counter()
        matrices, names, lengths = joints.read_bone_matrices(obj, frames, scene)
        read = (time.perf_counter() - t) / len(frames)

        evaluate(rigmap, names, matrices[:1], lengths, rest_matrices=rest)  # bind once (cached)
        t = time.perf_counter()
        points, present = evaluate(rigmap, names, matrices, lengths, rest_matrices=rest)
        whole = (time.perf_counter() - t) / len(frames)
        t = time.perf_counter()
        for i in range(len(frames)):
            evaluate(rigmap, names, matrices[i:i + 1], lengths, rest_matrices=rest)
        single = (time.perf_counter() - t) / len(frames)
        assert np.isfinite(points).all() and present.any()
        terms = bind(rigmap, names, lengths, rest).bone_index.size
        print(f"{label:18s} {len(names):5d} {terms:5d} {frame_set * 1e3:9.3f} {read * 1e3:7.3f} "
              f"{whole * 1e3:8.3f} {single * 1e3:9.3f}")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    import os

    os._exit(code)  # bpy 4.2 can crash in its exit handlers; the numbers are printed already
