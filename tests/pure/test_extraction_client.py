"""Extract and Import's pure half: resampling a video's keypoints by time onto the scene's rate,
the result folder (new every time, unpacked safely), extraction.json, and the client's
/extract calls against a real backend process (skipped without the backend venv)."""
import io
import json
import stat
import time
import zipfile

import numpy as np
import pytest

from posebridge.generate.client import BackendClient, BackendError, BackendUnavailable
from posebridge.generate.extraction import (
    ExtractionFileError,
    is_video,
    keypoints_folder,
    new_result_folder,
    read_extraction,
    unpack_result,
)
from posebridge.generate.extraction_run import CANCELLED, DONE, FAILED, ExtractionRun
from posebridge.pose.keypoints import KeypointSequence
from posebridge.pose.layouts import IMPORT
from posebridge.retarget.resample import rate_note, resample_by_time, time_grid

CLIP_FRAMES = 8  # video frames the backend tests extract: short on a busy CPU


def _sequence(frames, values, confidence=None):
    """One person; every point at x = value, y = 2 * value of its frame."""
    data = np.zeros((len(frames), 1, len(IMPORT), 3), np.float32)
    data[:, 0, :, 0] = np.asarray(values, np.float32)[:, None]
    data[:, 0, :, 1] = 2 * np.asarray(values, np.float32)[:, None]
    data[:, 0, :, 2] = 1.0 if confidence is None else np.asarray(confidence, np.float32)[:, None]
    return KeypointSequence(IMPORT, data, (100, 100), np.asarray(frames))


# -- resampling by time ------------------------------------------------------------------------

def test_60_fps_onto_24_follows_time_and_keeps_the_duration():
    frames = np.arange(0, 100)  # cam01.mp4: 100 frames at 60 fps, x moving 1 px per frame
    out = resample_by_time(_sequence(frames, frames.astype(float)), frames / 60, 24)
    # 0 .. 99/60 s = 1.65 s: grid frames 0..39 (39/24 = 1.625 s), the duration kept within a frame.
    assert list(out.frame_numbers) == list(range(40))
    assert abs(out.frame_numbers[-1] / 24 - 99 / 60) < 1 / 24
    # Grid frame n is n/24 s = 2.5 n video frames: halfway points are interpolated.
    np.testing.assert_allclose(out.data[:, 0, 0, 0], 2.5 * np.arange(40), atol=1e-4)
    np.testing.assert_allclose(out.data[:, 0, 0, 1], 5.0 * np.arange(40), atol=1e-4)
    assert (out.data[..., 2] == 1).all()


def test_the_grid_counts_from_the_videos_time_zero():
    """A clip from video frame 10 on (1/6 s) starts at grid frame 4 (4/24 s), the first instant at
    or after its first frame: the video's frame 0 is 4 scene frames before the first key."""
    frames = np.arange(10, 22)
    assert list(time_grid(frames / 60, 24)) == [4, 5, 6, 7, 8]
    out = resample_by_time(_sequence(frames, frames.astype(float)), frames / 60, 24)
    np.testing.assert_allclose(out.data[:, 0, 0, 0], [10, 12.5, 15, 17.5, 20], atol=1e-4)


def test_a_point_seen_on_one_side_only_is_kept_when_near_else_absent():
    frames = np.array([0, 1, 2, 3])
    confidence = [1.0, 0.0, 1.0, 0.5]  # gone in video frame 1
    out = resample_by_time(_sequence(frames, [0, 10, 20, 30], confidence), frames / 60, 150)
    # 150 fps: instants every 0.4 video frames. 0.4 (near 0): kept from frame 0; 0.8 (near the
    # absent frame 1): absent; 1.2: absent; 1.6 (near 2): from frame 2.
    grid_values = dict(zip(out.frame_numbers.tolist(), out.data[:, 0, 0].tolist()))
    assert grid_values[1] == pytest.approx([0, 0, 1])
    assert grid_values[2][2] == 0 and grid_values[3][2] == 0
    assert grid_values[4] == pytest.approx([20, 40, 1])
    # Between two present points the confidence blends too: 2.8 -> 0.2 of 1.0 and 0.8 of 0.5.
    assert grid_values[7] == pytest.approx([28, 56, 0.6], abs=1e-4)


