"""The Generate panel's LoRA list (issue 14): add and remove are undoable operators, the ticked
entries go with the job as the API's ``loras`` (files made absolute, Hugging Face ids as
typed), Wan VACE gets none, and the panel draws them."""
import bpy
import pytest

from posebridge.operators.generate import request_from_settings


@pytest.fixture
def scene(registered_scene):
    return registered_scene


def test_the_ticked_loras_go_with_the_job(scene, tmp_path):
    settings = scene.posebridge.generate
    settings.output_dir = str(tmp_path / "out")
    assert "loras" not in request_from_settings(bpy.context).params, "no LoRA: the key is left out"
    style = tmp_path / "styles" / "ink.safetensors"
    style.parent.mkdir()
    style.write_bytes(b"x")
    for source, weight, enabled in ((str(style), 0.8, True), ("owner/character", 1.0, True),
                                    (str(tmp_path / "off.safetensors"), 1.0, False), ("  ", 1.0, True)):
        assert bpy.ops.posebridge.lora_add() == {"FINISHED"}
        item = settings.loras[settings.lora_index]
        item.source, item.weight, item.enabled = source, weight, enabled
    assert request_from_settings(bpy.context).params["loras"] == [
        {"source": str(style.resolve()), "weight": pytest.approx(0.8)},
        {"source": "owner/character", "weight": 1.0},
    ]
    settings.pipeline = "WAN_VACE"
    assert "loras" not in request_from_settings(bpy.context).params, "Wan VACE reads no LoRA"


def test_remove_takes_the_selected_lora_and_keeps_a_valid_selection(scene):
    settings = scene.posebridge.generate
    for name in ("a", "b", "c"):
        bpy.ops.posebridge.lora_add()
        settings.loras[settings.lora_index].source = f"owner/{name}"
    settings.lora_index = 2
    assert bpy.ops.posebridge.lora_remove() == {"FINISHED"}
    assert [item.source for item in settings.loras] == ["owner/a", "owner/b"] and settings.lora_index == 1
    settings.lora_index = 0
    bpy.ops.posebridge.lora_remove()
    bpy.ops.posebridge.lora_remove()
    assert len(settings.loras) == 0
    assert not bpy.ops.posebridge.lora_remove.poll(), "nothing left to remove"


def test_a_blend_relative_lora_needs_a_saved_blend(scene, tmp_path):
    from posebridge.render.pose_maps import JobError

    settings = scene.posebridge.generate
    settings.output_dir = str(tmp_path / "out")
    bpy.ops.posebridge.lora_add()
    settings.loras[0].source = "//loras/ink.safetensors"
    with pytest.raises(JobError, match="relative to the .blend"):
        request_from_settings(bpy.context)
