"""PoseBridge's generation backend: runs in its own process and Python, with torch and diffusers.

Nothing in the Blender add-on imports this package (Blender never imports torch); the extension
zip leaves it out (blender_manifest.toml). Modules:

- ``tiny_model``: ``make_tiny_model(dir)`` writes a tiny random-weight SD1.5-architecture model
  set (base pipeline, openpose and depth ControlNets, motion adapter, IP-Adapter) in diffusers
  format, for offline runs and tests.
- ``tiny_sdxl``: the same for the SDXL architecture (two text encoders, separate and union
  ControlNets, motion adapter, SDXL IP-Adapter).
- ``models``: ``load_models(...)`` loads the base model, ControlNets, motion adapter and
  IP-Adapter once, sharing their components between pipelines; ``families`` (SD1.5 / SDXL:
  defaults, classes, which family a model is), ``model_files`` and ``single_file_config`` (one
  model from a hub id, folder or single file, its configuration found offline:
  ``published_configs``, ``configs/``), ``loras`` (LoRAs per job), ``preview`` (the fast preview).
- ``pipelines``: ``generate(models, pose_frames, depth_frames, params)``; one module per pipeline
  (``frames``, ``animatediff``) behind one interface (``pipelines/base.py``), with context windows,
  prompt travel and the identity reference shared.
- ``model_set``: ``posebridge-models.json``, naming a local base model and its ControlNets.
- ``worker_queue``: what both job queues share (one worker thread, submission order, cancel, wait).
- ``jobs``: the job queue (one worker thread, submission order, cancel, PNG frames on disk).
- ``job_input``, ``api_models``, ``guards``, ``server``: the HTTP service of docs/backend_api.md.
- ``analysis_jobs``, ``analysis_routes``: a second queue and the HTTP routes for analysis jobs
  (``POST /extract``, ``/extract/frames``, ``/adherence``, ``GET /jobs/{id}/result``).
- ``extract``: pose extraction (video decoding, the MediaPipe and DWPose extractors, the output
  folder that Import Pose reads).
- ``adherence``, ``adherence_run``, ``adherence_report``: does a generated character hold the
  pose? Detected against expected keypoints, ``adherence.json`` and ``adherence.png``.
- ``model_info`` (what the service knows of the loaded models), ``model_loading`` (what ``serve``
  loads, as a value a replica process can load again).
- ``scale``: ``serve --ray``, each job's units spread over Ray Serve generator replicas.
- ``cli`` (and ``__main__``, ``cli_extract``): ``posebridge-backend serve | make-tiny-model |
  extract | adherence``.
"""

# The backend's version, reported by /health; kept equal to pyproject.toml's and
# blender_manifest.toml's (tests/backend/test_server.py checks).
__version__ = "0.1.0"
