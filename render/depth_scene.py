"""The evaluated scene's triangles in camera space, frame by frame, as the render sees them
(Blender glue for the depth maps).

It reads the depsgraph ``frame_set`` has already evaluated for the keypoints, so depth costs no
second scene evaluation: ``depsgraph.object_instances`` (instanced collections, particles and
geometry-nodes instances count), each mesh-like object's evaluated mesh (armature deformation,
modifiers), ``loop_triangles`` read with ``foreach_get`` and moved into camera space with numpy.

Render visibility, applied on top of what the depsgraph evaluates:
- hidden from renders: the object's ``hide_render``, a collection's ``hide_render`` (and all it
  holds), an excluded layer collection, ``visible_camera`` off, "indirect only" collections
  (Cycles shows them to bounced light only), an instancer whose "show instancer for render" is off;
- holdouts (object or collection) are drawn as holes: they hide what is behind them and show the
  empty background, as in the render's alpha.

Not covered: the depsgraph is the view layer's viewport one (the render's own is not reachable
from Python), so modifiers use their viewport switches and levels, and an object hidden in the
viewport (eye on the object, monitor icons) is not evaluated at all; ``unevaluated`` names such
objects that would render, so the job can say so.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Object types whose surfaces a render shows (hair curves, point clouds and volumes are not
# triangle surfaces; lights, cameras and empties have none).
MESH_LIKE = frozenset({"MESH", "CURVE", "SURFACE", "FONT", "META"})
SCENE, CHARACTERS = "scene", "characters"
SUBJECTS = (SCENE, CHARACTERS)
_NO_TRIANGLES = np.zeros((0, 3, 3), np.float32)


@dataclass
class FrameTriangles:
    """One frame in camera space (the camera looks down -Z), (T, 3, 3) float32 each."""

    subject: np.ndarray  # what the depth map shows
    occluders: np.ndarray  # what hides it and shows background instead (holdouts; the set, for characters only)


@dataclass
class _Geometry:
    """An object's triangles in its own space: unique vertices and their indices."""

    vertices: np.ndarray  # (V, 3) float32
    triangles: np.ndarray  # (T, 3) int32

    def in_camera(self, object_to_camera: np.ndarray) -> np.ndarray:
        rotation = object_to_camera[:3, :3].astype(np.float32)
        moved = self.vertices @ rotation.T + object_to_camera[:3, 3].astype(np.float32)
        return moved[self.triangles]


def read_mesh(mesh) -> _Geometry:
    """A mesh's loop triangles with foreach_get: no Python loop over vertices or faces."""
    mesh.calc_loop_triangles()  # a runtime cache; cheap when already there
    vertices = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", vertices)
    triangles = np.empty(len(mesh.loop_triangles) * 3, np.int32)
    mesh.loop_triangles.foreach_get("vertices", triangles)
    return _Geometry(vertices.reshape(-1, 3), triangles.reshape(-1, 3))


def _static_key(obj):
    """A key under which an object's own-space triangles stay valid for the whole job, or None.

    A plain mesh (no modifiers, no shape keys) only moves rigidly, whatever its animation or
    parenting: its triangles are read once and only its matrix is applied per frame (bone-parented
    limbs, props, the set, every copy of an instanced mesh). Anything deformed is read every frame.
    """
    original = obj.original
    # Geometry nodes are a modifier too, so generated geometry never gets a key.
    if original.type != "MESH" or original.modifiers or original.data is None:
        return None
    if original.data.shape_keys is not None:
        return None
    return original.data.as_pointer()


def _render_collections(view_layer) -> set:
    """Collections whose objects this view layer renders for the camera."""
    enabled = set()

    def walk(layer_collection):
        collection = layer_collection.collection
        if layer_collection.exclude or collection.hide_render:
            return  # everything inside is off too
        enabled.add(collection.as_pointer())
        for child in layer_collection.children:
            walk(child)

    walk(view_layer.layer_collection)
    return enabled


def _belongs_to(obj, armatures: frozenset) -> bool:
    """Deformed by (armature modifier) or parented, at any depth, to one of ``armatures``."""
    while obj is not None:
        if obj.as_pointer() in armatures:
            return True
        if any(m.type == "ARMATURE" and m.object is not None and m.object.as_pointer() in armatures
               for m in obj.modifiers):
            return True
        obj = obj.parent
    return False


