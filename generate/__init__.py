"""Client side of image generation: talk to the backend process, fill an output folder.

Pure (standard library + numpy, no bpy), so Blender's operators, the batch command and the tests
share it. Modules:

- ``controls``: pose/depth maps in folders -> ``ControlFrame`` list (``control_frames``).
- ``client``: ``BackendClient`` for the backend's HTTP API and the ``BackendError`` family.
- ``job_folder``: ``frame_NNNN.png`` + ``generation.json``; ``plan`` says done/missing/stale.
- ``planning``: the reference checked and the output folder's plan, before anything is sent.
- ``run``: ``GenerationRun``, the whole job on a background thread or blocking; ``run_state``:
  the states every client-side run goes through and the snapshot the UI reads.
- ``videos``: how a temporal (video) run is cut into jobs and what each continues from.
- ``launcher``: ``start_local_backend`` runs ``python -m posebridge.backend serve``.
"""
