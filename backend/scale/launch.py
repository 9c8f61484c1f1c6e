"""``serve --ray``: start (or join) a Ray cluster, run the scaled-out application, wait, shut down.

Started here, the cluster is this machine's alone (``address="local"``: never one a ``ray start``
left running), without Ray's dashboard, and lives as long as this process: on SIGTERM, Ctrl-C or
the --parent-pid's exit (also while the replicas are still loading) the application and the
cluster are shut down. Joined (--ray-address, from a node of that cluster), only the application
is deleted at the end; the cluster stays. The ingress runs on this machine either way: it keeps
the job folders and records in --work-dir here.
"""
from __future__ import annotations

import os
import signal
import sys
import threading

APP_NAME = "posebridge"


class StartError(RuntimeError):
    """The application cannot start on this cluster; the message says why."""


def serve_ray(args, load, scale, settings, parent_alive) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reporting home; there may be no network
    import ray
    from ray import serve

    from ..cli import listening_line
    from ..process_watch import watch_parent
    from .ray_app import build_application

    if scale.address:
        ray.init(address=scale.address, log_to_driver=False)
    else:
        cpus = max(os.cpu_count() or 1, scale.max_replicas * scale.replica_threads)
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    if parent_alive is not None:  # SIGTERM ourselves: ends the wait below, or the start-up
        watch_parent(args.parent_pid, parent_alive, lambda: os.kill(os.getpid(), signal.SIGTERM))
    try:
        gpus = _use_gpus(args.device, scale, ray.cluster_resources(), joined=bool(scale.address))
        serve.start(http_options={"host": args.host, "port": args.port})
        app = build_application(load, settings, scale, gpus, ingress_node=ray.util.get_node_ip_address())
        try:
            serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)  # until every replica is up
        except Exception as exc:  # a replica that cannot load its models, say
            raise StartError(f"the application did not start: {type(exc).__name__}: {exc}") from exc
        replicas = f"{scale.min_replicas}-{scale.max_replicas}" if scale.autoscale else str(scale.max_replicas)
        print(f"posebridge-backend: Ray Serve: {replicas} generator replica(s) on {'GPU' if gpus else 'CPU'}",
              file=sys.stderr, flush=True)
        print(listening_line(args.host, args.port), flush=True)
        stop = threading.Event()
        for number in (signal.SIGTERM, signal.SIGINT):  # after ray.init, which installs its own
            signal.signal(number, lambda *_: stop.set())
        stop.wait()
        return 0
    except StartError as exc:
        print(f"posebridge-backend: error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        try:
            if scale.address:
                serve.delete(APP_NAME)
            else:
                serve.shutdown()
        finally:
            ray.shutdown()


def _use_gpus(device: str, scale, resources: dict, joined: bool) -> bool:
    """Whether the generators take a GPU each; StartError where the cluster cannot hold them."""
    gpus = resources.get("GPU", 0)
    if device == "cuda" and not gpus:
        raise StartError("--device cuda, but the Ray cluster has no GPU")
    use = device != "cpu" and gpus > 0
    # A cluster started here cannot grow: replicas it cannot place would be waited for forever.
    if use and not joined and scale.min_replicas > gpus:
        raise StartError(f"{scale.min_replicas} replicas need {scale.min_replicas} GPUs; this machine has {gpus:g}")
    return use
