"""Keypoint file formats: OpenPose per-frame JSON and ComfyUI's POSE_KEYPOINT."""
