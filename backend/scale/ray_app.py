"""The scaled-out backend as a Ray Serve application: an ingress and generator replicas.

- ``Generator`` (one replica per GPU, or per ``threads`` CPUs where there is none) loads the models
  once and streams work units back (``GeneratorService``).
- ``Ingress`` (one replica) is the ordinary HTTP app (backend/server.create_app: the same API,
  token and Host guards, job records in the work folder) whose queue is a ``ScaledJobQueue``: each
  job is cut into units and they run on the generators through a Serve handle.

``build_application(...)`` is what ``serve --ray`` runs and what ``config_app.build_app``, the
entry a Ray Serve config file names, builds from the file's arguments.
"""
from __future__ import annotations

from ray import serve
from ray.exceptions import NodeDiedError, ObjectLostError, RayActorError, RayTaskError, WorkerCrashedError
from ray.serve.exceptions import ReplicaUnavailableError

from ..jobs import GenerationCancelled
from ..model_info import ModelInfo
from ..server import create_app
from .local_replica import ReplicaLost, UnitWork
from .options import IngressSettings
from .replica_service import GeneratorService, note_ingress_pid
from .scaled_queue import ScaledJobQueue

# A replica's process or node went away (with it the frames it held): the unit may run again
# elsewhere. Errors raised by the unit itself come as RayTaskError and are raised as themselves.
REPLICA_FAILURES = (RayActorError, WorkerCrashedError, NodeDiedError, ObjectLostError, ReplicaUnavailableError)


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
        except RayTaskError as exc:  # the unit's own error: its message, as the single process gives it
            if isinstance(getattr(exc, "cause", None), Exception):
                raise exc.cause from None
            raise
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
        note_ingress_pid()

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


def build_application(load, settings: IngressSettings, scale, gpus: bool, ingress_node: str | None = None):
    """The bound application: the ingress over ``scale``'s generators, each loading ``load``;
    the ingress on the node at address ``ingress_node`` when given (where its work folder is)."""
    generator = Generator.options(**generator_options(scale, gpus)).bind(load, scale.replica_threads)
    ingress = Ingress
    if ingress_node:
        ingress = Ingress.options(ray_actor_options={"num_cpus": 0, "resources": {f"node:{ingress_node}": 0.001}})
    return ingress.bind(generator, settings)
