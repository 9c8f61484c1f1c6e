"""Read the scene camera per frame, exactly as the renderer will use it (Blender glue).

The projection comes from ``Object.calc_matrix_camera`` called with the output size and the pixel
aspect, which is the very computation the render pipeline does (``RE_SetCamera``: view-plane from
lens or ortho scale, shift, sensor fit, aspect). The view matrix is the evaluated camera's
``matrix_world`` without scale, as the renderers use it. Not covered: stereo/multi-view cameras,
panoramic (Cycles) cameras, and "crop to render region" output sizes.
"""
from __future__ import annotations

import numpy as np

from ..pose.projection import CameraProjection


def render_size(scene) -> tuple[int, int]:
    """The rendered image's (width, height): resolution x percentage, rounded down like Blender."""
    render = scene.render
    percentage = render.resolution_percentage
    return (render.resolution_x * percentage // 100, render.resolution_y * percentage // 100)


def resolve_camera(scene, name: str | None = None):
    """The camera object to project with: the named one, else the scene's active camera."""
    if name is None:
        camera = scene.camera
        if camera is None:
            raise ValueError(f"scene {scene.name!r} has no active camera; set one or name a camera")
    else:
        camera = scene.objects.get(name)
        if camera is None:
            raise ValueError(f"scene {scene.name!r} has no object named {name!r}")
    if camera.type != "CAMERA":
        raise ValueError(f"object {camera.name!r} is a {camera.type.lower()} object, not a camera")
    return camera


def scene_depsgraph(scene, objects=()):
    """A depsgraph in which ``objects`` are evaluated (``scene.frame_set`` updates every view
    layer's): the active view layer when it holds them, else the first layer that does. An object
    excluded from a layer is not animated in that layer's depsgraph."""
    import bpy

    layers = list(scene.view_layers)
    active = getattr(bpy.context, "view_layer", None)
    if active is not None and active in layers:
        layers.insert(0, active)
    for layer in layers:
        if all(obj.name in layer.objects for obj in objects if obj is not None):
            return layer.depsgraph
    names = ", ".join(obj.name for obj in objects if obj is not None)
    raise ValueError(f"no view layer of scene {scene.name!r} holds {names}")


def read_camera(depsgraph, camera_obj, width: int, height: int, pixel_aspect=(1.0, 1.0)):
    """(world_to_camera, projection) at the depsgraph's current frame, as float64 4x4 arrays.

    For loops that already call ``frame_set`` for other reasons (e.g. sampling an armature):
    read the camera in the same pass instead of stepping the frames twice.
    """
    evaluated = camera_obj.evaluated_get(depsgraph)  # animated transform and lens/shift
    # Renderers drop the camera object's scale (a scaled camera renders as an unscaled one),
    # so normalise the axes before inverting.
    world_to_camera = evaluated.matrix_world.normalized().inverted()
    projection = camera_obj.calc_matrix_camera(
        depsgraph, x=width, y=height, scale_x=pixel_aspect[0], scale_y=pixel_aspect[1]
    )
    return np.asarray(world_to_camera, dtype=np.float64), np.asarray(projection, dtype=np.float64)


def camera_projection(scene, camera_obj, frames, resolution=None) -> CameraProjection:
    """Sample ``camera_obj`` at each of ``frames`` (Blender frame numbers, ints).

    ``resolution`` (width, height) replaces the scene's output size, as if rendering at that size
    (the scene's pixel aspect still applies). The scene's current frame is restored afterwards.
    """
    from .sampling import sample_frames

    if camera_obj is None:
        raise ValueError("no camera to sample")
    if resolution is None:
        width, height = render_size(scene)
    else:
        width, height = int(resolution[0]), int(resolution[1])
    if width <= 0 or height <= 0:
        raise ValueError(f"output size must be positive, got {width}x{height}")
    _, projection = sample_frames(scene, [int(f) for f in frames], [], camera_obj, width, height)
    return projection
