"""One-off check: our BVH forward kinematics against Blender's own BVH importer.

Run with a Python that has bpy:  python -m train.check_blender_fk ../shared/data/cmu/07_01.bvh
Prints the largest distance (metres) between our joint positions and Blender's pose-bone
heads over every frame. Blender maps BVH (x, y, z) to its (x, -z, y) (Y up -> Z up).
"""
import sys

import bpy
import numpy as np

from train.bvh import forward_kinematics, read_bvh

SCALE = 0.056444


def main(path: str) -> None:
    bvh = read_bvh(path)
    ours, _ = forward_kinematics(bvh)
    ours = ours * SCALE
    ours = np.stack([ours[..., 0], -ours[..., 2], ours[..., 1]], axis=-1)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_anim.bvh(filepath=path, global_scale=SCALE, update_scene_fps=True)
    arm = bpy.context.selected_objects[0]
    scene = bpy.context.scene
    worst = 0.0
    for f in range(bvh.motion.shape[0]):
        scene.frame_set(f + 1)
        for j, name in enumerate(bvh.names):
            bone = arm.pose.bones.get(name)
            if bone is None:
                continue
            head = np.array(arm.matrix_world @ bone.head)
            worst = max(worst, float(np.linalg.norm(head - ours[f, j])))
    print(f"{path}: {bvh.motion.shape[0]} frames, largest joint distance {worst * 1000:.3f} mm")


if __name__ == "__main__":
    main(sys.argv[-1])
