"""``serve --ray``: start (or join) a Ray cluster, run the scaled-out application, wait, shut down.

Started here, the cluster is this machine's alone (``address="local"``: never one a ``ray start``
left running), without Ray's dashboard, and lives as long as this process: on SIGTERM, Ctrl-C or
the --parent-pid's exit the application and the cluster are shut down. Joined (--ray-address),
only the application is deleted at the end; the cluster stays.
"""
from __future__ import annotations

import os
import signal
import sys
import threading

APP_NAME = "posebridge"


def serve_ray(args, load, scale, settings, parent_alive) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reporting home; there may be no network
    import ray
    from ray import serve

    from ..cli import listening_line
    from ..process_watch import watch_parent
    from .ray_app import build_application

    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    if scale.address:
        ray.init(address=scale.address, log_to_driver=False)
    else:
        cpus = max(os.cpu_count() or 1, scale.max_replicas * scale.replica_threads)
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        gpus = args.device != "cpu" and ray.cluster_resources().get("GPU", 0) > 0
        if args.device == "cuda" and not gpus:
            print("posebridge-backend: error: --device cuda, but the Ray cluster has no GPU", file=sys.stderr)
            return 1
        serve.start(http_options={"host": args.host, "port": args.port})
        app = build_application(load, settings, scale, gpus)
        serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
        replicas = f"{scale.min_replicas}-{scale.max_replicas}" if scale.autoscale else str(scale.max_replicas)
        print(f"posebridge-backend: Ray Serve: {replicas} generator replica(s) on {'GPU' if gpus else 'CPU'}",
              file=sys.stderr, flush=True)
        print(listening_line(args.host, args.port), flush=True)
        if parent_alive is not None:
            watch_parent(args.parent_pid, parent_alive, stop.set)
        stop.wait()
        return 0
    finally:
        try:
            if scale.address:
                serve.delete(APP_NAME)
            else:
                serve.shutdown()
        finally:
            ray.shutdown()
