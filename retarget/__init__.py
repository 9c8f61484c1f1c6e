"""Detected keypoints onto a rig, pure numpy: person tracking, cleaning, resampling and fitting
into the frame, and the 2-D -> 3-D lift (``lift.lift``: the geometric solver, its plan and its
steps) with the learned lifter (``lifter``: numpy inference, its weights and model card beside
it; the training code is ``train/``, outside the add-on). No bpy, no torch.

Kept free of imports: ``train/`` imports ``retarget.lifter`` as a top-level package.
"""
