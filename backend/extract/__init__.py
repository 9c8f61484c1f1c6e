"""Pose extraction: a video (or pictures) in, OpenPose keypoints out (issue 10).

    from posebridge.backend.extract import make_extractor, EXTRACTORS
    with make_extractor("mediapipe") as extractor:
        people = extractor.detect(rgb)       # (people, len(IMPORT), 3), see base.py

Modules: ``base`` (the interface), ``video`` (decoding with PyAV), one module per extractor
(``mediapipe_extractor`` (not ``mediapipe``: that is the package it wraps), ``dwpose``), ``run`` (a video or frames -> the output folder), ``output``.
An extractor is one module and one line in ``EXTRACTORS``.
"""
from __future__ import annotations

from importlib import import_module

from .base import ExtractionError, Extractor, ExtractorInfo

# name -> (module, factory function). Imported on first use: each extractor's runtime (MediaPipe,
# onnxruntime) loads only when chosen.
EXTRACTORS = {
    "mediapipe": ("mediapipe_extractor", "create"),
    "dwpose": ("dwpose", "create"),
}
DEFAULT_EXTRACTOR = "mediapipe"
PARTS = ("body", "hands", "face")


def make_extractor(name: str = DEFAULT_EXTRACTOR, *, parts=PARTS, model_dir=None, device: str = "auto") -> Extractor:
    """The named extractor. ``parts`` limits what it looks for (body only is faster);
    ``model_dir`` is a local folder of its model files (DWPose); ``device`` "auto", "cpu" or "cuda"."""
    if name not in EXTRACTORS:
        raise ExtractionError(f"unknown extractor {name!r} (known: {', '.join(EXTRACTORS)})")
    unknown = set(parts) - set(PARTS)
    if unknown or "body" not in parts:
        raise ExtractionError(f"parts must include 'body' and be among {PARTS}, got {tuple(parts)}")
    module_name, factory = EXTRACTORS[name]
    module = import_module(f".{module_name}", __name__)
    return getattr(module, factory)(parts=tuple(parts), model_dir=model_dir, device=device)


__all__ = ["EXTRACTORS", "DEFAULT_EXTRACTOR", "PARTS", "ExtractionError", "Extractor", "ExtractorInfo", "make_extractor"]
