"""PoseBridge: render ControlNet-exact OpenPose maps and keypoints from an armature's animation.

Importing this package outside Blender must not import bpy: the pure ``pose``, ``draw`` and
``retarget`` packages and the backend import it. Blender modules are imported inside ``register()`` only.
"""


def register():
    from . import blender_registration

    blender_registration.register()


def unregister():
    from . import blender_registration

    blender_registration.unregister()
