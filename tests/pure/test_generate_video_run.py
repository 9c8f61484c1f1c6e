"""GenerationRun with a temporal pipeline (animatediff) against real backend processes (tiny
model, CPU): a run of frames is one video, segments are made one after another and continue from
the frames before them, a crash keeps the finished segments, a rerun makes only the segments not
made, an identity reference is sent and is part of the settings. Skips without a backend Python."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from posebridge.generate.client import BackendClient
from posebridge.generate.controls import control_frames
from posebridge.generate.job_folder import MANIFEST_NAME, output_path
from posebridge.generate.planning import plan_generation
from posebridge.generate.run import GenerationRun
from posebridge.generate.run_state import DONE, FAILED
from posebridge.generate.videos import Cutting, CuttingError, cutting, lead_frames, video_units
from posebridge.draw.png import read_png, write_png

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
import backend_process  # noqa: E402
from test_generate_run import write_poses  # noqa: E402  (same folder: pytest's rootdir-less import)

VIDEO = {"steps": 2, "seed": 0, "prompt": "a dancer", "pipeline": "animatediff", "context_length": 4,
         "context_stride": 2}
FAIL_AT = 5


def frames_in(out):
    return sorted(int(p.stem.split("_")[1]) for p in Path(out).glob("frame_*.png"))


def pixels(out, frames):
    return {f: read_png(output_path(out, f)) for f in frames}


@pytest.fixture
def client(backend_server):
    return BackendClient(backend_server.url, backend_server.token)


def _run(client, out, controls, params=VIDEO, **kwargs):
    run = GenerationRun(client, out, controls, params, poll_interval=0.05, **kwargs)
    return run, run.run_blocking()


def test_video_units_follow_unbroken_runs_and_segments():
    order = list(range(10))
    assert video_units(order, order, None) == [order]
    assert video_units(order, order, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    # Frames 3 and 4 are made already: two videos, never one across them.
    assert video_units(order, [0, 1, 2, 5, 6, 7, 8, 9], 3) == [[0, 1, 2], [5, 6, 7], [8, 9]]
    assert video_units([-2, 0, 7], [-2, 0, 7], None) == [[-2, 0, 7]]  # numbering gaps are not breaks


def test_wan_segments_count_their_lead_frames():
    order = list(range(1, 101))
    sizes = [len(u) for u in video_units(order, order, 33, lead=5)]
    assert sizes == [33, 28, 28, 11]  # the first has no lead; each later one 5 lead + 28 new
    units = video_units(list(range(1, 21)), list(range(1, 21)), 9, lead=5)
    assert [len(u) for u in units] == [9, 4, 4, 3]
    assert sum(units, []) == list(range(1, 21))  # every frame once, in order
    # A rerun after the first segment: the rest is cut as the first run cut it.
    assert video_units(list(range(1, 21)), list(range(10, 21)), 9, lead=5, usable=range(1, 10)) == units[1:]
    # Only 2 frames made before the gap: the first job after it has 2 lead frames, so 7 new.
    assert video_units(order[:20], order[2:20], 9, lead=5, usable={1, 2}) == [
        list(range(3, 10)), list(range(10, 14)), list(range(14, 18)), [18, 19, 20]]
    # AnimateDiff's segment is new frames only, as before.
    assert [len(u) for u in video_units(order, order, 33)] == [33, 33, 33, 1]
    with pytest.raises(CuttingError):
        video_units(order, order, 5, lead=5)


def test_cutting_per_pipeline():
    assert cutting("animatediff") == Cutting(None, 4, False)
    assert cutting("animatediff", 12, context_length=4) == Cutting(12, 3, False)  # lead fits one window
    assert cutting("wan-vace") == Cutting(81, 5, True)
    assert cutting("wan-vace", 0) == cutting("wan-vace", None) == cutting("wan-vace", 81)
    assert cutting("wan-vace", 9) == Cutting(9, 5, True)
    assert cutting("wan-vace", 9, context_length=4).lead == 5  # the context rule is AnimateDiff's
    with pytest.raises(CuttingError, match="at least 9 frames"):
        cutting("wan-vace", 8)
    assert cutting("wan-vace", 6, lead=2) == Cutting(6, 2, True)


def test_lead_frames_are_the_usable_frames_right_before():
    order = list(range(1, 11))
    assert lead_frames(order, 6, {1, 2, 3, 4, 5}, 2) == [4, 5]
    assert lead_frames(order, 6, {1, 2, 3, 5}, 4) == [5]  # stops at a frame not made alike
    assert lead_frames(order, 1, set(order), 4) == []
    assert lead_frames(order, 6, {4, 5}, 0) == []


def test_a_range_is_one_job_whose_frames_land_together(client, tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", range(1, 11)))
    run, status = _run(client, tmp_path / "out", controls)
    assert status.state == DONE, status.message
    [job_id] = run.job_ids
    job = client.status(job_id)
    assert job["frames"] == list(range(1, 11)) and job["params"]["pipeline"] == "animatediff"
    assert frames_in(tmp_path / "out") == list(range(1, 11))


def test_segments_continue_from_the_frames_before_and_a_rerun_makes_only_what_is_missing(client, tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", range(1, 11)))
    out = tmp_path / "out"
    run, status = _run(client, out, controls, segment=4, lead=2)
    assert status.state == DONE, status.message
    assert [client.status(j)["frames"] for j in run.job_ids] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    made = pixels(out, range(1, 11))
    # The manifest says which frames were made together, and from which lead frames.
    records = json.loads((out / MANIFEST_NAME).read_text())["frames"]
    assert records["6"]["video"] == {"job": run.job_ids[1], "frames": [5, 8], "lead": [3, 4]}
    assert records["1"]["video"]["lead"] == [] and records["10"]["video"]["frames"] == [9, 10]

    # The last segment lost (as if the run had died during it): only it is made again, from the
    # same lead frames and inputs, so to the same pixels; the other files are not touched.
    kept = {f: output_path(out, f).stat().st_mtime_ns for f in range(1, 9)}
    for f in (9, 10):
        output_path(out, f).unlink()
    run, status = _run(client, out, controls, segment=4, lead=2)
    assert status.state == DONE and status.frames_written == 2
    assert [client.status(j)["frames"] for j in run.job_ids] == [[9, 10]]
    assert {f: output_path(out, f).stat().st_mtime_ns for f in range(1, 9)} == kept
    for f in (9, 10):
        assert np.array_equal(read_png(output_path(out, f)), made[f]), f"frame {f}"

    # The lead frames condition the segment: the same segment made with no lead differs.
    alone = tmp_path / "alone"
    _, status = _run(client, alone, control_frames(tmp_path / "poses", frames=[9, 10]))
    assert status.state == DONE
    assert any(not np.array_equal(read_png(output_path(alone, f)), made[f]) for f in (9, 10))


def test_segments_change_the_pixels_so_they_are_part_of_the_settings(client, tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", range(1, 7)))
    whole, _ = plan_generation(client, tmp_path / "out", controls, VIDEO)
    cut, _ = plan_generation(client, tmp_path / "out", controls, VIDEO, segment=3)
    assert whole.settings_hash != cut.settings_hash
    frames_only, _ = plan_generation(client, tmp_path / "out", controls, {**VIDEO, "pipeline": "frames"}, segment=3)
    assert "segment" not in frames_only.settings["params"]
    assert "context_length" not in frames_only.settings["params"]


def test_the_backends_default_pipeline_is_resolved_in_the_settings(client, tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", [1]))
    implicit, health = plan_generation(client, tmp_path / "out", controls, {"steps": 2})
    explicit, _ = plan_generation(client, tmp_path / "out", controls, {"steps": 2, "pipeline": health["pipelines"][0]})
    assert implicit.settings["params"]["pipeline"] == "animatediff"
    assert implicit.settings_hash == explicit.settings_hash


def test_a_crash_in_a_segment_keeps_the_finished_segments(backend_server, client, tmp_path):
    quirky = backend_process.start_backend(
        tmp_path / "quirky", token=backend_process.TEST_TOKEN,
        env={"POSEBRIDGE_BACKEND_TEST_FAIL_AT_FRAME": str(FAIL_AT)},
    )
    controls = control_frames(write_poses(tmp_path / "poses", range(1, 10)))
    out = tmp_path / "out"
    try:
        run, status = _run(BackendClient(quirky.url, quirky.token), out, controls, segment=3)
    finally:
        quirky.stop()
    assert status.state == FAILED
    assert "mid-denoising" in status.error and "3 of 9 frames are saved" in status.error
    assert frames_in(out) == [1, 2, 3]  # the failed segment (4-6) left nothing half made

    run, status = _run(client, out, controls, segment=3)
    assert status.state == DONE and status.frames_written == 6
    assert [client.status(j)["frames"] for j in run.job_ids] == [[4, 5, 6], [7, 8, 9]]


def test_a_reference_is_sent_and_part_of_the_settings(client, tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", range(1, 5)))
    reference = tmp_path / "character.png"
    write_png(reference, np.random.default_rng(3).integers(0, 255, (48, 48, 3), dtype=np.uint8))
    _, status = _run(client, tmp_path / "plain", controls)
    assert status.state == DONE
    _, status = _run(client, tmp_path / "with", controls, reference=reference)
    assert status.state == DONE
    plain, with_ref = pixels(tmp_path / "plain", range(1, 5)), pixels(tmp_path / "with", range(1, 5))
    assert any(not np.array_equal(plain[f], with_ref[f]) for f in range(1, 5))

    # Another reference makes the frames stale: kept unless overwrite.
    other = tmp_path / "other.png"
    write_png(other, np.zeros((48, 48, 3), np.uint8))
    plan, _ = plan_generation(client, tmp_path / "with", controls, VIDEO, reference=other)
    assert plan.stale == [1, 2, 3, 4] and plan.done == []


def test_a_missing_reference_fails_before_anything_is_sent(client, tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", [1]))
    run, status = _run(client, tmp_path / "out", controls, reference=tmp_path / "nope.png")
    assert status.state == FAILED and "identity reference" in status.error and "nope.png" in status.error
    assert run.job_ids == []
