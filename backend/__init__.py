"""PoseBridge's generation backend: runs in its own process and Python, with torch and diffusers.

Nothing in the Blender add-on imports this package (Blender never imports torch); the extension
zip leaves it out (blender_manifest.toml). Modules:

- ``tiny_model``: ``make_tiny_model(dir)`` writes a tiny random-weight SD1.5-architecture model
  set (base pipeline, openpose and depth ControlNets) in diffusers format, for offline runs and
  tests.
- ``pipeline``: ``load_pipeline(...)`` and ``generate(pipe, pose_frames, depth_frames, params)``,
  the per-frame ControlNet pipeline behind one small interface.
- ``model_set``: ``posebridge-models.json``, naming a local base model and its ControlNets.
- ``jobs``: the job queue (one worker thread, submission order, cancel, PNG frames on disk).
- ``job_input``, ``api_models``, ``guards``, ``server``: the HTTP service of docs/backend_api.md.
- ``cli`` (and ``__main__``): ``posebridge-backend serve | make-tiny-model``.
"""

# The backend's version, reported by /health; kept equal to pyproject.toml's and
# blender_manifest.toml's (tests/backend/test_server.py checks).
__version__ = "0.1.0"