class SceneTriangles:
    """Reads frames of one job; keeps the rigid meshes' triangles between frames.

    ``subject`` is SCENE (everything rendered) or CHARACTERS: only meshes deformed by or parented
    to ``armatures``; the rest of the scene then still hides them but is itself masked out.
    """

    def __init__(self, subject: str = SCENE, armatures=()):
        if subject not in SUBJECTS:
            raise ValueError(f"depth subject must be one of {', '.join(SUBJECTS)}, got {subject!r}")
        self.subject = subject
        self._armatures = frozenset(a.as_pointer() for a in armatures)
        self._static: dict[int, _Geometry] = {}
        self._is_character: dict[int, bool] = {}
        self.unevaluated: list[str] = []  # rendered objects the viewport depsgraph leaves out
        self._checked_layers: set[str] = set()

    def read(self, depsgraph, world_to_camera) -> FrameTriangles:
        """The depsgraph's current frame seen from ``world_to_camera`` (4x4, render/camera.py)."""
        view_layer = depsgraph.view_layer
        collections = _render_collections(view_layer)
        self._note_unevaluated(depsgraph, view_layer, collections)
        world_to_camera = np.asarray(world_to_camera, dtype=np.float64)
        shown, hiding = [], []
        # Per generator this frame, (rendered, holdout): particles share one answer.
        generators: dict[int, tuple[bool, bool]] = {}
        for instance in depsgraph.object_instances:
            obj = instance.object
            if obj.type not in MESH_LIKE or obj.hide_render or not obj.visible_camera:
                continue
            if instance.is_instance:
                generator = instance.parent
            else:
                generator = obj
                if obj.is_instancer and not obj.original.show_instancer_for_render:
                    continue  # the emitter / instancer itself is not drawn
            key = generator.as_pointer()
            if key not in generators:
                generators[key] = (self._renders(generator, view_layer, collections),
                                   generator.original.holdout_get(view_layer=view_layer))
            rendered, holdout = generators[key]
            if not rendered:
                continue
            holdout = holdout or obj.original.is_holdout
            triangles = self._object_triangles(obj, world_to_camera @ np.asarray(instance.matrix_world))
            if not len(triangles):
                continue
            if holdout or (self.subject == CHARACTERS and not self._character(obj.original)):
                hiding.append(triangles)
            else:
                shown.append(triangles)
        return FrameTriangles(_join(shown), _join(hiding))

    @staticmethod
    def _renders(generator, view_layer, collections: set) -> bool:
        """The object (an instance's: its instancer) is rendered for the camera in this layer."""
        original = generator.original
        if generator.hide_render or not generator.visible_camera:
            return False
        if not any(c.as_pointer() in collections for c in original.users_collection):
            return False
        return not original.indirect_only_get(view_layer=view_layer)

    def _object_triangles(self, obj, object_to_camera: np.ndarray) -> np.ndarray:
        key = _static_key(obj)
        geometry = self._static.get(key) if key is not None else None
        if geometry is None:
            geometry = self._read_evaluated(obj)
            if key is not None:
                self._static[key] = geometry
        return geometry.in_camera(object_to_camera) if len(geometry.triangles) else _NO_TRIANGLES

    @staticmethod
    def _read_evaluated(obj) -> _Geometry:
        if obj.type == "MESH":
            return read_mesh(obj.data)  # the evaluated object's data is its evaluated mesh
        mesh = obj.to_mesh()  # curves, surfaces, text, metaballs: their evaluated surface
        try:
            return read_mesh(mesh) if mesh is not None else _Geometry(np.zeros((0, 3), np.float32),
                                                                        np.zeros((0, 3), np.int32))
        finally:
            obj.to_mesh_clear()

    def _character(self, original) -> bool:
        key = original.as_pointer()
        known = self._is_character.get(key)
        if known is None:
            known = self._is_character[key] = _belongs_to(original, self._armatures)
        return known

    def _note_unevaluated(self, depsgraph, view_layer, collections: set) -> None:
        """Once per view layer: rendered mesh-like objects the depsgraph did not evaluate."""
        if view_layer.name in self._checked_layers:
            return
        self._checked_layers.add(view_layer.name)
        evaluated = {o.original.as_pointer() for o in depsgraph.objects}
        for obj in view_layer.objects:
            if (obj.type in MESH_LIKE and not obj.hide_render and obj.visible_camera
                    and obj.as_pointer() not in evaluated
                    and any(c.as_pointer() in collections for c in obj.users_collection)):
                self.unevaluated.append(obj.name)


def _join(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else _NO_TRIANGLES
