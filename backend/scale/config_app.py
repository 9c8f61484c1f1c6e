"""The entry a Ray Serve config file names: ``posebridge.backend.scale.config_app:build_app``.

deploy/ray-serve.yaml (``serve run`` / ``serve deploy``, KubeRay's RayService) gives ``serve``'s own
flags as the application's ``args``; this builds the same application ``serve --ray`` runs. It
runs where Ray builds applications (a task on the cluster, usually on the head node): the model
folders and the token must be there.
"""
from __future__ import annotations

from pathlib import Path


def build_app(args: dict):
    """``args``: ``serve``'s flags without dashes, e.g. ``{"model": "/models/set", "work-dir":
    "/shared/posebridge", "replicas": 4}``. The token comes from POSEBRIDGE_BACKEND_TOKEN in the
    environment of the node that builds the application, or from ``token-file`` (a path there),
    never from the config file; without one the application is refused, whatever the host: the
    proxy's address (``http_options``) is not known here."""
    from ..cli import TOKEN_ENV, build_parser, ingress_settings, model_load
    from .options import scale_options
    from .ray_app import build_application

    argv, token_file = ["serve", "--ray"], None
    for key, value in (args or {}).items():
        flag = "--" + str(key).replace("_", "-")
        if flag in ("--token", "--ray"):
            raise ValueError(f"{key!r} does not belong in a config file (the token: {TOKEN_ENV} or token-file)")
        if flag == "--token-file":
            token_file = Path(value)
        elif value is True:
            argv.append(flag)
        elif value not in (False, None):
            argv += [flag, str(value)]
    parsed = build_parser().parse_args(argv)  # the token's default is read from the environment here
    parser = parsed.command_parser
    if token_file is not None:
        parsed.token = token_file.read_text(encoding="utf-8").strip()
    if not parsed.token:
        parser.error(f"no token: set {TOKEN_ENV} where the application is built, or give token-file")
    if not parsed.work_dir:
        parser.error("work-dir is needed: a folder the ingress keeps the job records and frames in")
    scale = scale_options(parsed, parser)
    settings = ingress_settings(parsed, scale, parsed.work_dir)
    return build_application(model_load(parsed, parser), settings, scale, gpus=_want_gpus(parsed.device))


def _want_gpus(device: str) -> bool:
    if device == "cpu":
        return False
    if device == "cuda":
        return True
    import ray

    return ray.is_initialized() and ray.cluster_resources().get("GPU", 0) > 0
