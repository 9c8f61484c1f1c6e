"""The scaled-out backend as a Ray Serve application: an ingress and generator replicas.

- ``Generator`` (one replica per GPU, or per ``threads`` CPUs where there is none) loads the models
  once and streams work units back (``GeneratorService``).
- ``Ingress`` (one replica) is the ordinary HTTP app (backend/server.create_app: the same API,
  token and Host guards, job records in the work folder) whose queue is a ``ScaledJobQueue``: each
  job is cut into units and they run on the generators through a Serve handle.

``build_application(settings)`` is what ``serve --ray`` runs; ``build_app(args)`` is the entry a
Ray Serve config file names (deploy/ray-serve.yaml: ``serve run`` / ``serve deploy``), its
``args`` being ``serve``'s own flags.
"""
from __future__ import annotations

import os
from pathlib import Path

from ray import serve
from ray.exceptions import NodeDiedError, RayActorError, WorkerCrashedError
from ray.serve.exceptions import ReplicaUnavailableError

from ..jobs import GenerationCancelled
from ..model_info import ModelInfo
from ..server import create_app
from .local_replica import ReplicaLost, UnitWork
from .options import IngressSettings
from .replica_service import GeneratorService
from .scaled_queue import ScaledJobQueue

# A replica's process or node went away: the unit may run again elsewhere. Errors raised by the
# unit itself reach us as themselves (Ray re-raises them as instances of their own class).
REPLICA_FAILURES = (RayActorError, WorkerCrashedError, NodeDiedError, ReplicaUnavailableError)


class RayUnits:
    """Work units run on the generator deployment behind ``handle``."""

    def __init__(self, handle):
        self.handle = handle

    def describe(self) -> ModelInfo:
        """The replicas' models (waits for the first replica to be up)."""
        return self.handle.describe.remote().result()

    def run_unit(self, work: UnitWork, should_stop=None, on_progress=None, on_segment_done=None):
        """Yield the unit's (index, frame) as a replica makes them; ReplicaLost if it dies."""
        stream = self.handle.options(stream=True).run_unit.remote(work)
        finished = False
        try:
            for kind, *values in stream:
                if should_stop is not None and should_stop():
                    raise GenerationCancelled("cancelled")
                if kind == "frame":
                    yield tuple(values)
                elif kind == "progress" and on_progress is not None:
                    on_progress(*values)
                elif kind == "segment" and on_segment_done is not None:
                    on_segment_done()
            finished = True
        except REPLICA_FAILURES as exc:
            raise ReplicaLost(f"a generator replica was lost mid-unit: {type(exc).__name__}") from exc
        finally:
            if not finished:
                stream.cancel()  # best effort: the replica stops at its next step


@serve.deployment(name="Generator", max_ongoing_requests=1, ray_actor_options={"num_cpus": 1})
class Generator(GeneratorService):
    """One unit at a time per replica: more wait at the caller, where the autoscaler counts them."""


@serve.deployment(name="Ingress", num_replicas=1, max_ongoing_requests=256, ray_actor_options={"num_cpus": 0})
@serve.ingress()
class Ingress:
    def __init__(self, generator, settings: IngressSettings):
        self.units = RayUnits(generator)
        self.settings = settings

    def __serve_build_asgi_app__(self):
        settings = self.settings

        def make_queue(info: ModelInfo):
            return ScaledJobQueue(info, settings.work_dir, self.units.run_unit, settings.units_in_flight)

        return create_app(
            self.units.describe,
            work_dir=settings.work_dir,
            token=settings.token,
            limits=settings.limits,
            bound_host=settings.bound_host,
            dwpose_dir=settings.dwpose_dir,
            make_queue=make_queue,
        )


def generator_options(scale, gpus: bool) -> dict:
    """The Generator deployment's options for a ScaleOptions."""
    actor = {"num_cpus": scale.replica_threads}
    if gpus:
        actor["num_gpus"] = 1
    options = {"ray_actor_options": actor}
    if scale.autoscale:
        options["autoscaling_config"] = {
            "min_replicas": scale.min_replicas,
            "max_replicas": scale.max_replicas,
            "target_ongoing_requests": 1,  # one unit per replica: a waiting unit asks for another
            "upscale_delay_s": 5,
            "downscale_delay_s": 300,
        }
    else:
        options["num_replicas"] = scale.max_replicas
    return options


def build_application(load, settings: IngressSettings, scale, gpus: bool):
    """The bound application: the ingress over ``scale``'s generators, each loading ``load``."""
    generator = Generator.options(**generator_options(scale, gpus)).bind(load, scale.replica_threads)
    return Ingress.bind(generator, settings)


def build_app(args: dict):
    """Ray Serve's entry for config files: ``args`` are ``serve``'s flags without dashes, e.g.
    ``{"model": "/models/set", "work-dir": "/shared/posebridge", "replicas": 4}``. The token comes
    from POSEBRIDGE_BACKEND_TOKEN (or ``token-file``), never from the config file."""
    from ..cli import TOKEN_ENV, build_parser, is_loopback, model_load, server_limits
    from .options import scale_options

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
    if not is_loopback(parsed.host) and not parsed.token:
        parser.error(f"host {parsed.host} is not a loopback address: set {TOKEN_ENV} (or token-file)")
    if not parsed.work_dir:
        parser.error("work-dir is needed: a folder the ingress keeps the job records and frames in")
    scale = scale_options(parsed, parser)
    settings = IngressSettings(
        work_dir=os.path.abspath(parsed.work_dir), limits=server_limits(parsed), units_in_flight=scale.max_replicas,
        token=parsed.token, bound_host=parsed.host, dwpose_dir=parsed.dwpose_dir,
    )
    return build_application(model_load(parsed, parser), settings, scale, gpus=_want_gpus(parsed.device))


def _want_gpus(device: str) -> bool:
    if device == "cpu":
        return False
    if device == "cuda":
        return True
    import ray

    return ray.is_initialized() and ray.cluster_resources().get("GPU", 0) > 0
