"""The batch command against a scaled-out backend (serve --ray, two replicas on a local Ray
cluster): only the URL differs. The frames land with their strip and match the single-process
backend's (within the last bit that one torch thread against two changes)."""
from __future__ import annotations

import bpy
import numpy as np
import pytest

from posebridge.render import vse
from posebridge.render.demo_shot import build_demo_shot
from test_generate import FRAMES, SIZE, _frame, _generate, _render_poses

pytestmark = pytest.mark.skipif(
    bpy.app.version < (5, 0, 0),
    reason="runs in the Blender 5.0 tier only: nothing on this path differs between Blender releases,"
    " and a second Ray cluster would cost CI a minute")


@pytest.fixture
def poses(tmp_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    build_demo_shot(bpy.context.scene, frame_count=FRAMES, resolution=(SIZE, SIZE))
    return _render_poses(bpy.context.scene, tmp_path / "poses")


def test_generate_command_against_the_ray_url(ray_backend_server, backend_server, poses, tmp_path):
    out, saved = tmp_path / "scaled", tmp_path / "scaled.blend"
    assert _generate(ray_backend_server, poses, out, "--save", saved) == 0
    assert sorted(p.name for p in out.glob("frame_*.png")) == [f"frame_{f:04d}.png" for f in range(1, FRAMES + 1)]
    assert _generate(backend_server, poses, tmp_path / "single") == 0
    for frame in range(1, FRAMES + 1):
        scaled, single = _frame(out, frame), _frame(tmp_path / "single", frame)
        assert scaled.shape == (SIZE, SIZE, 3)
        assert np.abs(scaled.astype(int) - single).max() <= 2, frame

    bpy.ops.wm.open_mainfile(filepath=str(saved))
    strips = list(vse.strips_collection(bpy.context.scene))
    assert [s.name for s in strips] == ["scaled"] and len(strips[0].elements) == FRAMES
