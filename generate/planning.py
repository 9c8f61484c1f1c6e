"""What a generation would do, asked before anything is sent: the identity reference checked, and
the output folder's plan (done, missing, stale) under the backend's current models."""
from __future__ import annotations

from pathlib import Path

from . import job_folder
from ..draw.png import png_size
from .client import BackendClient
from .controls import ControlFolderError, ControlFrame


def check_reference(reference) -> Path | None:
    """The identity reference as a Path; ControlFolderError naming it when it is not a PNG file
    (the backend takes PNG only; the header is read, not the image)."""
    if reference is None:
        return None
    path = Path(reference)
    if not path.is_file():
        raise ControlFolderError(f"the identity reference {path} does not exist")
    if png_size(path) is None:
        raise ControlFolderError(f"the identity reference {path} is not a PNG image (save it as PNG)")
    return path


def plan_generation(client: BackendClient, out_dir, controls: list[ControlFrame], params: dict,
                    reference=None, segment: int | None = None):
    """(plan, health): what a run would do, e.g. for a dialog asking to overwrite stale frames.
    Asks ``/health`` (quick) for the model ids that are part of the settings."""
    reference = check_reference(reference)
    health = client.health()
    uses_depth = any(c.depth is not None for c in controls)
    reference_hash = job_folder.file_hash(reference) if reference is not None else None
    settings = job_folder.generation_settings(params, health, uses_depth, reference_hash, segment)
    return job_folder.plan(out_dir, settings, controls), health
