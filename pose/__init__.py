"""Keypoint data, pure: layouts, the keypoint-sequence type, file formats, rig maps and presets
(which bone gives which keypoint), the face template and camera projection. No bpy, no torch.

``draw`` (pictures) and ``retarget`` (keypoints onto a rig) build on this package, never the
other way round.
"""
