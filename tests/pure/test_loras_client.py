"""LoRAs on the Blender side (issue 14): the generate command's --lora flag, and the frames'
settings in the output folder's manifest (a LoRA's weight, its file's bytes; weight 0 is none)."""
import pytest

from posebridge.batch_parser import build_parser
from posebridge.generate import job_folder
from posebridge.generate.job_folder import generation_settings

BASE = ["generate", "--poses", "p", "--prompt", "x", "--out", "o"]
HEALTH = {"pipelines": ["frames"], "models": {"model": "m", "pose_controlnet": "p"}}


def parse(*extra):
    return build_parser().parse_args([*BASE, *extra])


def test_lora_flags_parse_with_and_without_a_weight():
    assert parse().loras == []
    args = parse("--lora", "/styles/ink.safetensors:0.7", "--lora", "owner/repo", "--lora", r"C:\styles\a.safetensors")
    assert args.loras == [{"source": "/styles/ink.safetensors", "weight": 0.7},
                          {"source": "owner/repo", "weight": 1.0},
                          {"source": r"C:\styles\a.safetensors", "weight": 1.0}]
    assert parse("--lora", "x.safetensors:-1.5").loras == [{"source": "x.safetensors", "weight": -1.5}]


@pytest.mark.parametrize("bad", [":0.5", "x.safetensors:9", "x.safetensors:nan"])
def test_bad_lora_flags_are_usage_errors(bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse("--lora", bad)
    assert exit_info.value.code == 2 and "LoRA" in capsys.readouterr().err


def test_a_loras_weight_and_bytes_decide_the_pixels_and_weight_zero_is_none(tmp_path):
    lora = tmp_path / "ink.safetensors"
    lora.write_bytes(b"first training")

    def digest(loras, pipeline="frames"):
        params = {"pipeline": pipeline, "loras": loras}
        return job_folder.settings_hash(generation_settings(params, HEALTH, uses_depth=False))

    one = [{"source": str(lora), "weight": 1.0}]
    assert digest(one) != digest([])
    assert digest([{"source": str(lora), "weight": 0.0}]) == digest([]), "weight 0 is no LoRA"
    assert digest([{"source": str(lora), "weight": 0.5}]) != digest(one)
    before = digest(one)
    lora.write_bytes(b"trained further")
    assert digest(one) != before, "the same name with other bytes makes the frames stale"
    assert digest(one, pipeline="wan-vace") == digest([], pipeline="wan-vace"), "Wan reads no LoRA"
    settings = generation_settings({"loras": one}, HEALTH, uses_depth=False)
    assert settings["params"]["loras"][0]["sha256"] == job_folder.file_hash(lora)