def test_every_other_frame_and_equal_rates():
    frames = np.arange(0, 24, 2)  # 24 fps video, every 2nd frame read
    out = resample_by_time(_sequence(frames, frames.astype(float)), frames / 24, 24)
    assert list(out.frame_numbers) == list(range(23))
    np.testing.assert_allclose(out.data[:, 0, 0, 0], np.arange(23), atol=1e-4)  # gaps interpolated
    same = resample_by_time(_sequence(np.arange(5), np.arange(5.0)), np.arange(5) / 24, 24)
    np.testing.assert_array_equal(same.data, _sequence(np.arange(5), np.arange(5.0)).data)


def test_resample_refuses_what_does_not_fit():
    seq = _sequence([0, 1], [0, 1])
    with pytest.raises(ValueError, match="2 frames but 3 times"):
        resample_by_time(seq, [0, 1, 2], 24)
    with pytest.raises(ValueError, match="increase"):
        resample_by_time(seq, [1, 1], 24)


def test_the_report_says_what_happened_to_the_rates():
    assert rate_note(60, 24) == "video 60 fps -> scene 24 fps: keys resampled by time"
    assert rate_note(29.97002997, 24) == "video 29.97 fps -> scene 24 fps: keys resampled by time"
    assert rate_note(24, 24) == "video 24 fps = scene 24 fps: one key per video frame"
    assert rate_note(24, 24, every=2) == ("video 24 fps (every 2nd frame extracted) -> scene 24 fps: "
                                          "keys resampled by time")


# -- the result folder -------------------------------------------------------------------------

