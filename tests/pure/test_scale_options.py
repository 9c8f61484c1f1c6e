"""serve's scale-out flags (backend/scale/options.py): --autoscale MIN-MAX, and the usage errors a
TD gets for flags that do not go together. Pure: no Ray, no torch."""
import argparse

import pytest

from posebridge.backend.cli import build_parser
from posebridge.backend.scale.options import ScaleOptions, parse_autoscale, scale_options


def parse(*flags):
    args = build_parser().parse_args(["serve", *flags])
    return scale_options(args, args.command_parser)


@pytest.mark.parametrize("text, expected", [("1-4", (1, 4)), (" 0 - 2 ", (0, 2)), ("3-3", (3, 3))])
def test_autoscale_reads_min_max(text, expected):
    assert parse_autoscale(text) == expected


@pytest.mark.parametrize("text", ["4", "4-1", "0-0", "a-b", "-1-3", "1-"])
def test_autoscale_refuses_what_is_not_a_range(text):
    with pytest.raises(argparse.ArgumentTypeError, match="MIN-MAX"):
        parse_autoscale(text)


def test_without_ray_there_is_no_scale_out():
    assert parse() is None


def test_replicas_autoscale_and_cluster_address():
    assert parse("--ray") == ScaleOptions(1, 1)
    assert parse("--ray", "--replicas", "3", "--replica-threads", "2") == ScaleOptions(3, 3, None, 2)
    scaled = parse("--ray", "--autoscale", "1-4", "--ray-address", "head:6379")
    assert scaled == ScaleOptions(1, 4, "head:6379") and scaled.autoscale


@pytest.mark.parametrize("flags, message", [
    (("--replicas", "2"), "--replicas needs --ray"),
    (("--ray-address", "auto"), "--ray-address needs --ray"),
    (("--ray", "--replicas", "2", "--autoscale", "1-3"), "not both"),
    (("--ray", "--replicas", "0"), "at least 1"),
    (("--ray", "--autoscale", "3-1"), "MIN-MAX"),
    (("--ray", "--ray-address", "ray://head:10001"), "Ray Client (ray://) is not supported"),
])
def test_flags_that_do_not_go_together_are_usage_errors(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(*flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_ray_needs_a_real_port(capsys):
    from posebridge.backend.cli import serve

    args = build_parser().parse_args(["serve", "--ray", "--port", "0"])
    with pytest.raises(SystemExit):
        serve(args, args.command_parser)
    assert "--ray needs a port number" in capsys.readouterr().err


def test_gpus_are_used_where_the_cluster_has_them_and_can_hold_the_replicas():
    from posebridge.backend.scale.launch import StartError, _use_gpus

    assert _use_gpus("auto", ScaleOptions(2, 2), {"GPU": 2.0}, joined=False)
    assert not _use_gpus("auto", ScaleOptions(2, 2), {"CPU": 2.0}, joined=False)  # CPU replicas
    assert not _use_gpus("cpu", ScaleOptions(2, 2), {"GPU": 2.0}, joined=False)
    assert _use_gpus("auto", ScaleOptions(1, 8), {"GPU": 2.0}, joined=False)  # autoscale from 1
    assert _use_gpus("cuda", ScaleOptions(4, 4), {"GPU": 2.0}, joined=True)  # a cluster may grow
    with pytest.raises(StartError, match="4 replicas need 4 GPUs"):
        _use_gpus("auto", ScaleOptions(4, 4), {"GPU": 2.0}, joined=False)
    with pytest.raises(StartError, match="no GPU"):
        _use_gpus("cuda", ScaleOptions(1, 1), {"CPU": 8.0}, joined=False)
