"""Pure pose logic: layouts, keypoint sequences, formats, drawing. No bpy, no torch."""
