"""The fast preview from Blender (issue 14): the Generate panel's Preview quality and the batch
command's --preview send a preview job to a real backend (the tiny set, whose random LoRA stands
in for LCM-LoRA) and land its half-size frames in the output folder's preview/ subfolder, as a
strip of their own; the final frames and strip are left alone."""
from __future__ import annotations

import bpy
import pytest

import posebridge
from posebridge import batch
from posebridge.draw.png import png_size
from posebridge.render import pose_map_run, pose_maps, vse
from posebridge.render.demo_shot import build_demo_shot
from test_generate import _use_backend  # the add-on's preferences point at a test backend

FRAMES = 2


@pytest.fixture
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    posebridge.register()
    scene = bpy.context.scene
    build_demo_shot(scene, frame_count=FRAMES, resolution=(128, 96))
    yield scene
    posebridge.unregister()


def _stamps(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("frame_*.png")}


def test_the_panels_preview_lands_beside_the_final_take(backend_server, scene, tmp_path):
    _use_backend(backend_server)
    settings = scene.posebridge.generate
    settings.output_dir, settings.name = str(tmp_path / "take"), "Take"
    settings.steps, settings.prompt = 2, "a dancer"
    assert bpy.ops.posebridge.generate() == {"FINISHED"}
    final = _stamps(tmp_path / "take")
    assert len(final) == FRAMES and png_size(tmp_path / "take" / "frame_0001.png") == (128, 96)

    settings.quality = "PREVIEW"
    assert bpy.ops.posebridge.generate() == {"FINISHED"}
    preview = tmp_path / "take" / "preview"
    assert len(_stamps(preview)) == FRAMES
    assert png_size(preview / "frame_0001.png") == (64, 48), "half size"
    assert png_size(preview / "poses" / "pose_0001.png") == (64, 48), "the maps drawn at that size"
    assert _stamps(tmp_path / "take") == final, "the final frames are untouched"
    strips = {s.name for s in vse.strips_collection(scene) if s.type == "IMAGE"}
    assert strips == {"Take", "Take (preview)"}
    import json

    manifest = json.loads((preview / "generation.json").read_text())
    (recorded,) = [settings["params"] for settings in manifest["settings"].values()]
    assert recorded["preview"]["lora"].endswith("preview-lora.safetensors") and "steps" not in recorded
    # Another prompt: the next preview replaces the last without asking; the final frames stay.
    before = _stamps(preview)
    settings.prompt = "a knight"
    assert bpy.ops.posebridge.generate() == {"FINISHED"}
    assert _stamps(preview).keys() == before.keys() and _stamps(preview) != before
    assert _stamps(tmp_path / "take") == final and not settings.overwrite


def test_the_batch_preview_halves_given_maps(backend_server, scene, tmp_path, capsys):
    job = pose_maps.plan_job(scene, output_dir=str(tmp_path / "poses"), frame_start=1, frame_end=FRAMES)
    pose_map_run.render_pose_maps(scene, job)
    argv = ["generate", "--backend", backend_server.url, "--token", backend_server.token, "--poses",
            str(tmp_path / "poses"), "--prompt", "a dancer", "--steps", "2", "--out", str(tmp_path / "out"),
            "--preview", "--pipeline", "animatediff"]
    assert batch.main(argv, scene=scene) == 0
    assert png_size(tmp_path / "out" / "preview" / "frame_0001.png") == (64, 48)
    assert not list((tmp_path / "out").glob("frame_*.png")), "nothing in the final folder"
    assert "with frames" in capsys.readouterr().out, "a preview runs per frame, whatever was asked"


def test_a_backend_without_a_preview_is_named_before_anything_is_rendered(scene, tmp_path):
    import backend_process

    if backend_process.backend_python() is None:
        pytest.skip("no backend Python")
    from posebridge.render import generate_job

    with backend_process.start_backend(tmp_path / "backend", token=backend_process.TEST_TOKEN,
                                       extra_args=("--preview-lora", "none")) as server:
        request = generate_job.GenerateRequest(backend_url=server.url, token=server.token, params={"prompt": "x"},
                                               strip_name="Take", out_dir=tmp_path / "take")
        from posebridge.render.generate_settings import as_preview

        request = as_preview(request)
        steps = generate_job.generate_steps(scene, request, generate_job.GenerateOutcome(), pose_settings={})
        with pytest.raises(generate_job.SettingsError, match="has no fast preview: it has no preview LoRA"):
            for _ in steps:
                pass
    assert not (tmp_path / "take" / "preview" / "poses").exists(), "nothing rendered"
