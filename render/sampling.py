"""Sample the animated scene once per frame: every character's bone matrices and the camera.

``frame_set`` evaluates the whole scene, so it is the expensive step; one pass reads all the
armatures and the camera at each frame instead of stepping the frames once per reader.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..pose.projection import CameraProjection
from . import joints
from .camera import read_camera, scene_depsgraph


@dataclass
class RigSamples:
    matrices: np.ndarray  # (frames, bones, 4, 4) world space
    bone_names: list[str]
    lengths: np.ndarray  # (bones,) rest lengths


def _split_frame(frame) -> tuple[int, float]:
    whole = int(np.floor(frame))
    return whole, float(frame) - whole


# Pass as ``camera`` to use whichever camera the scene has at each frame (markers switch it).
SCENE_CAMERA = "scene camera"


def sample_frames(scene, frames, armatures, camera=None, width: int = 1, height: int = 1, each_frame=None):
    """(one RigSamples per armature, CameraProjection or None without a camera) for ``frames``
    (fractional frames are subframes); the scene's frame is restored afterwards, even on error.
    ``camera`` may be SCENE_CAMERA: the scene's active camera at each frame.

    ``each_frame(index, depsgraph, world_to_camera, projection)``, with a camera, reads more of
    the evaluated scene (the depth maps) in this same pass: ``frame_set`` is the expensive step."""
    frames = list(frames)
    rests = [joints.read_rest(obj) for obj in armatures]
    local = [np.empty((len(frames), len(names) * 16), np.float32) for _, names, _ in rests]
    world = np.empty((len(armatures), len(frames), 4, 4))
    world_to_camera = np.empty((len(frames), 4, 4))
    projection = np.empty((len(frames), 4, 4))
    pixel_aspect = (scene.render.pixel_aspect_x, scene.render.pixel_aspect_y)
    before = scene.frame_current, scene.frame_subframe
    try:
        for i, frame in enumerate(frames):
            whole, sub = _split_frame(frame)
            scene.frame_set(whole, subframe=sub)
            current = scene.camera if camera == SCENE_CAMERA else camera
            if camera == SCENE_CAMERA and current is None:
                raise ValueError(f"scene {scene.name!r} has no active camera at frame {frame}")
            graph = scene_depsgraph(scene, list(armatures) + [current])
            for a, obj in enumerate(armatures):
                evaluated = obj.evaluated_get(graph)
                evaluated.pose.bones.foreach_get("matrix", local[a][i])
                world[a, i] = evaluated.matrix_world
            if current is not None:
                world_to_camera[i], projection[i] = read_camera(graph, current, width, height, pixel_aspect)
                if each_frame is not None:
                    each_frame(i, graph, world_to_camera[i], projection[i])
    finally:
        scene.frame_set(before[0], subframe=before[1])
    samples = []
    for a, (_, names, lengths) in enumerate(rests):
        # foreach_get hands matrices over column by column: transpose to numpy's rows.
        pose = local[a].reshape(len(frames), len(names), 4, 4).transpose(0, 1, 3, 2)
        samples.append(RigSamples(np.matmul(world[a][:, None], pose), names, lengths))
    if camera is None:
        return samples, None
    return samples, CameraProjection(world_to_camera, projection, width, height, np.floor(frames))
