"""Work off Blender's main thread: a bounded pool taking results back in order, and the worker
processes it hands frames to (pure Python and numpy: no bpy)."""
