"""The generate command's Wan VACE flags, parsed without Blender or a backend."""
import pytest

from posebridge.batch_parser import build_parser

BASE = ["generate", "--poses", "p", "--prompt", "x", "--out", "o"]


def parse(*extra):
    return build_parser().parse_args([*BASE, *extra])


def test_wan_flags_parse_and_default_to_the_backends_choice():
    args = parse("--pipeline", "wan-vace", "--resolution", "720p", "--vace-control", "pose_over_depth",
                 "--segment", "33")
    assert (args.pipeline, args.resolution, args.vace_control, args.segment) == (
        "wan-vace", "720p", "pose_over_depth", 33)
    args = parse("--pipeline", "wan-vace")
    assert (args.resolution, args.vace_control, args.segment) == (None, None, None)


@pytest.mark.parametrize("extra, message", [
    (["--resolution", "1080p"], "invalid choice: '1080p'"),
    (["--vace-control", "normal"], "invalid choice: 'normal'"),
    (["--pipeline", "wan"], "invalid choice: 'wan'"),
])
def test_wrong_wan_values_are_usage_errors(capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        parse(*extra)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_segment_help_says_what_it_means_per_pipeline():
    text = build_parser()._subparsers._group_actions[0].choices["generate"].format_help()
    text = " ".join(text.split())  # argparse wraps the lines
    assert "animatediff: new frames per job" in text and "wan-vace: the clip length" in text
