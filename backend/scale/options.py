"""``serve``'s scale-out flags and what they ask for (pure: no Ray import), and the settings the
ingress is started with.

    serve --ray [--replicas N | --autoscale MIN-MAX] [--ray-address ADDR] [--replica-threads N]
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..server import ServerLimits


@dataclass(frozen=True)
class IngressSettings:
    """What the ingress of a scaled-out backend serves with (backend/scale/ray_app.py)."""

    work_dir: str  # absolute: the ingress runs in another process and folder
    limits: "ServerLimits"
    units_in_flight: int  # the most units running at once: as many as there can be replicas
    token: str | None = None
    bound_host: str | None = None
    dwpose_dir: str | None = None


@dataclass(frozen=True)
class ScaleOptions:
    min_replicas: int
    max_replicas: int
    address: str | None = None  # None: start a Ray cluster on this machine
    replica_threads: int = 1  # CPU threads (and CPUs reserved) per replica

    @property
    def autoscale(self) -> bool:
        return self.min_replicas != self.max_replicas


def parse_autoscale(text: str) -> tuple[int, int]:
    """'1-4' -> (1, 4); argparse's type for --autoscale."""
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX replicas, such as 1-4 (got {text!r})")
    low, high = int(match[1]), int(match[2])
    if high < 1 or low > high:
        raise argparse.ArgumentTypeError(f"MIN-MAX needs 0 <= MIN <= MAX and MAX >= 1 (got {text!r})")
    return low, high


def add_scale_flags(add, positive_int) -> None:
    """Add the flags with ``add`` (a parser's add_argument)."""
    add("--ray", action="store_true",
        help="scale out on Ray Serve: the same HTTP API, each job's frames spread over generator replicas"
        " (one per GPU; CPU replicas where there is none)")
    add("--replicas", type=positive_int, help="generator replicas (with --ray; default 1)")
    add("--autoscale", type=parse_autoscale, metavar="MIN-MAX",
        help="let Ray Serve keep MIN to MAX replicas as the work asks (with --ray)")
    add("--ray-address", metavar="ADDR",
        help="join the Ray cluster this machine belongs to (auto, or HEAD:6379) instead of starting one here"
        " (with --ray)")
    add("--replica-threads", type=positive_int, default=None,
        help="CPU threads (and CPUs reserved) per replica (with --ray; default 1)")


def scale_options(args, parser) -> ScaleOptions | None:
    """The scale-out asked for, None without --ray; usage errors through ``parser``."""
    given = [flag for flag, value in (("--replicas", args.replicas), ("--autoscale", args.autoscale),
                                      ("--ray-address", args.ray_address),
                                      ("--replica-threads", args.replica_threads)) if value is not None]
    if not args.ray:
        if given:
            parser.error(f"{given[0]} needs --ray")
        return None
    if args.replicas is not None and args.autoscale is not None:
        parser.error("give --replicas or --autoscale, not both")
    if args.ray_address and args.ray_address.startswith("ray://"):
        parser.error("--ray-address: run serve --ray on a node of the cluster (auto, or HEAD:6379); Ray Client"
                     " (ray://) is not supported: the ingress keeps the job folders on this machine")
    low, high = args.autoscale or (args.replicas or 1,) * 2
    return ScaleOptions(low, high, args.ray_address, args.replica_threads or 1)
