"""Generate against an SDXL backend (issue 14): a real backend process serving the tiny SDXL
set over HTTP. The panel's Generate asks the backend first, renders the pose maps at the SDXL
size nearest the render's aspect with the wider (xinsir) sticks its "auto" line widths pick, and
the frames come back at the maps' size into one strip; the batch command says when maps made
elsewhere are too small for SDXL."""
from __future__ import annotations

import bpy
import numpy as np
import pytest

import posebridge
from posebridge import batch
from posebridge.draw.png import png_size, read_png
from posebridge.generate import families
from posebridge.render import pose_map_run, pose_maps, vse
from posebridge.render.demo_shot import build_demo_shot
from test_generate import _use_backend  # the add-on's preferences point at a test backend

FRAMES = 2


@pytest.fixture(scope="module")
def sdxl_server(tmp_path_factory):
    import backend_process

    if backend_process.backend_python() is None:
        pytest.skip("no backend Python (set POSEBRIDGE_BACKEND_PYTHON or create the backend venv)")
    root = tmp_path_factory.mktemp("sdxl-backend")
    made = backend_process.run_backend_command(root, "make-tiny-model", "--family", "sdxl", str(root / "tiny-sdxl"))
    assert made.returncode == 0, made.stderr[-3000:]
    server = backend_process.start_backend(root, token=backend_process.TEST_TOKEN, model_dir=root / "tiny-sdxl")
    yield server
    server.stop()


@pytest.fixture
def wide_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    posebridge.register()
    families.forget()
    scene = bpy.context.scene
    build_demo_shot(scene, frame_count=FRAMES, resolution=(160, 90))
    yield scene
    families.forget()
    posebridge.unregister()


def _lit(image: np.ndarray) -> int:
    return int((image.reshape(-1, image.shape[-1]).max(axis=1) > 0).sum())


def test_generate_fits_the_pose_maps_to_an_sdxl_backend(sdxl_server, wide_scene, tmp_path):
    _use_backend(sdxl_server)
    assert wide_scene.posebridge.line_widths == "auto"
    settings = wide_scene.posebridge.generate
    settings.output_dir = str(tmp_path / "take")
    settings.steps, settings.prompt, settings.name = 1, "a knight", "SDXL take"
    assert bpy.ops.posebridge.generate() == {"FINISHED"}
    poses = sorted((tmp_path / "take" / "poses").glob("pose_*.png"))
    frames = sorted((tmp_path / "take").glob("frame_*.png"))
    assert len(poses) == len(frames) == FRAMES
    assert png_size(poses[0]) == (1344, 768), "SDXL's bucket for a 16:9 render"
    assert png_size(frames[0]) == (1344, 768), "frames come back at the maps' size"
    strip = vse.find_strip(wide_scene, "SDXL take")
    assert strip is not None and len(strip.elements) == FRAMES

    # The maps were drawn with xinsir's wider sticks: the same frame drawn with ControlNet's
    # widths at that size lights fewer pixels.
    job = pose_maps.plan_job(wide_scene, output_dir=str(tmp_path / "narrow"), frame_start=1, frame_end=1,
                             resolution=(1344, 768), line_widths="controlnet")
    pose_map_run.render_pose_maps(wide_scene, job)
    wide, narrow = read_png(poses[0]), read_png(tmp_path / "narrow" / "pose_0001.png")
    assert _lit(wide) > 1.3 * _lit(narrow), (_lit(wide), _lit(narrow))

    # The backend seen last now decides "auto" for a plain pose-map render too, and the panel says so.
    assert families.line_widths_for("auto") == "xinsir"
    assert families.describe("auto") == "Auto: SDXL (wider sticks), as the backend serves SDXL"


def test_the_batch_command_notes_maps_too_small_for_sdxl(sdxl_server, wide_scene, tmp_path, capsys):
    job = pose_maps.plan_job(wide_scene, output_dir=str(tmp_path / "poses"), frame_start=1, frame_end=FRAMES,
                             resolution=(128, 72), line_widths="controlnet")
    pose_map_run.render_pose_maps(wide_scene, job)
    argv = ["generate", "--backend", sdxl_server.url, "--token", sdxl_server.token, "--poses",
            str(tmp_path / "poses"), "--prompt", "a knight", "--steps", "1", "--out", str(tmp_path / "out")]
    assert batch.main(argv, scene=wide_scene) == 0
    out = capsys.readouterr().out
    assert "small for the SDXL backend" in out and "--resolution 1344x768 --line-widths xinsir" in out
    assert png_size(next((tmp_path / "out").glob("frame_*.png"))) == (128, 72)