def _zip(entries: dict, links=()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def _extraction_document(**changes):
    document = {"format": "posebridge-extraction", "version": 1, "video": "clip.mp4", "fps": 60.0,
                "width": 1080, "height": 1920, "frame_count": 100, "rotation": 0, "frames": [0, 1, 2],
                "times": [0.0, 1 / 60, 2 / 60], "every": 1, "start": 0, "end": 2,
                "extractor": "mediapipe", "multi_person": False, "note": "one person"}
    return {**document, **changes}


def test_video_sources_are_told_by_their_suffix():
    assert all(is_video(f"clip{s}") for s in (".mp4", ".MOV", ".m4v", ".mkv", ".avi", ".webm"))
    assert not any(is_video(p) for p in ("keypoints", "frame.json", "sequence.json", ""))


def test_each_result_gets_a_new_folder(tmp_path):
    first = new_result_folder(tmp_path, "cam01")
    (first / "mine.txt").write_text("keep")
    second = new_result_folder(tmp_path, "cam01")
    third = new_result_folder(tmp_path, "cam01")
    assert [first.name, second.name, third.name] == ["cam01", "cam01_2", "cam01_3"]
    assert (first / "mine.txt").read_text() == "keep"
    assert new_result_folder(tmp_path, "../../evil name").parent == tmp_path


def test_a_result_unpacks_and_reads(tmp_path):
    data = _zip({"extraction.json": json.dumps(_extraction_document()),
                 "keypoints/frame_0000_keypoints.json": "{}", "sequence.json": "[]"})
    written = unpack_result(data, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "extraction.json", "keypoints/frame_0000_keypoints.json", "sequence.json"]
    info = read_extraction(tmp_path)
    assert (info.fps, info.width, info.height, info.frames, info.every) == (60.0, 1080, 1920, (0, 1, 2), 1)
    assert info.duration == pytest.approx(2 / 60)
    assert keypoints_folder(tmp_path) == tmp_path / "keypoints"


@pytest.mark.parametrize("name", ["../outside.json", "/etc/cron.d/x", "keypoints/../../x", "C:/x", "a\\..\\..\\x"])
def test_names_outside_the_folder_are_refused_before_anything_is_written(tmp_path, name):
    target = tmp_path / "result"
    target.mkdir()
    with pytest.raises(ExtractionFileError, match="outside its folder"):
        unpack_result(_zip({"extraction.json": "{}", name: "x"}), target)
    assert list(target.iterdir()) == [] and not (tmp_path / "outside.json").exists()


def test_links_and_non_zips_are_refused(tmp_path):
    with pytest.raises(ExtractionFileError, match="link"):
        unpack_result(_zip({}, links=["keypoints/link"]), tmp_path)
    with pytest.raises(ExtractionFileError, match="not a zip"):
        unpack_result(b"<html>", tmp_path)


@pytest.mark.parametrize("changes, message", [
    ({"format": "other"}, "not a PoseBridge extraction"),
    ({"version": 2}, "version 2"),
    ({"fps": 0}, "'fps' must be positive"),
    ({"width": None}, "'width' is missing"),
    ({"frames": []}, "no frames"),
    ({"times": [0.0, 0.0, 0.1]}, "do not increase"),
    ({"times": [0.0]}, "3 frames but 1 times"),
])
def test_a_bad_extraction_json_is_named(tmp_path, changes, message):
    (tmp_path / "extraction.json").write_text(json.dumps(_extraction_document(**changes)))
    with pytest.raises(ExtractionFileError, match=message):
        read_extraction(tmp_path)


def test_missing_pieces_are_named(tmp_path):
    with pytest.raises(ExtractionFileError, match="extraction.json: cannot be read"):
        read_extraction(tmp_path)
    with pytest.raises(ExtractionFileError, match="no keypoint files"):
        keypoints_folder(tmp_path)


# -- the client and the run, against a real backend ----------------------------------------------

def test_a_video_that_cannot_be_read_or_no_backend_is_named(tmp_path):
    with pytest.raises(BackendError, match="cannot be read"):
        BackendClient("http://127.0.0.1:9").submit_extract(tmp_path / "none.mp4")
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0" * 1000)
    run = ExtractionRun(BackendClient("http://127.0.0.1:9", timeout=2), video)
    status = run.run()
    assert status.state == FAILED and "no backend at http://127.0.0.1:9" in status.error


@pytest.fixture
def client(backend_server):
    return BackendClient(backend_server.url, backend_server.token)


@pytest.fixture
def clip(shared_data):
    return shared_data / "pose2sim" / "cam01.mp4"


def test_extract_a_few_frames_and_download_the_result(client, clip, tmp_path):
    run = ExtractionRun(client, clip, end=CLIP_FRAMES - 1, poll_interval=0.1)
    status = run.run()
    assert status.state == DONE, status.error
    folder = new_result_folder(tmp_path, clip.stem)
    unpack_result(run.result, folder)
    info = read_extraction(folder)
    assert info.frames == tuple(range(CLIP_FRAMES)) and info.fps == pytest.approx(60)
    assert (info.width, info.height) == (1080, 1920) and info.extractor == "mediapipe"
    assert len(list(keypoints_folder(folder).glob("frame_*_keypoints.json"))) == CLIP_FRAMES
    job = client.status(status.job_id)
    assert job["kind"] == "extract" and job["state"] == "done"


def test_cancel_deletes_the_job_on_the_backend(client, clip):
    run = ExtractionRun(client, clip, poll_interval=0.05)  # the whole clip: long enough to cancel
    run.start()
    while run.snapshot().job_id is None and not run.finished:
        run.wait(0.05)
    run.cancel()
    assert run.wait(30)
    status = run.snapshot()
    assert status.state == CANCELLED and "cancelled" in status.message
    for _ in range(100):  # a running job stops at its next frame
        if client.status(status.job_id)["state"] == "cancelled":
            break
        time.sleep(0.1)
    assert client.status(status.job_id)["state"] == "cancelled"


def test_a_job_cancelled_on_the_backend_by_someone_else_ends_the_run_cancelled(client, backend_server, clip):
    run = ExtractionRun(client, clip, poll_interval=0.05)  # the whole clip: long enough to cancel
    run.start()
    deadline = time.monotonic() + 60
    while run.snapshot().job_id is None and not run.finished and time.monotonic() < deadline:
        time.sleep(0.01)
    job_id = run.snapshot().job_id
    assert job_id is not None, run.snapshot()
    BackendClient(backend_server.url, backend_server.token).cancel(job_id)  # not this run's own cancel
    assert run.wait(30)
    status = run.snapshot()
    assert status.state == CANCELLED and status.error is None and run.result is None
    assert status.message == f"the extraction job {job_id} was cancelled on the backend (not from here)"


def test_a_video_over_the_request_limit_names_the_limit(small_request_backend, clip):
    client = BackendClient(small_request_backend.url, small_request_backend.token)
    status = ExtractionRun(client, clip).run()
    assert status.state == FAILED and status.job_id is None
    assert status.error == ("the video (0.4 MB) is over the backend's request limit (--max-request-mb): "
                            "raise it or trim the range")
    assert client.jobs() == []  # refused before any job was made


def test_a_file_that_is_no_video_fails_with_the_backends_reason(client, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_bytes(b"this is not a video" * 100)
    status = ExtractionRun(client, fake, poll_interval=0.1).run()
    assert status.state == FAILED and "notes.mp4" in status.error


def test_the_result_of_an_unknown_job_is_a_404(client):
    with pytest.raises(BackendError, match="404|unknown|no job"):
        client.download_result("no-such-job")


def test_nothing_listening_is_unavailable():
    with pytest.raises(BackendUnavailable):
        BackendClient("http://127.0.0.1:9", timeout=2).download_result("x")
