"""GenerationRun cutting a Wan VACE shot into segments, against the session's real backend
process (tiny Wan VACE, CPU; tests/blender/test_generate_wan.py drives it from Blender): a
100-frame shot in 33-frame segments gives 100 frames once each, every later segment sends the
previous one's last frames as its lead (the frames on disk), a shot is cut at 81 frames by
default, a segment too short for its lead is refused before anything is sent, and a crash in a
segment keeps the finished ones while a rerun makes only the rest. Skips without a backend."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from posebridge.draw.png import read_png
from posebridge.generate.client import BackendClient
from posebridge.generate.controls import control_frames
from posebridge.generate.job_folder import MANIFEST_NAME, output_path
from posebridge.generate.run import GenerationRun
from posebridge.generate.run_state import DONE, FAILED

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
import backend_process  # noqa: E402
from test_generate_run import write_poses  # noqa: E402

WAN = {"pipeline": "wan-vace", "resolution": "maps", "steps": 2, "guidance": 5.0, "prompt": "a dancer"}


@pytest.fixture
def client(backend_server):
    return BackendClient(backend_server.url, backend_server.token)


def _run(client, out, controls, **kwargs):
    run = GenerationRun(client, out, controls, WAN, poll_interval=0.05, **kwargs)
    return run, run.run_blocking()


def frames_in(out):
    return sorted(int(p.stem.split("_")[1]) for p in Path(out).glob("frame_*.png"))


def test_a_100_frame_shot_in_33_frame_segments(client, tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", range(1, 101), size=32))
    out = tmp_path / "out"
    run, status = _run(client, out, controls, segment=33)
    assert status.state == DONE, status.message
    jobs = [client.status(j) for j in run.job_ids]
    assert [len(j["frames"]) for j in jobs] == [33, 28, 28, 11]  # 5 lead + 28 new after the first
    made = [f for j in jobs for f in j["frames_done"]]
    assert sorted(made) == list(range(1, 101)) and len(set(made)) == 100  # none twice
    assert frames_in(out) == list(range(1, 101))
    records = json.loads((out / MANIFEST_NAME).read_text())["frames"]
    assert [records[str(j["frames"][0])]["video"]["lead"] for j in jobs] == [
        [], [29, 30, 31, 32, 33], [57, 58, 59, 60, 61], [85, 86, 87, 88, 89]]


def test_a_shot_is_cut_at_81_frames_by_default(client, tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", range(1, 91), size=16))
    run, status = _run(client, tmp_path / "out", controls)
    assert status.state == DONE, status.message
    assert [client.status(j)["frames"] for j in run.job_ids] == [list(range(1, 82)), list(range(82, 91))]


def test_a_segment_longer_than_81_is_one_clip_per_job(client, tmp_path):
    """The job carries its clip length: the backend does not cut a 100-frame job at its own 81."""
    controls = control_frames(write_poses(tmp_path / "poses", range(1, 111), size=16))
    run, status = _run(client, tmp_path / "out", controls, segment=100)
    assert status.state == DONE, status.message
    jobs = [client.status(j) for j in run.job_ids]
    # The second job: 10 new frames after 5 lead frames (a job lists only the frames it makes).
    assert [len(j["frames"]) for j in jobs] == [100, 10] and all(j["params"]["segment"] == 100 for j in jobs)


def test_a_segment_too_short_for_its_lead_is_refused_before_sending(client, tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", range(1, 6)))
    run, status = _run(client, tmp_path / "out", controls, segment=8)
    assert status.state == FAILED and "at least 9 frames" in status.error
    assert run.job_ids == [] and not (tmp_path / "out").exists()


def test_a_crash_in_a_segment_keeps_the_finished_ones_and_a_rerun_makes_the_rest(client, tmp_path):
    quirky = backend_process.start_backend(
        tmp_path / "quirky", token=backend_process.TEST_TOKEN, env={"POSEBRIDGE_BACKEND_TEST_FAIL_AT_FRAME": "12"})
    controls = control_frames(write_poses(tmp_path / "poses", range(1, 21), size=32))
    out = tmp_path / "out"
    try:
        _, status = _run(BackendClient(quirky.url, quirky.token), out, controls, segment=9)
        # The API alone: the 20 frames as one job in clips of 9 (params.segment); the fault hits
        # its second clip (half the denoising work), and the first clip's frames stay done.
        api = BackendClient(quirky.url, quirky.token)
        job = api.submit({**WAN, "segment": 9}, controls, name="api-segments")
        while job["state"] not in ("done", "failed", "cancelled"):
            job = api.status(job["id"])
        assert job["state"] == "failed" and job["frames_done"] == list(range(1, 10))
        assert api.download_frame(job["id"], 9)
    finally:
        quirky.stop()
    assert status.state == FAILED and "9 of 20 frames are saved" in status.error
    kept = {f: read_png(output_path(out, f)) for f in range(1, 10)}
    run, status = _run(client, out, controls, segment=9)
    assert status.state == DONE and status.frames_written == 11
    assert [client.status(j)["frames"] for j in run.job_ids] == [[10, 11, 12, 13], [14, 15, 16, 17], [18, 19, 20]]
    assert all(np.array_equal(read_png(output_path(out, f)), kept[f]) for f in range(1, 10))
