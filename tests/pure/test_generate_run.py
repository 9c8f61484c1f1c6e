"""GenerationRun against real backend processes (tiny model, CPU, steps 2): frames land as
frame_NNNN.png, reruns make only what is missing, a crash or a failed job keeps finished frames,
cancel deletes the job on the backend. Skips when no backend Python exists."""
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from posebridge.generate.client import BackendClient, BackendRequestError
from posebridge.generate.controls import control_frames
from posebridge.generate.job_folder import MANIFEST_NAME, output_path
from posebridge.generate.run import GenerationRun
from posebridge.generate.run_state import CANCELLED, DONE, FAILED
from posebridge.draw.png import read_png, write_png

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
import backend_process  # noqa: E402  (stdlib only; starts the backend in its own venv)

PARAMS = {"steps": 2, "seed": 0, "prompt": "a dancer", "pipeline": "frames"}  # frames land one by one
FAIL_AT = 3  # the quirky backend fails any job at this frame


def write_poses(folder, frames, size=64):
    folder.mkdir(parents=True, exist_ok=True)
    for f in frames:
        image = np.random.default_rng(abs(f) + 11).integers(0, 255, (size, size, 3), dtype=np.uint8)
        write_png(folder / f"pose_{f:04d}.png", image)
    return folder


def stats(out):
    """(inode, mtime_ns) per file: a rewritten file (even atomically, same bytes) shows up."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(Path(out).iterdir())}


def frame_names(out):
    return sorted(p.name for p in Path(out).glob("frame_*.png"))


@pytest.fixture
def client(backend_server):
    return BackendClient(backend_server.url, backend_server.token)


@pytest.fixture(scope="module")
def quirky_backend(backend_server, tmp_path_factory):
    """Its own backend: fails jobs at frame FAIL_AT, takes at most 4 frames and 1 MiB per job."""
    server = backend_process.start_backend(
        tmp_path_factory.mktemp("quirky-backend"),
        token=backend_process.TEST_TOKEN,
        extra_args=("--max-frames", "4", "--max-request-mb", "1"),
        env={"POSEBRIDGE_BACKEND_TEST_FAIL_AT_FRAME": str(FAIL_AT)},
    )
    yield server
    server.stop()


def _run(client, out, controls, **kwargs):
    seen = []
    run = GenerationRun(client, out, controls, kwargs.pop("params", PARAMS), poll_interval=0.05, **kwargs)
    status = run.run_blocking(seen.append)
    return run, status, seen


def test_run_writes_frames_with_the_pose_maps_numbers(client, tmp_path):
    poses = write_poses(tmp_path / "poses", [-3, 0, 1, 12])
    out = tmp_path / "out"
    run, status, seen = _run(client, out, control_frames(poses))

    assert status.state == DONE, status.message
    assert status.progress == 1.0 and status.frames_written == 4 and status.error is None
    assert frame_names(out) == ["frame_-003.png", "frame_0000.png", "frame_0001.png", "frame_0012.png"]
    assert (out / MANIFEST_NAME).is_file()
    assert read_png(output_path(out, 12)).shape == (64, 64, 3)
    [job_id] = run.job_ids
    assert client.status(job_id)["frames"] == [-3, 0, 1, 12]
    progress = [s.progress for s in seen]
    assert progress == sorted(progress) and seen[-1].state == DONE
    assert "generated 4 frame(s)" in status.message


def test_rerun_generates_nothing_and_rewrites_nothing(client, tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", [1, 2, 3]))
    out = tmp_path / "out"
    assert _run(client, out, controls)[1].state == DONE
    before, jobs_before = stats(out), len(client.jobs())

    run, status, _ = _run(client, out, controls)
    assert status.state == DONE and status.frames_written == 0
    assert run.job_ids == [] and len(client.jobs()) == jobs_before
    assert "all 3 frames are already in" in status.message
    assert stats(out) == before


def test_deleted_frames_and_only_they_are_generated_again(client, tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", [1, 2, 3, 4, 5]))
    out = tmp_path / "out"
    _run(client, out, controls)
    output_path(out, 2).unlink()
    output_path(out, 4).unlink()
    kept = {k: v for k, v in stats(out).items() if k.startswith("frame_")}

    run, status, _ = _run(client, out, controls)
    assert status.state == DONE and status.frames_written == 2
    [job_id] = run.job_ids
    assert client.status(job_id)["frames"] == [2, 4]  # the job the backend saw
    assert len(frame_names(out)) == 5
    assert {k: v for k, v in stats(out).items() if k in kept} == kept


def test_background_run_polled_like_a_modal_operator(client, tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", [7, 8]))
    run = GenerationRun(client, tmp_path / "out", controls, PARAMS, poll_interval=0.05)
    assert run.state == "idle"
    run.start()
    states = set()
    while not run.wait(timeout=0.02):  # a timer tick: read, never block on the network
        states.add(run.state)
        assert 0.0 <= run.progress <= 1.0 and isinstance(run.message, str)
    assert run.state == DONE and run.frames_written == 2 and run.error is None
    assert sorted(run.written_frames) == [7, 8]
    assert frame_names(tmp_path / "out") == ["frame_0007.png", "frame_0008.png"]


def test_frames_made_otherwise_are_kept_unless_overwrite(client, tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", [1, 2]))
    out = tmp_path / "out"
    _run(client, out, controls)
    before = stats(out)

    run, status, _ = _run(client, out, controls, params={**PARAMS, "seed": 5})
    assert status.state == DONE and run.job_ids == []
    assert "kept 2 frame(s) made with other settings" in status.message
    assert stats(out) == before

    run, status, _ = _run(client, out, controls, params={**PARAMS, "seed": 5}, overwrite=True)
    assert status.state == DONE and status.frames_written == 2
    assert client.status(run.job_ids[0])["frames"] == [1, 2]
    assert all(stats(out)[name] != before[name] for name in frame_names(out))


def test_backend_killed_mid_job_keeps_saved_frames_and_a_rerun_makes_only_the_rest(client, tmp_path, backend_server):
    controls = control_frames(write_poses(tmp_path / "poses", [1, 2, 3, 4, 5, 6]))
    out = tmp_path / "out"
    doomed = backend_process.start_backend(tmp_path / "doomed", token=backend_process.TEST_TOKEN)
    try:
        def kill_after_two(status):
            if status.frames_written == 2 and doomed.alive():
                doomed.kill()  # SIGKILL: no goodbye, like a crash or an OOM kill

        run = GenerationRun(BackendClient(doomed.url, doomed.token), out, controls, PARAMS, poll_interval=0.05)
        status = run.run_blocking(kill_after_two)
    finally:
        doomed.kill()

    assert status.state == FAILED
    assert status.error == (
        f"the backend at {doomed.url} stopped answering; 2 of 6 frames are saved in {out}; "
        "run again to generate only the missing ones"
    )
    saved = frame_names(out)
    assert len(saved) == 2
    before = stats(out)

    # Another backend with the same models (the session's) picks up where the dead one stopped.
    run, status, _ = _run(client, out, controls)
    assert status.state == DONE and status.frames_written == 4
    missing = sorted(set(range(1, 7)) - {int(n[6:10]) for n in saved})
    assert client.status(run.job_ids[0])["frames"] == missing
    assert len(frame_names(out)) == 6
    assert {n: stats(out)[n] for n in saved} == {n: before[n] for n in saved}


def test_cancel_deletes_the_job_on_the_backend(client, tmp_path):
    # A long job ahead keeps ours queued, so the cancel surely reaches it before it finishes.
    blocker = client.submit({"steps": 2, "batch": 1, "width": 256, "height": 256, "pipeline": "frames"},
                            control_frames(write_poses(tmp_path / "blocker", range(1, 61))))
    try:
        controls = control_frames(write_poses(tmp_path / "poses", [1, 2, 3]))
        run = GenerationRun(client, tmp_path / "out", controls, PARAMS, poll_interval=0.05)
        run.start()
        while run.snapshot().job_id is None and not run.finished:
            time.sleep(0.01)
        job_id = run.snapshot().job_id
        run.cancel()
        assert run.wait(timeout=60)
    finally:
        client.cancel(blocker["id"])
    assert run.state == CANCELLED, run.message
    assert run.message.startswith("cancelled; 0 of 3 frames are saved")
    assert client.status(job_id)["state"] == "cancelled"


def test_cancel_before_anything_was_sent(client, tmp_path):
    jobs_before = len(client.jobs())
    run = GenerationRun(client, tmp_path / "out", control_frames(write_poses(tmp_path / "poses", [1])), PARAMS)
    run.cancel()
    status = run.run_blocking()
    assert status.state == CANCELLED and run.job_ids == []
    assert len(client.jobs()) == jobs_before


def test_a_job_failing_on_the_backend_reports_its_error_and_keeps_its_frames(quirky_backend, tmp_path):
    client = BackendClient(quirky_backend.url, quirky_backend.token)
    controls = control_frames(write_poses(tmp_path / "poses", [1, 2, 3, 4]))
    out = tmp_path / "out"
    run, status, _ = _run(client, out, controls, params={**PARAMS, "batch": 1})
    assert status.state == FAILED
    assert f"the backend failed job {run.job_ids[0]}: RuntimeError: test fault at frame {FAIL_AT}" in status.error
    assert status.error.endswith(f"2 of 4 frames are saved in {out}; run again to generate only the missing ones")
    assert frame_names(out) == ["frame_0001.png", "frame_0002.png"]


def test_too_many_frames_for_one_job_are_sent_as_smaller_jobs(quirky_backend, tmp_path):
    client = BackendClient(quirky_backend.url, quirky_backend.token)
    controls = control_frames(write_poses(tmp_path / "poses", range(10, 16)))
    run, status, _ = _run(client, tmp_path / "out", controls)
    assert status.state == DONE, status.message
    assert [client.status(j)["frames"] for j in run.job_ids] == [[10, 11, 12], [13, 14, 15]]
    assert len(frame_names(tmp_path / "out")) == 6


def test_a_request_over_the_size_limit_is_a_request_error_not_a_dead_backend(quirky_backend, tmp_path):
    client = BackendClient(quirky_backend.url, quirky_backend.token)
    big = control_frames(write_poses(tmp_path / "poses", [1], size=704))  # ~1.5 MB: over 1 MiB
    with pytest.raises(BackendRequestError, match="request too large") as caught:
        client.submit(PARAMS, big)
    assert caught.value.status == 413
    assert client.health()["status"] == "ready"


def test_wrong_token_fails_the_run_before_anything_is_written(backend_server, tmp_path):
    controls = control_frames(write_poses(tmp_path / "poses", [1]))
    run, status, _ = _run(BackendClient(backend_server.url, "wrong"), tmp_path / "out", controls)
    assert status.state == FAILED and status.error.startswith("token rejected")
    assert not (tmp_path / "out").exists()


def test_no_backend_fails_at_once_with_the_clients_message(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    controls = control_frames(write_poses(tmp_path / "poses", [1]))
    run, status, _ = _run(BackendClient(url, timeout=2), tmp_path / "out", controls)
    assert status.state == FAILED and status.error.startswith(f"no backend at {url} — is it running?")
    assert not (tmp_path / "out").exists()


def test_an_output_folder_failing_mid_run_is_named_and_the_frames_before_stay(client, tmp_path):
    """The output folder turns into a file once the first frames are in (a real OS error): the
    run fails naming the folder, the frames already written are whole where they went."""
    controls = control_frames(write_poses(tmp_path / "poses", list(range(1, 9))))
    out = tmp_path / "out"
    moved = tmp_path / "moved"
    seen = []

    def watch(status):
        seen.append(status)
        if status.frames_written >= 2 and not moved.exists():
            out.rename(moved)
            out.write_text("not a folder any more")

    run = GenerationRun(client, out, controls, {**PARAMS, "batch": 1}, poll_interval=0.05)
    status = run.run_blocking(watch)
    assert status.state == FAILED
    assert f"cannot write into {out}" in status.message
    kept = frame_names(moved)
    assert len(kept) >= 2
    for name in kept:
        assert read_png(moved / name).shape == (64, 64, 3)
    assert not [p for p in moved.iterdir() if p.name.endswith(".tmp")], "nothing half-written"
