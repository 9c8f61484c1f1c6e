"""Pictures, pure numpy: pose maps drawn exactly as ControlNet's preprocessor draws them, depth
maps (rasterising, encoding) and the keypoints they hide, PNG, contact and comparison sheets.
No bpy, no torch.
"""
